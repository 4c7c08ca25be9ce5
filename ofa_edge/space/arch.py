"""The static layer list of a subnet (pure data): shapes, MACs, params and OFA LUT keys."""

from __future__ import annotations

from dataclasses import dataclass

from ofa_edge.space.config import SearchSpace, make_divisible
from ofa_edge.space.subnet import Subnet, validate


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a static subnet, with everything that fixes its cost."""

    kind: str  # stem | mbconv | final_expand | pool | feature_mix | classifier
    in_size: int
    out_size: int
    in_ch: int
    out_ch: int
    kernel: int = 1
    stride: int = 1
    mid: int = 0  # mbconv only: middle width (== in_ch for the fixed block 0, which has no expand)
    expand: bool = True  # mbconv only: has the 1x1 expand conv
    se: int = 0  # mbconv only: SE hidden width (0 = no SE)
    act: str = "relu"
    idskip: bool = False

    @property
    def macs(self) -> int:
        """Multiply-accumulates, counted as the OFA analytic counter does."""
        if self.kind in ("stem", "final_expand", "feature_mix"):
            return self.in_ch * self.out_ch * self.kernel**2 * self.out_size**2
        if self.kind == "classifier":
            return self.in_ch * self.out_ch
        if self.kind == "pool":
            return 0
        g2 = self.out_size**2
        macs = self.mid * self.kernel**2 * g2 + self.mid * self.out_ch * g2
        if self.expand:
            macs += self.in_ch * self.mid * self.in_size**2
        return macs + 2 * self.mid * self.se

    @property
    def params(self) -> int:
        """Trainable parameters of the layer (conv weights, BN affine, SE and linear biases)."""
        if self.kind == "stem":
            return 3 * self.out_ch * self.kernel**2 + 2 * self.out_ch
        if self.kind == "final_expand":
            return self.in_ch * self.out_ch + 2 * self.out_ch
        if self.kind == "feature_mix":
            return self.in_ch * self.out_ch
        if self.kind == "classifier":
            return self.in_ch * self.out_ch + self.out_ch
        if self.kind == "pool":
            return 0
        p = self.mid * self.kernel**2 + 2 * self.mid + self.mid * self.out_ch + 2 * self.out_ch
        if self.expand:
            p += self.in_ch * self.mid + 2 * self.mid
        if self.se:
            p += 2 * self.mid * self.se + self.se + self.mid
        return p

    def lut_key(self) -> str:
        """The reference OFA MobileNetV3 latency-table key of this layer."""
        f, g = self.in_size, self.out_size
        if self.kind == "stem":
            return f"Conv-input:{f}x{f}x{self.in_ch}-output:{g}x{g}x{self.out_ch}"
        if self.kind == "mbconv":
            return (f"expanded_conv-input:{f}x{f}x{self.in_ch}-output:{g}x{g}x{self.out_ch}"
                    f"-expand:{self.mid}-kernel:{self.kernel}-stride:{self.stride}"
                    f"-idskip:{int(self.idskip)}-se:{int(self.se > 0)}-hs:{int(self.act == 'h_swish')}")
        if self.kind == "final_expand":
            return f"Conv_1-input:{f}x{f}x{self.in_ch}-output:{g}x{g}x{self.out_ch}"
        if self.kind == "pool":
            return f"AvgPool2D-input:{f}x{f}x{self.in_ch}-output:1x1x{self.out_ch}"
        if self.kind == "feature_mix":
            return f"Conv_2-input:1x1x{self.in_ch}-output:1x1x{self.out_ch}"
        return f"Logits-input:1x1x{self.in_ch}-output:{self.out_ch}"


def conv_out(size: int, kernel: int, stride: int) -> int:
    """Output side length of a conv with symmetric padding ``kernel // 2``."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def mid_channels(in_ch: int, expand: float) -> int:
    """Middle width of an inverted-residual block: ``md(round(in * e))``."""
    return make_divisible(round(in_ch * expand))


def se_channels(mid: int) -> int:
    """Squeeze-excite hidden width: ``md(mid // 4)``."""
    return make_divisible(mid // 4)


def block_io(space: SearchSpace) -> list[tuple[int, int, int, str, bool]]:
    """(in_ch, out_ch, stride, act, se) of every elastic block slot when all slots are present."""
    w = space.widths
    rows = []
    in_ch = w[1]
    for s in range(space.n_stages):
        for p in range(space.max_depth):
            stride = space.stage_strides[s] if p == 0 else 1
            rows.append((in_ch, w[2 + s], stride, space.stage_acts[s], space.stage_se[s]))
            in_ch = w[2 + s]
    return rows


def layers(space: SearchSpace, subnet: Subnet, n_classes: int = 1000) -> list[LayerSpec]:
    """The ordered static layers of ``subnet``: stem, block 0, active blocks, head."""
    validate(space, subnet)
    w = space.widths
    f = subnet.r
    g = conv_out(f, 3, space.stem_stride)
    out = [LayerSpec("stem", f, g, 3, w[0], kernel=3, stride=space.stem_stride, act="h_swish")]
    f = g
    out.append(LayerSpec("mbconv", f, f, w[0], w[1], kernel=3, stride=1, mid=w[0], expand=False,
                         act="relu", idskip=w[0] == w[1]))
    io = block_io(space)
    for i in subnet.active_blocks():
        in_ch, out_ch, stride, act, use_se = io[i]
        mid = mid_channels(in_ch, subnet.e[i])
        g = conv_out(f, subnet.ks[i], stride)
        out.append(LayerSpec("mbconv", f, g, in_ch, out_ch, kernel=subnet.ks[i], stride=stride, mid=mid,
                             se=se_channels(mid) if use_se else 0, act=act,
                             idskip=stride == 1 and in_ch == out_ch))
        f = g
    out.append(LayerSpec("final_expand", f, f, w[-3], w[-2], act="h_swish"))
    out.append(LayerSpec("pool", f, 1, w[-2], w[-2]))
    out.append(LayerSpec("feature_mix", 1, 1, w[-2], w[-1], act="h_swish"))
    out.append(LayerSpec("classifier", 1, 1, w[-1], n_classes))
    return out


def count_macs(space: SearchSpace, subnet: Subnet, n_classes: int = 1000) -> int:
    """Exact integer MACs of a subnet (OFA's analytic count)."""
    return sum(layer.macs for layer in layers(space, subnet, n_classes))


def count_params(space: SearchSpace, subnet: Subnet, n_classes: int = 1000) -> int:
    """Parameters of the extracted static subnet (one classification head)."""
    return sum(layer.params for layer in layers(space, subnet, n_classes))


def lut_keys(space: SearchSpace, subnet: Subnet, n_classes: int = 1000) -> list[str]:
    """The reference latency-table keys whose ``mean`` sums to the subnet's latency."""
    return [layer.lut_key() for layer in layers(space, subnet, n_classes)]
