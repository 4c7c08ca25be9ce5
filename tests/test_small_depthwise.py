"""Depthwise conv on tiny maps as per-channel matrices: the same outputs and gradients as F.conv2d."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ofa_edge.supernet.elastic import ElasticDepthwiseConv
from ofa_edge.supernet.small_depthwise import MAX_PIXELS, depthwise_as_matrix, use_matrix_form


@pytest.mark.parametrize("size,k,stride", [(1, 3, 1), (2, 7, 1), (2, 3, 2), (3, 5, 1), (3, 5, 2), (4, 7, 1),
                                           (4, 7, 2), (4, 3, 2), (4, 5, 1)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_matches_conv2d_forward_and_backward(size, k, stride, channels_last):
    gen = torch.Generator().manual_seed(size * 100 + k * 10 + stride)
    x = torch.randn(5, 12, size, size, generator=gen)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(12, 1, k, k, generator=gen)
    xa, wa = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    xb, wb = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    ref = F.conv2d(xa, wa, None, stride, k // 2, 1, 12)
    got = depthwise_as_matrix(xb, wb, stride, k // 2)
    assert got.shape == ref.shape
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last or got.shape[-1] == 1
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn(ref.shape, generator=gen)
    ref.backward(g)
    got.backward(g)
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(wb.grad, wa.grad, rtol=1e-5, atol=1e-4)


def test_only_tiny_maps_and_never_in_export():
    assert use_matrix_form(torch.zeros(1, 8, 4, 4)) and MAX_PIXELS == 16
    assert not use_matrix_form(torch.zeros(1, 8, 5, 5))
    conv = ElasticDepthwiseConv(8, (3, 5, 7))
    traced = torch.jit.trace(conv, torch.randn(1, 8, 2, 2))
    assert "bmm" not in str(traced.graph) and "conv" in str(traced.graph)


def test_elastic_depthwise_uses_it_with_the_active_kernel():
    torch.manual_seed(0)
    conv = ElasticDepthwiseConv(16, (3, 5, 7), stride=2)
    x = torch.randn(3, 12, 4, 4)
    for k in (3, 5, 7):
        conv.active_kernel = k
        ref = F.conv2d(x, conv.active_filter(12, k), None, 2, k // 2, 1, 12)
        torch.testing.assert_close(conv.train()(x), ref, rtol=1e-5, atol=1e-5)
        assert torch.equal(conv.eval()(x), ref)  # eval: the convolution itself, as in extracted subnets
