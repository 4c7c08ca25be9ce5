"""The TFLite formulation (banded large depthwise kernels) and the INT8 graph XNNPACK runs whole."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from ofa_edge.export.tflite_graph import MAX_DEPTHWISE_TAPS, BandedDepthwiseConv2d, for_tflite
from ofa_edge.space import get_space, max_subnet, min_subnet


def _conv_bn(c: int, k: int, stride: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(c, c, k, stride, k // 2, groups=c, bias=False), nn.BatchNorm2d(c)).eval()
    bn = m[1]
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-1, 1)
    return m


@pytest.mark.parametrize("k", [6, 7, 9])
@pytest.mark.parametrize("stride", [1, 2])
def test_banded_depthwise_matches_conv_bn(k, stride):
    m = _conv_bn(16, k, stride, seed=k * 10 + stride)
    banded = for_tflite(m)
    assert isinstance(banded[0], BandedDepthwiseConv2d) and isinstance(banded[1], nn.Identity)
    assert isinstance(m[0], nn.Conv2d) and isinstance(m[1], nn.BatchNorm2d)  # the original is untouched
    for size in (1, 2, 3, 4, 7, 13, 32):  # tiny maps: most taps read padding and are dropped
        x = torch.randn(2, 16, size, size, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            ref, got = m(x), banded(x)
        assert got.shape == ref.shape
        assert (ref - got).abs().max() <= 1e-6 * ref.abs().max()


def test_small_kernels_and_dense_convs_are_kept():
    m = nn.Sequential(nn.Conv2d(8, 8, 5, 1, 2, groups=8), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 7, 1, 3)).eval()
    out = for_tflite(m)
    assert [type(c) for c in out] == [nn.Conv2d, nn.BatchNorm2d, nn.Conv2d]


def test_subnet_formulation_matches_and_has_no_large_depthwise():
    from ofa_edge.supernet import OFAMobileNetV3

    torch.manual_seed(0)
    net = OFAMobileNetV3("cifar-mbv3", 10)
    subnet = max_subnet(net.space)  # every kernel 7x7
    net.set_subnet(subnet)
    model = net.get_active_subnet().eval()
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2)
    export = for_tflite(model)
    banded = [m for m in export.modules() if isinstance(m, BandedDepthwiseConv2d)]
    assert len(banded) == sum(subnet.d)
    assert not any(isinstance(m, nn.Conv2d) and m.groups > 1 and m.kernel_size[0] * m.kernel_size[1] > MAX_DEPTHWISE_TAPS
                   for m in export.modules())
    x = torch.randn(4, 3, subnet.r, subnet.r, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, got = model(x), export(x)
    assert (ref - got).abs().max() <= 1e-5 * ref.abs().max()


# ---------------------------------------------------------------- converted graphs


CASES = [("cifar-mbv3", "max", None), ("cifar-mbv3", "min", None),
         # 128 px keeps the test short; every 7x7 layer still sees >= 4x4 maps, as at 224 px.
         ("ofa-mbv3-w1", "max", 128), ("ofa-mbv3-w1", "min", None)]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def exported(request, tmp_path_factory):
    pytest.importorskip("litert_torch")
    from ofa_edge.export.tflite import export_tflite, quantize_tflite
    from ofa_edge.supernet import OFAMobileNetV3

    space_name, which, r = request.param
    torch.manual_seed(0)
    net = OFAMobileNetV3(space_name, 10)
    subnet = (max_subnet if which == "max" else min_subnet)(get_space(space_name))
    if r is not None:
        subnet = dataclasses.replace(subnet, r=r)
    net.set_subnet(subnet)
    model = net.get_active_subnet().eval()
    folder = tmp_path_factory.mktemp(f"{space_name}-{which}")
    shape = (1, 3, subnet.r, subnet.r)
    fp32 = export_tflite(model, folder / "m.tflite", shape)
    calib = torch.randn(8, 3, subnet.r, subnet.r, generator=torch.Generator().manual_seed(2))
    int8 = quantize_tflite(fp32, folder / "m.int8.tflite", "int8", calib)
    return {"model": model, "subnet": subnet, "fp32": fp32, "int8": int8, "calib": calib}


@pytest.mark.slow
def test_int8_graph_runs_in_one_xnnpack_partition(exported):
    from ofa_edge.export.tflite import delegate_report

    for key in ("fp32", "int8"):
        report = delegate_report(exported[key])
        assert report.delegate_partitions <= 2, (key, report)
        assert report.delegated_ops > 50
        # nothing int8 runs in the interpreter's reference kernels (int8 I/O: no QUANTIZE/DEQUANTIZE ends)
        assert report.other_int8_ops == {}, (key, report)
        assert set(report.other_ops) <= {"QUANTIZE", "DEQUANTIZE"}, (key, report)


def test_converted_graph_has_only_fast_depthwise_kernels_and_float_parity(exported):
    from ai_edge_litert.interpreter import Interpreter

    from ofa_edge.export.tflite import TFLiteRunner

    for key in ("fp32", "int8"):
        it = Interpreter(model_path=str(exported[key]))
        it.allocate_tensors()
        shapes = {t["index"]: tuple(t["shape"]) for t in it.get_tensor_details()}
        dw = [shapes[op["inputs"][1]] for op in it._get_ops_details() if op["op_name"] == "DEPTHWISE_CONV_2D"]
        assert dw and all(s[1] * s[2] <= MAX_DEPTHWISE_TAPS for s in dw), (key, sorted(set(dw)))
    x = exported["calib"][:4]
    with torch.no_grad():
        ref = exported["model"](x).numpy()
    got = TFLiteRunner(exported["fp32"])(x)
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    q = TFLiteRunner(exported["int8"])
    assert q.input_dtype == np.int8 and q.output_dtype == np.int8
    assert set(q.op_names()) >= {"DEQUANTIZE", "HARD_SWISH", "QUANTIZE"}  # hard-swish kept in float
