"""Video encoders (§3.3): the 3D CNNs that turn a clip into spatio-temporal features F_v.

`build_backbone(name, width=1.0, depth=None, spatial_stride=None)` returns a module whose forward
maps a clip (B, 3, T, H, W) to F_v (B, out_channels, t, h, w): features before pooling, no
classification head (the network adds pool + FC). Each module carries `out_channels`,
`temporal_stride` and `spatial_stride` (t = T / temporal_stride, h = H / spatial_stride for
divisible inputs), so the LR motion decoder knows how far to upsample.

- r3d18, r3d34: torchvision's R3D (stem 3x7x7 stride (1,2,2), no max-pool, BasicBlock of two 3x3x3
  convs, 1x1x1 projection shortcuts, stages 64/128/256/512, stages 2-4 stride 2 in t, h and w).
  Parameter names match torchvision's `r3d_18`, so its state dict (less `fc.*`) loads as is.
- r3d50, r3d101, rx3d101: Bottleneck 3D ResNets / ResNeXt of Hara et al. (CVPR 2018), on the same
  stem and strides as r3d18 (Hara's 7x7x7 stem + max-pool is replaced by the R3D stem so that all
  3D ResNets share one stride, t/8 and h/16; this changes 0.04M parameters).
- slowfast_r50, slowfast_r101: SlowFast (Feichtenhofer et al., ICCV 2019) with R50/R101 pathways.

`spatial_stride` (3D ResNets only; 1, 2, 4, 8 or 16 = the default) removes the spatial stride of
the earliest layers (stem, then layer2, layer3, layer4) until the total is as asked. The smoke
profile uses 4: at 32 px the default stride gives a 2x2 F_v, too coarse to say where things move
(the paper's 112 px clips give 7x7); parameters are unchanged, the encoder's FLOPs grow.
`temporal_stride` (3D ResNets only; 1, 2, 4 or 8 = the default) does the same in time (layer2,
then layer3, layer4): with 1, F_v keeps one feature per input frame, so the motion decoded from
it can differ from frame to frame (the laptop profile; at the default an 8-frame clip has t = 1).

One generic builder makes all of them: a stage is a stack of residual blocks, a block is a list of
conv+BN layers (`StageSpec` says which) plus an identity or 1x1x1 projection shortcut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cgm.fastconv import Conv3d  # nn.Conv3d, channels-last inside on CPU (same math)

BACKBONES = ("r3d18", "r3d34", "r3d50", "r3d101", "rx3d101", "slowfast_r50", "slowfast_r101")

_R50, _R101 = (3, 4, 6, 3), (3, 4, 23, 3)
_DEPTHS = {
    "r3d18": (2, 2, 2, 2),
    "r3d34": _R50,
    "r3d50": _R50,
    "r3d101": _R101,
    "rx3d101": _R101,
    "slowfast_r50": _R50,
    "slowfast_r101": _R101,
}
Triple = tuple[int, int, int]


@dataclass(frozen=True)
class StageSpec:
    """One stage: `blocks` residual blocks whose convs have output `channels` and `kernels`.

    The conv at index `spatial_conv` carries the stage's `stride` (first block only) and `groups`.
    """

    blocks: int
    channels: tuple[int, ...]
    kernels: tuple[Triple, ...]
    stride: Triple = (1, 1, 1)
    spatial_conv: int = 0
    groups: int = 1


def _conv_bn(
    c_in: int, c_out: int, kernel: Triple, stride: Triple = (1, 1, 1), *, groups: int = 1, relu: bool = True
) -> nn.Sequential:
    """Conv3d (no bias, 'same' padding) + BN (+ ReLU), named like torchvision's conv1/conv2."""
    layers = [
        Conv3d(c_in, c_out, kernel, stride, padding=tuple(k // 2 for k in kernel), groups=groups, bias=False),
        nn.BatchNorm3d(c_out),
    ]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class Block(nn.Module):
    """Residual block: conv1..convN (ReLU between, none after the last), plus a shortcut."""

    def __init__(self, c_in: int, spec: StageSpec, stride: Triple):
        super().__init__()
        self.n_convs = len(spec.channels)
        c = c_in
        for i, (c_out, kernel) in enumerate(zip(spec.channels, spec.kernels)):
            here = i == spec.spatial_conv
            self.add_module(
                f"conv{i + 1}",
                _conv_bn(
                    c,
                    c_out,
                    kernel,
                    stride if here else (1, 1, 1),
                    groups=spec.groups if here else 1,
                    relu=i < self.n_convs - 1,
                ),
            )
            c = c_out
        self.downsample = None
        if stride != (1, 1, 1) or c_in != c:  # projection shortcut where the shape changes
            self.downsample = nn.Sequential(Conv3d(c_in, c, 1, stride, bias=False), nn.BatchNorm3d(c))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for i in range(self.n_convs):
            out = getattr(self, f"conv{i + 1}")(out)
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def _stage(c_in: int, spec: StageSpec) -> nn.Sequential:
    blocks = [Block(c_in, spec, spec.stride)]
    blocks += [Block(spec.channels[-1], spec, (1, 1, 1)) for _ in range(spec.blocks - 1)]
    return nn.Sequential(*blocks)


def _stem(c_out: int, kernel: Triple, *, max_pool: bool = False, spatial: int = 2) -> nn.Sequential:
    """Conv kernel stride (1,2,2) + BN + ReLU (+ 1x3x3 max-pool stride (1,2,2), SlowFast only)."""
    stem = _conv_bn(3, c_out, kernel, (1, spatial, spatial))
    if max_pool:
        stem.append(nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
    return stem


def _check_clip(x: torch.Tensor) -> None:
    if x.ndim != 5 or x.shape[1] != 3:
        raise ValueError(f"expected a clip of shape (B, 3, T, H, W), got {tuple(x.shape)}")


def _init_weights(module: nn.Module) -> None:
    """torchvision's ResNet init: kaiming normal (fan_out) convs, BN weight 1 / bias 0 (2D and 3D;
    cgm.network uses it too)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResNet3D(nn.Module):
    """stem -> layer1..layer4; `lateral` adds input channels to each stage (SlowFast's slow)."""

    def __init__(self, stem: nn.Sequential, stages: list[StageSpec], lateral: tuple[int, ...] = (0, 0, 0, 0)):
        super().__init__()
        self.stem = stem
        c = stem[0].out_channels
        for i, (spec, extra) in enumerate(zip(stages, lateral)):
            self.add_module(f"layer{i + 1}", _stage(c + extra, spec))
            c = spec.channels[-1]
        self.out_channels = c
        strides = [stem[0].stride] + [s.stride for s in stages]
        strides += [m.stride for m in stem if isinstance(m, nn.MaxPool3d)]
        self.temporal_stride = math.prod(s[0] for s in strides)
        self.spatial_stride = math.prod(s[1] for s in strides)
        _init_weights(self)

    def stages(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        _check_clip(clip)
        x = self.stem(clip)
        for stage in self.stages():
            x = stage(x)
        return x  # (B, out_channels, T/temporal_stride, H/spatial_stride, W/spatial_stride)


def _ch(c: float, width: float, multiple: int = 1) -> int:
    """Scaled channel count: at least 8 and a multiple of `multiple` (the ResNeXt group count)."""
    return max(8, multiple, round(c * width / multiple) * multiple)


def _resnet_stages(
    name: str,
    width: float,
    depth: tuple[int, ...],
    kernels_a: tuple[Triple, ...] | None = None,
    beta: float = 1.0,
    spatial: tuple[int, ...] = (1, 2, 2, 2),
    temporal: tuple[int, ...] = (1, 2, 2, 2),
) -> list[StageSpec]:
    """Stage specs of r3d18/34 (basic), r3d50/101 (bottleneck), rx3d101, or one SlowFast pathway.

    `kernels_a` switches to SlowFast's bottleneck: conv a (kt,1,1) per stage, conv b 1x3x3 with a
    spatial-only stride; `beta` scales the widths (the fast pathway's channel ratio); `spatial`
    is each stage's spatial stride, `temporal` its temporal one (3D ResNets; SlowFast keeps t).
    """
    specs = []
    for i, (n, sp, s) in enumerate(zip(depth, spatial, temporal)):
        base = 64 * 2**i * beta
        if name in ("r3d18", "r3d34"):
            c = _ch(base, width)
            specs.append(StageSpec(n, (c, c), ((3, 3, 3),) * 2, (s, sp, sp), spatial_conv=0))
        elif kernels_a is not None:  # SlowFast pathway
            m, out = _ch(base, width), _ch(4 * base, width)
            kernels = (kernels_a[i], (1, 3, 3), (1, 1, 1))
            specs.append(StageSpec(n, (m, m, out), kernels, (1, sp, sp), spatial_conv=1))
        else:  # Hara et al.: 1x1x1 -> 3x3x3 (stride, groups) -> 1x1x1
            groups = 32 if name == "rx3d101" else 1
            mid = 2 * base if groups > 1 else base  # ResNeXt: width 128.., expansion 2
            m, out = _ch(mid, width, groups), _ch(4 * base, width)
            kernels = ((1, 1, 1), (3, 3, 3), (1, 1, 1))
            specs.append(StageSpec(n, (m, m, out), kernels, (s, sp, sp), spatial_conv=1, groups=groups))
    return specs


class SlowFast(nn.Module):
    """SlowFast: a fast pathway on all T frames (channels x beta, 3x1x1 temporal kernels) and a
    slow pathway on every alpha-th frame (1x1x1 in res2/res3, 3x1x1 in res4/res5), fused fast ->
    slow by a 5x1x1 conv of stride alpha (2*beta*C channels) after the stem and res2, res3, res4.
    Both stems end in a 1x3x3 max-pool (stride (1,2,2)), so features are at H/32.

    forward returns one tensor: the slow features, nearest-upsampled in time to the fast rate (each
    slow step repeated alpha times), concatenated with the fast features along channels:
    (B, C_slow + C_fast, T, H/32, W/32). T must be divisible by alpha.
    """

    def __init__(
        self, name: str, width: float, depth: tuple[int, ...], *, alpha: int = 8, beta: float = 1 / 8
    ):
        super().__init__()
        self.alpha = alpha
        fast_stages = _resnet_stages(name, width, depth, ((3, 1, 1),) * 4, beta)
        slow_stages = _resnet_stages(name, width, depth, ((1, 1, 1),) * 2 + ((3, 1, 1),) * 2)
        c_fast = [_ch(64 * beta, width)] + [s.channels[-1] for s in fast_stages]
        self.fast = ResNet3D(_stem(c_fast[0], (5, 7, 7), max_pool=True), fast_stages)
        self.slow = ResNet3D(
            _stem(_ch(64, width), (1, 7, 7), max_pool=True),
            slow_stages,
            lateral=tuple(2 * c for c in c_fast[:4]),
        )
        self.lateral = nn.ModuleList(_conv_bn(c, 2 * c, (5, 1, 1), (alpha, 1, 1)) for c in c_fast[:4])
        _init_weights(self.lateral)
        self.out_channels = self.slow.out_channels + self.fast.out_channels
        self.temporal_stride = 1
        self.spatial_stride = self.fast.spatial_stride

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        _check_clip(clip)
        if clip.shape[2] % self.alpha:
            raise ValueError(f"SlowFast needs T divisible by alpha={self.alpha}, got T={clip.shape[2]}")
        slow, fast = self.slow.stem(clip[:, :, :: self.alpha]), self.fast.stem(clip)
        for i, (slow_stage, fast_stage) in enumerate(zip(self.slow.stages(), self.fast.stages())):
            # (B, C_s + 2*C_f, T/alpha, h, w): the lateral conv's stride alpha matches the rates
            slow = torch.cat([slow, self.lateral[i](fast)], dim=1)
            slow, fast = slow_stage(slow), fast_stage(fast)
        slow = slow.repeat_interleave(self.alpha, dim=2)  # (B, C_s, T, h, w): nearest in time
        return torch.cat([slow, fast], dim=1)  # (B, C_s + C_f, T, H/32, W/32)


SPATIAL_STRIDES = (1, 2, 4, 8, 16)
TEMPORAL_STRIDES = (1, 2, 4, 8)


def _spatial_strides(total: int) -> tuple[int, ...]:
    """Spatial strides of (stem, layer1..layer4) whose product is `total`: the default
    (2, 1, 2, 2, 2) with the earliest 2s set to 1 (late layers keep their receptive field)."""
    strides = [2, 1, 2, 2, 2]
    for i in (0, 2, 3, 4):
        if math.prod(strides) > total:
            strides[i] = 1
    return tuple(strides)


def _temporal_strides(total: int) -> tuple[int, ...]:
    """Temporal strides of layer1..layer4 whose product is `total`: the default (1, 2, 2, 2) with
    the earliest 2s set to 1."""
    strides = [1, 2, 2, 2]
    for i in (1, 2, 3):
        if math.prod(strides) > total:
            strides[i] = 1
    return tuple(strides)


def build_backbone(
    name: str,
    width: float = 1.0,
    depth: tuple[int, ...] | None = None,
    *,
    alpha: int = 8,
    spatial_stride: int | None = None,
    temporal_stride: int | None = None,
) -> nn.Module:
    """The video encoder `name` (see BACKBONES); `width` scales every channel count (at least 8),
    `depth` overrides the blocks per stage (e.g. (1, 1, 1, 1) for a smoke variant), `alpha` is
    SlowFast's frame-rate ratio (ignored otherwise), `spatial_stride` the total spatial stride of
    a 3D ResNet (None: its own, 16; see the module docstring), `temporal_stride` its total temporal
    stride (None: its own, 8; 1 keeps one feature per frame, so motion can differ between frames)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {', '.join(BACKBONES)}")
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    if depth is None:
        depth = _DEPTHS[name]
    depth = tuple(depth)
    if len(depth) != 4 or not all(isinstance(n, int) and n >= 1 for n in depth):
        raise ValueError(f"depth must be 4 positive ints (blocks per stage), got {depth}")
    if spatial_stride is not None and (name.startswith("slowfast") or spatial_stride not in SPATIAL_STRIDES):
        raise ValueError(
            f"spatial_stride must be None or one of {SPATIAL_STRIDES} for a 3D ResNet "
            f"(SlowFast: None), got {spatial_stride!r} for {name}"
        )
    if temporal_stride is not None and (
        name.startswith("slowfast") or temporal_stride not in TEMPORAL_STRIDES
    ):
        raise ValueError(
            f"temporal_stride must be None or one of {TEMPORAL_STRIDES} for a 3D ResNet "
            f"(SlowFast: None), got {temporal_stride!r} for {name}"
        )
    if name.startswith("slowfast"):
        if not (isinstance(alpha, int) and alpha >= 1):
            raise ValueError(f"alpha must be a positive int, got {alpha}")
        return SlowFast(name, width, depth, alpha=alpha)
    stem, *stages = _spatial_strides(16 if spatial_stride is None else spatial_stride)
    return ResNet3D(
        _stem(_ch(64, width), (3, 7, 7), spatial=stem),
        _resnet_stages(
            name,
            width,
            depth,
            spatial=tuple(stages),
            temporal=_temporal_strides(8 if temporal_stride is None else temporal_stride),
        ),
    )
