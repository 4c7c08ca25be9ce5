"""Which layers of a subnet stay in float inside its INT8 models, and how each format names them.

A MobileNetV3 subnet's stem (the first conv and its hard-swish) and the fixed first block (depthwise
3x3 + 1x1 projection, no expansion, with its shortcut) run at full resolution on few channels. Quantised
per tensor, one stem channel with a small range (0.4 against 14 for the widest) keeps a handful of int8
levels, and the depthwise conv after it amplifies that noise ~25x: on the first packaged ``cifar10-mbv3``
(73.9 %) this alone cost 2-4 top-1 points (argmax agreement with fp32 0.83-0.89; 0.95 on the later,
better trained ones). Kept in float, the same INT8 models lose 0.0-0.3 points (agreement 0.97-0.98), and
they are no slower: those layers were the ones int8 did
not speed up (bench/export.py --profile). The int8 graph is quantised once, after the first block.

In TFLite the float layers run in XNNPACK's fp32 kernels inside the same delegate partition; in ONNX
they are left out of QDQ quantisation. The INT8 latency tables time these layers in float too.

Where int8 kernels do not pay for the early, high-resolution stages (few channels, many pixels: on an
x86 CPU without VNNI, XNNPACK's int8 1x1 and depthwise convs there are slower than its fp32 ones), a build
can also keep the first ``float_stages`` stages in float (:func:`float_modules_for`); each value is one
more INT8 artefact (``tflite-int8-f1``, ...), and ``--measure`` times them all on the device and
recommends the fastest within the accuracy limit.
"""

from __future__ import annotations

import re
from typing import Sequence

#: Module paths in :class:`~ofa_edge.supernet.static.StaticMobileNetV3` kept in float in INT8 models.
FLOAT_MODULES: tuple[str, ...] = ("first_conv", "blocks.0")


def stages(specs) -> list[list[int]]:
    """Block indices (into ``StaticMobileNetV3.blocks``) of each stage after block 0.

    ``specs`` is the subnet's layer list (``StaticMobileNetV3.specs``: stem, blocks..., head). A stage
    starts at a block that strides or changes the width, as in OFA's MobileNetV3.
    """
    blocks = [s for s in specs if s.kind == "mbconv"]
    groups: list[list[int]] = []
    for i in range(1, len(blocks)):
        if not groups or blocks[i].stride > 1 or blocks[i].out_ch != blocks[i - 1].out_ch:
            groups.append([i])
        else:
            groups[-1].append(i)
    return groups


def float_modules_for(specs, float_stages: int = 0) -> tuple[str, ...]:
    """Module paths kept in float: the stem, block 0 and the blocks of the first ``float_stages`` stages.

    Raises:
        ValueError: ``float_stages`` is negative or more than the subnet has.
    """
    groups = stages(specs)
    if not 0 <= float_stages <= len(groups):
        raise ValueError(f"float_stages={float_stages}: the subnet has {len(groups)} stages after block 0 "
                         f"(use 0-{len(groups)})")
    return FLOAT_MODULES + tuple(f"blocks.{i}" for g in groups[:float_stages] for i in g)


def is_float_layer(spec) -> bool:
    """Whether the layer ``spec`` (a :class:`~ofa_edge.space.LayerSpec`) runs in float in an INT8 model."""
    return spec.kind == "stem" or (spec.kind == "mbconv" and not spec.expand)


def onnx_float_nodes(graph, modules: Sequence[str] = FLOAT_MODULES) -> list[str]:
    """Names of the ONNX nodes that belong to ``modules``; unnamed nodes are given names first.

    torch's exporter names a node after its module path (``/first_conv/conv/Conv``). Nodes it leaves
    unnamed (the HardSigmoid and Mul of a decomposed hard-swish) belong to the float part when all their
    inputs come from it. ``graph`` is modified in place (names only).

    Args:
        graph: An ``onnx.GraphProto`` in topological order.
        modules: Module paths (``"blocks.0"``), as in :data:`FLOAT_MODULES`.

    Returns:
        The node names, in graph order.
    """
    prefixes = tuple(f"/{m}/" for m in modules)
    for i, node in enumerate(graph.node):
        if not node.name:
            node.name = f"_ofa_edge_{i}_{node.op_type}"
    produced_by_float: set[str] = set()
    names: list[str] = []
    for node in graph.node:
        unnamed = node.name.startswith("_ofa_edge_")
        inputs = [i for i in node.input if i]
        if node.name.startswith(prefixes) or (unnamed and inputs and all(i in produced_by_float for i in inputs)):
            names.append(node.name)
            produced_by_float.update(node.output)
    return names


def tflite_float_scope(modules: Sequence[str] = FLOAT_MODULES) -> str | None:
    """A regex matching the op scopes (output tensor names) of ``modules`` in a litert-torch model.

    litert-torch names tensors ``<root class>/<class>_<attribute>/...`` and drops ModuleList names
    (``blocks.0`` is ``<root>/...ResidualBlock_0/...``), so a top-level module is matched by its last
    path component right under the root. Only the name's first ``;``-separated part is the op's own
    scope: a fused op's name goes on with the scopes of the constants it absorbed, which may belong to
    an earlier block. None when ``modules`` is empty.
    """
    if not modules:
        return None
    leaves = "|".join(re.escape(m.rsplit(".", 1)[-1]) for m in modules)
    return rf"^[\w.]+/[\w.]+_({leaves})(/|;|$)"
