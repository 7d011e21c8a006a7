"""CGM-Net (§3.3) and its action-recognition heads (§3.4).

clip (B,3,T,H,W) -> video encoder -> F_v -> LR motion decoder -> F_LR (per frame, H/r)
  -> M_LR (k*k taps) and F_motion;  each frame -> context extractor -> F_context (resampled to H/r)
  -> upsampler (CGMUL, or nearest/bilinear with zero holes) -> M_HR (k^*k^ taps, H)
heads: pool+FC on F_v ("backbone"), an action CNN on M_LR ("lr") and one on M_HR ("hr").

Map t, applied to frame t with Eq. 1, reconstructs frame t+1; the last map predicts the frame after
the clip (losses.py does the warping). Every choice the paper leaves open is listed in the
`CGMConfig` docstring and argued in docs/assumptions.md.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from cgm import checkpoints
from cgm.backbones import (  # shared
    BACKBONES,
    SPATIAL_STRIDES,
    TEMPORAL_STRIDES,
    _ch,
    _init_weights,
    build_backbone,
)
from cgm.fastconv import Conv3d
from cgm.upsample import (
    CGMUL,
    BilinearMotionUpsampler,
    NearestMotionUpsampler,
    flow_kernel,
    lr_flow_prior,
    matching_cost,
    matching_flow,
)
from cgm.warp import softmax_filters

log = logging.getLogger(__name__)

UPSAMPLERS = ("cgmul", "nearest", "bilinear")
FILTER_NORMS = ("softmax", "none")
PADDINGS = ("border", "zeros")
SCALES = (1, 2, 4, 8, 16)
HEADS = ("backbone", "lr", "hr")
# Which heads' softmax scores each inference pipeline averages (Table 8; † = with the backbone).
PIPELINE_HEADS = {
    "backbone": ("backbone",),
    "lr": ("backbone", "lr"),
    "hr": ("backbone", "hr"),
    "lr+hr": ("backbone", "lr", "hr"),
}
# Which CGMNet children each pipeline runs at inference (for Table 8's parameter and FLOP counts).
_SHARED = ("encoder", "backbone_head")
PIPELINE_MODULES = {
    "backbone": _SHARED,
    "lr": _SHARED + ("decoder", "lr_motion", "lr_head"),
    "hr": _SHARED + ("decoder", "lr_motion", "motion_features", "context", "upsampler", "hr_head"),
    "lr+hr": _SHARED
    + ("decoder", "lr_motion", "motion_features", "context", "upsampler", "lr_head", "hr_head"),
}


# Fields added after the committed runs were cached, with their defaults (see CGMConfig.to_dict).
ADDED_FIELDS = {
    "encoder_temporal_stride": None,
    "hr_prior": "none",
    "context_input": "frame",
    "last_cue": "self",
    "cost_patch": 3,
    "cue_coarse": True,
    "cue_shift": False,
    "cue_still": False,
}
HR_PRIORS = ("none", "lr_flow", "cost", "cost_local", "cue_flow")
# hr_prior="cost": the start of the learned inverse temperature of the matching cost (1 / 0.01;
# frames in [-1, 1]), the best of 0.003-0.03 at 64 px after 0.003 (docs/training.md).
COST_PRIOR_INIT = 100.0
# Upper bound of the log inverse temperature (exp(15) = 3.3e6: already a hard argmin). Without
# it, "cost_local"'s per-pixel offset can grow until exp overflows float32 (at 88) and inf times a
# zero cost is NaN: the laptop run did, at step 824 (an offset of 279 on flat pixels).
COST_LOG_SCALE_MAX = 15.0
# hr_prior="cue_flow": the floor under the matching flow's bilinear kernel before its log. Its
# mass spreads evenly over the taps and pulls the maps' mean towards the centre: 81 x 1e-4 is 0.8%
# of a 9x9 map (0.02 px off a 2 px motion; 0.01 would be 45%). A tap off the kernel starts at
# log(1e-4) = -9.2, which CGMUL's logits can overturn.
CUE_FLOOR = 1e-4
CONTEXT_INPUTS = ("frame", "pair")
# What the last frame's matching cost is (hr_prior "cost"/"cost_local"; the last frame has no
# successor in the clip): "self" matches it with itself (a copy prior: predicting the unseen frame
# T repeats frame T-1), "previous" reuses the cost of the pair before it (constant velocity: the
# displacement from T-1 to T is guessed as the one from T-2 to T-1, at the same pixel).
LAST_CUES = ("self", "previous")


@dataclass(frozen=True)
class CGMConfig:
    """Configuration of CGM-Net. Defaults are the paper's 3D-ResNet18 model of Tables 6-8.

    Open decisions (the paper does not state them; reasons in docs/assumptions.md):
    - k_lr = 3 and k_hr = (k_lr - 1) * scale + 1 = 9 (derived, a property): the HR filter covers
      exactly the LR filter's support at full resolution, the same support as the dilated
      "zero holes" nearest/bilinear baselines of §4.3.
    - scale = 4: the paper's default (§4.1, Fig. 6); the context extractor's 1/4 output is resampled
      to the LR grid H/scale for other scales (bilinear up for 1 and 2, area down for 8 and 16).
    - filter_norm = "softmax": softmax over the taps of M_LR and of CGMUL's M_HR (the usual choice
      of adaptive-kernel synthesis; keeps warped frames in range; identity is easy). The parameter-free
      upsamplers of a softmax-normalised M_LR already give filters that sum to one: no second softmax.
    - decoder_channels: one trilinear x2 upsample + 3x3x3 conv + BN + ReLU stage per entry (§3.3's
      "bilinear upsample followed by a 3x3 conv"), the last stage landing on (T, H/r, W/r); M_LR and
      F_motion are each one 3x3 conv on the per-frame decoder output. Widths calibrated on Table 8.
    - motion channels = context channels (128 * context_width): Eq. 2 multiplies them channel-wise.
    - action CNNs: six 3x3 conv + BN + ReLU layers (lr/hr_cnn_channels, lr/hr_cnn_strides) applied
      per frame (the maps of frame t as a k*k-channel image), averaged over space and time, dropout,
      one FC. Widths and strides calibrated on Table 8's parameters and GFLOPs.
    - padding = "border" for the warp; dropout before every FC.

    `encoder_spatial_stride` (None: the backbone's own, 16 for 3D ResNets) lowers the video
    encoder's spatial stride for small inputs: the smoke profile's 32 px clips use 4, so F_v is
    8x8 instead of 2x2 (see cgm.backbones). `width` scales the backbone, the decoder and both
    action CNNs; `context_width` (default: width) the context extractor and F_motion, so smoke runs
    shrink everything.

    Options that depart from the paper (the laptop profile, docs/training.md): `encoder_temporal_stride`
    (1: one F_v per frame), `context_input="pair"` (the context extractor sees frames t and t+1),
    `hr_prior` added to CGMUL's raw HR logits before the softmax: "lr_flow" (the LR map's flow as a
    bilinear shift), "cost" (minus a learned inverse temperature times `upsample.matching_cost` of
    frame t+1 in frame t: the HR maps start as soft block matching) or "cost_local" (the same with
    the temperature also scaled per pixel by exp of one more map that CGMUL makes, starting at 1)
    or "cue_flow" (the sub-pixel block-matching flow `upsample.matching_flow` as a bilinear kernel,
    log(kernel + CUE_FLOOR), added to CGMUL's HR logits and, averaged to the LR grid, to M_LR's:
    both levels start as the motion and learn a correction; `cue_coarse` says whether that flow uses
    its half-resolution level, which helps a 9x9 window and hurts a 17x17 one, `cue_shift`
    whether its boxes are shiftable windows (`upsample.CUE_SHIFTS`) and `cue_still` whether a
    pixel whose best tap is the centre reads exactly zero flow, docs/training.md);
    `last_cue` (LAST_CUES) is the cue the last frame, which has no successor, gets; `cost_patch`
    the box (px) the matching cost is averaged over (`upsample.COST_PATCH` = 3 by default; larger
    boxes trade ℓ1 for smoother motion, docs/training.md).
    """

    backbone: str = "r3d18"
    num_classes: int = 101
    clip_len: int = 16
    size: int = 112
    k_lr: int = 3
    scale: int = 4
    upsampler: str = "cgmul"
    width: float = 1.0
    depth: tuple[int, ...] | None = None
    encoder_spatial_stride: int | None = None
    encoder_temporal_stride: int | None = None
    context_width: float | None = None
    decoder_channels: tuple[int, ...] = (320, 192, 128)
    lr_cnn_channels: tuple[int, ...] = (64, 128, 256, 384, 512, 512)
    lr_cnn_strides: tuple[int, ...] = (1, 2, 2, 2, 1, 2)
    hr_cnn_channels: tuple[int, ...] = (136, 136, 136, 136, 136, 272)
    hr_cnn_strides: tuple[int, ...] = (1, 1, 1, 1, 1, 2)
    heads: tuple[str, ...] = HEADS
    filter_norm: str = "softmax"
    hr_prior: str = "none"
    last_cue: str = "self"
    cost_patch: int = 3
    cue_coarse: bool = True
    cue_shift: bool = False
    cue_still: bool = False
    context_input: str = "frame"
    padding: str = "border"
    dropout: float = 0.5

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"CGMConfig: {what}")

        need(self.backbone in BACKBONES, f"unknown backbone {self.backbone!r}; valid: {BACKBONES}")
        need(self.upsampler in UPSAMPLERS, f"unknown upsampler {self.upsampler!r}; valid: {UPSAMPLERS}")
        need(
            self.filter_norm in FILTER_NORMS,
            f"unknown filter_norm {self.filter_norm!r}; valid: {FILTER_NORMS}",
        )
        need(
            self.context_input in CONTEXT_INPUTS,
            f"unknown context_input {self.context_input!r}; valid: {CONTEXT_INPUTS}",
        )
        need(self.hr_prior in HR_PRIORS, f"unknown hr_prior {self.hr_prior!r}; valid: {HR_PRIORS}")
        need(self.last_cue in LAST_CUES, f"unknown last_cue {self.last_cue!r}; valid: {LAST_CUES}")
        need(
            isinstance(self.cost_patch, int) and self.cost_patch >= 1 and self.cost_patch % 2 == 1,
            f"cost_patch must be a positive odd box size (px), got {self.cost_patch!r}",
        )
        need(isinstance(self.cue_coarse, bool), f"cue_coarse must be True or False, got {self.cue_coarse!r}")
        need(isinstance(self.cue_shift, bool), f"cue_shift must be True or False, got {self.cue_shift!r}")
        need(isinstance(self.cue_still, bool), f"cue_still must be True or False, got {self.cue_still!r}")
        need(
            self.hr_prior == "none" or (self.upsampler == "cgmul" and self.filter_norm == "softmax"),
            f"hr_prior={self.hr_prior!r} is a log-prior added to CGMUL's output before the softmax: it "
            f"needs upsampler='cgmul' and filter_norm='softmax', got {self.upsampler!r}, {self.filter_norm!r}",
        )
        need(self.padding in PADDINGS, f"unknown padding {self.padding!r}; valid: {PADDINGS}")
        need(self.scale in SCALES, f"scale must be one of {SCALES}, got {self.scale!r}")
        need(
            isinstance(self.k_lr, int) and self.k_lr >= 1 and self.k_lr % 2 == 1,
            f"k_lr must be an odd positive int (a filter with a centre tap), got {self.k_lr!r}",
        )
        need(
            isinstance(self.size, int) and self.size > 0 and self.size % self.scale == 0,
            f"size must be a positive multiple of scale={self.scale}, got {self.size!r}",
        )
        need(
            isinstance(self.clip_len, int) and self.clip_len >= 1,
            f"clip_len must be a positive int, got {self.clip_len!r}",
        )
        need(
            not self.backbone.startswith("slowfast") or self.clip_len % 8 == 0,
            f"{self.backbone} needs clip_len divisible by 8 (alpha), got {self.clip_len}",
        )
        need(
            isinstance(self.num_classes, int) and self.num_classes >= 1,
            f"num_classes must be a positive int, got {self.num_classes!r}",
        )
        need(self.width > 0, f"width must be > 0, got {self.width}")
        need(
            self.encoder_spatial_stride is None
            or (self.encoder_spatial_stride in SPATIAL_STRIDES and not self.backbone.startswith("slowfast")),
            f"encoder_spatial_stride must be None or one of {SPATIAL_STRIDES} (3D ResNets only), "
            f"got {self.encoder_spatial_stride!r} for {self.backbone}",
        )
        need(
            self.encoder_temporal_stride is None
            or (
                self.encoder_temporal_stride in TEMPORAL_STRIDES and not self.backbone.startswith("slowfast")
            ),
            f"encoder_temporal_stride must be None or one of {TEMPORAL_STRIDES} (3D ResNets only), "
            f"got {self.encoder_temporal_stride!r} for {self.backbone}",
        )
        need(
            self.context_width is None or self.context_width > 0,
            f"context_width must be None or > 0, got {self.context_width}",
        )
        need(
            self.depth is None
            or (len(self.depth) == 4 and all(isinstance(n, int) and n >= 1 for n in self.depth)),
            f"depth must be None or 4 positive ints (blocks per stage), got {self.depth!r}",
        )
        need(
            len(self.decoder_channels) >= 1 and all(c >= 1 for c in self.decoder_channels),
            f"decoder_channels must be positive ints, got {self.decoder_channels!r}",
        )
        for name in ("lr", "hr"):
            chans, strides = getattr(self, f"{name}_cnn_channels"), getattr(self, f"{name}_cnn_strides")
            need(
                len(chans) == len(strides) >= 1
                and all(c >= 1 for c in chans)
                and all(s in (1, 2) for s in strides),
                f"{name}_cnn_channels/_strides must be equally long, channels >= 1, strides 1 or 2; "
                f"got {chans!r} / {strides!r}",
            )
        need(
            set(self.heads) <= set(HEADS) and len(set(self.heads)) == len(self.heads),
            f"heads must be distinct names from {HEADS}, got {self.heads!r}",
        )
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def k_hr(self) -> int:
        """HR filter size: the LR support at full resolution (the "zero holes" rule of §4.3)."""
        return (self.k_lr - 1) * self.scale + 1

    @property
    def context_channels(self) -> int:
        """Channels of F_context (ResNet-18 conv3_x: 128 at width 1) and so of F_motion (Eq. 2)."""
        return 2 * _ch(64, self.width if self.context_width is None else self.context_width)

    def to_dict(self) -> dict:
        """Plain types only (tuples become lists), for checkpoints and result files. Fields added
        after runs were cached (ADDED_FIELDS) are left out at their default, so that the config
        hashes of those runs stay valid."""
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        return {k: v for k, v in d.items() if not (k in ADDED_FIELDS and v == ADDED_FIELDS[k])}

    @classmethod
    def from_dict(cls, d: dict) -> CGMConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"CGMConfig.from_dict: unknown keys {sorted(unknown)}; valid: {sorted(fields)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# --- small blocks ------------------------------------------------------------------------------


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1, *, dims: int = 2) -> nn.Sequential:
    conv, bn = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (Conv3d, nn.BatchNorm3d)
    return nn.Sequential(conv(c_in, c_out, 3, stride, 1, bias=False), bn(c_out), nn.ReLU(inplace=True))


def normalize_filters(logits: torch.Tensor, norm: str) -> torch.Tensor:
    """Motion filters from raw tap scores (N, K*K, H, W): softmax over the taps, or unchanged.

    Half-precision scores (the heads' convs under bf16/fp16 autocast) are raised to float32: the
    maps feed Eq. 1's warp of float32 frames, and an 81-tap softmax needs more than bf16's 8 bits."""
    if logits.dtype in (torch.bfloat16, torch.float16):
        logits = logits.float()
    if norm == "softmax":  # flushes subnormal probabilities: see cgm.warp.softmax_filters
        return softmax_filters(logits)
    if norm == "none":
        return logits
    raise ValueError(f"unknown filter_norm {norm!r}; valid: {FILTER_NORMS}")


def _stage_sizes(src: tuple[int, ...], dst: tuple[int, ...], stages: int) -> list[tuple[int, ...]]:
    """Decoder grid after each stage: x2 per stage in every dim until the target, the last = target."""
    sizes = [tuple(min(d, s * 2 ** (i + 1)) for s, d in zip(src, dst)) for i in range(stages - 1)]
    return sizes + [tuple(dst)]


# --- the LR motion decoder (§3.3) --------------------------------------------------------------


class MotionDecoder(nn.Module):
    """F_v (B, C_v, t, h, w) -> F_LR (B, C, T, H/r, W/r): per stage trilinear upsample + 3x3x3 conv.

    §3.3 replaces deconvolutions by "bilinear upsample + 3x3 conv, stride 1" (after Odena et al.);
    on 3D features that is trilinear + 3x3x3.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...]):
        super().__init__()
        c_in = (in_channels,) + tuple(channels[:-1])
        self.stages = nn.ModuleList(_conv_bn_relu(a, b, dims=3) for a, b in zip(c_in, channels))
        self.out_channels = channels[-1]

    def forward(self, f_v: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
        x = f_v
        for stage, grid in zip(self.stages, _stage_sizes(f_v.shape[2:], size, len(self.stages))):
            if tuple(x.shape[2:]) != grid:
                x = F.interpolate(x, size=grid, mode="trilinear", align_corners=False)
            x = stage(x)
        return x  # (B, C, T, H/r, W/r)


# --- the context extractor (§3.3) --------------------------------------------------------------


class ContextExtractor(nn.Module):
    """ResNet-18 conv1 ... conv3_x without the max-pool: one frame (N,3,H,W) -> (N, 2c, H/4, W/4).

    Parameter names match torchvision's resnet18 (conv1, bn1, layer1, layer2), so at width 1 a
    user's ImageNet state dict (its other keys ignored) loads with `load_pretrained`.
    """

    def __init__(self, width: float = 1.0, in_channels: int = 3):
        super().__init__()
        c = _ch(64, width)
        self.conv1 = nn.Conv2d(in_channels, c, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(c, c), BasicBlock(c, c))
        down = nn.Sequential(nn.Conv2d(c, 2 * c, 1, 2, bias=False), nn.BatchNorm2d(2 * c))
        self.layer2 = nn.Sequential(BasicBlock(c, 2 * c, 2, down), BasicBlock(2 * c, 2 * c))
        self.out_channels = 2 * c
        _init_weights(self)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(frames)))  # no max-pool: 1/2 resolution
        return self.layer2(self.layer1(x))  # (N, 2c, H/4, W/4)


def to_grid(features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bring F_context (N, C, H/4, W/4) to the LR grid H/r: bilinear up (r < 4), area down (r > 4)."""
    if tuple(features.shape[-2:]) == tuple(size):
        return features
    if size[0] > features.shape[-2]:
        return F.interpolate(features, size=size, mode="bilinear", align_corners=False)
    return F.interpolate(features, size=size, mode="area")


# --- action recognition heads (§3.4) -----------------------------------------------------------


class ActionCNN(nn.Module):
    """Six 3x3 conv+BN+ReLU layers + one FC on motion maps (B, T, K*K, H, W) -> logits (B, classes).

    Each frame's map is a K*K-channel image (frames in the batch dim); features are averaged over
    space and time before dropout and the FC.
    """

    def __init__(
        self, taps: int, channels: tuple[int, ...], strides: tuple[int, ...], num_classes: int, dropout: float
    ):
        super().__init__()
        c_in = (taps,) + tuple(channels[:-1])
        self.convs = nn.Sequential(*(_conv_bn_relu(a, b, s) for a, b, s in zip(c_in, channels, strides)))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels[-1], num_classes)
        _init_weights(self.convs)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        b, t = maps.shape[:2]
        x = self.convs(maps.flatten(0, 1))  # (B*T, C, h, w)
        x = x.mean(dim=(2, 3)).view(b, t, -1).mean(dim=1)  # (B, C)
        return self.fc(self.dropout(x))


class BackboneHead(nn.Module):
    """Global average pool of F_v + dropout + FC (the paper's "one fully-connected layer")."""

    def __init__(self, channels: int, num_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, f_v: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(f_v.mean(dim=(2, 3, 4))))


class VideoClassifier(nn.Module):
    """A bare video encoder + pool + FC: Table 8's baselines and the benchmarks' reference model."""

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        *,
        width: float = 1.0,
        depth: tuple[int, ...] | None = None,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.encoder = build_backbone(backbone, width, depth)
        self.backbone_head = BackboneHead(self.encoder.out_channels, num_classes, dropout)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.backbone_head(self.encoder(clip))  # (B, num_classes)


# --- CGM-Net -----------------------------------------------------------------------------------


@dataclass
class CGMOutput:
    """lr_maps (B,T,k_lr^2,H/r,W/r), hr_maps (B,T,k_hr^2,H,W), logits {head: (B, num_classes)}."""

    lr_maps: torch.Tensor
    hr_maps: torch.Tensor
    logits: dict[str, torch.Tensor]


class CGMNet(nn.Module):
    """Context Guided Motion Network (Fig. 3) with the action heads of §3.4."""

    def __init__(self, cfg: CGMConfig):
        super().__init__()
        if not isinstance(cfg, CGMConfig):
            raise ValueError(f"CGMNet needs a CGMConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        k2_lr, k2_hr = cfg.k_lr**2, cfg.k_hr**2
        self.encoder = build_backbone(
            cfg.backbone,
            cfg.width,
            cfg.depth,
            spatial_stride=cfg.encoder_spatial_stride,
            temporal_stride=cfg.encoder_temporal_stride,
        )
        decoder_channels = tuple(_ch(c, cfg.width) for c in cfg.decoder_channels)
        self.decoder = MotionDecoder(self.encoder.out_channels, decoder_channels)
        self.lr_motion = nn.Conv2d(self.decoder.out_channels, k2_lr, 3, padding=1)
        if cfg.upsampler == "cgmul":
            ctx_width = cfg.width if cfg.context_width is None else cfg.context_width
            self.context = ContextExtractor(ctx_width, 6 if cfg.context_input == "pair" else 3)
            self.motion_features = nn.Conv2d(self.decoder.out_channels, cfg.context_channels, 3, padding=1)
            local = cfg.hr_prior == "cost_local"  # CGMUL also makes a per-pixel log-temperature offset
            self.upsampler = CGMUL(cfg.context_channels, cfg.k_lr, cfg.k_hr, cfg.scale, extra=int(local))
            if cfg.hr_prior in ("cost", "cost_local"):  # log of the learned inverse temperature
                self.cost_scale = nn.Parameter(torch.tensor(COST_PRIOR_INIT).log())
        else:
            up = NearestMotionUpsampler if cfg.upsampler == "nearest" else BilinearMotionUpsampler
            self.context, self.motion_features = None, None
            self.upsampler = up(cfg.k_lr, cfg.scale)
        _init_weights(self.decoder)
        self.backbone_head = (
            BackboneHead(self.encoder.out_channels, cfg.num_classes, cfg.dropout)
            if "backbone" in cfg.heads
            else None
        )
        self.lr_head = self._action_cnn("lr", k2_lr) if "lr" in cfg.heads else None
        self.hr_head = self._action_cnn("hr", k2_hr) if "hr" in cfg.heads else None

    def _action_cnn(self, name: str, taps: int) -> ActionCNN:
        """The action CNN on the `name` ("lr" / "hr") motion maps of `taps` channels (§3.4)."""
        cfg = self.cfg
        channels = tuple(_ch(c, cfg.width) for c in getattr(cfg, f"{name}_cnn_channels"))
        return ActionCNN(taps, channels, getattr(cfg, f"{name}_cnn_strides"), cfg.num_classes, cfg.dropout)

    def _check_clip(self, clip: torch.Tensor) -> None:
        cfg = self.cfg
        if clip.ndim != 5 or clip.shape[1] != 3:
            raise ValueError(f"CGMNet expects a clip (B, 3, T, H, W), got shape {tuple(clip.shape)}")
        if clip.shape[2] != cfg.clip_len:
            raise ValueError(f"CGMNet expects T = clip_len = {cfg.clip_len} frames, got {clip.shape[2]}")
        if clip.shape[3] % cfg.scale or clip.shape[4] % cfg.scale:
            raise ValueError(f"H and W must be divisible by scale={cfg.scale}, got {tuple(clip.shape[3:])}")

    def _per_pair(self, cue, frames: torch.Tensor, successors: torch.Tensor) -> torch.Tensor:
        """`cue(frame, successor)` of every frame, (B*T, ...); frames and successors (B, T, 3, H, W).
        With last_cue="previous" the last frame (its successor is itself) takes the cue of the
        pair before it instead."""
        if self.cfg.last_cue == "self" or frames.shape[1] < 2:
            return cue(frames.flatten(0, 1), successors.flatten(0, 1))
        b, t = frames.shape[:2]
        pairs = cue(frames[:, :-1].flatten(0, 1), successors[:, :-1].flatten(0, 1))
        pairs = pairs.view(b, t - 1, *pairs.shape[1:])  # (B, T-1, ...)
        return torch.cat([pairs, pairs[:, -1:]], dim=1).flatten(0, 1)  # (B*T, ...)

    def _cost(self, frames: torch.Tensor, successors: torch.Tensor) -> torch.Tensor:
        """`matching_cost` of each frame's successor in it (last_cue applied), (B*T, k^^2, H, W)."""
        k_hr, patch = self.cfg.k_hr, self.cfg.cost_patch
        return self._per_pair(lambda a, b: matching_cost(a, b, k_hr, patch), frames, successors)

    def _cue_flow(self, clip: torch.Tensor) -> torch.Tensor:
        """`matching_flow` of each frame's successor in it (last_cue applied), (B*T, 2, H, W)."""
        frames = clip.transpose(1, 2).float()  # (B, T, 3, H, W)
        successors = torch.cat([frames[:, 1:], frames[:, -1:]], dim=1)  # (B, T, 3, H, W)
        cfg = self.cfg
        kw = dict(coarse=cfg.cue_coarse, shift=cfg.cue_shift, still=cfg.cue_still)
        return self._per_pair(lambda a, b: matching_flow(a, b, cfg.k_hr, **kw), frames, successors)

    def forward(self, clip: torch.Tensor) -> CGMOutput:
        self._check_clip(clip)
        cfg = self.cfg
        b, _, t, h, w = clip.shape
        lr_grid = (h // cfg.scale, w // cfg.scale)
        f_v = self.encoder(clip)  # (B, C_v, t', h', w')
        f_lr = self.decoder(f_v, (t,) + lr_grid)  # (B, C, T, h, w)
        f_lr = f_lr.transpose(1, 2).flatten(0, 1)  # (B*T, C, h, w)
        lr_logits = self.lr_motion(f_lr)  # (B*T, k^2, h, w)
        if cfg.hr_prior == "cue_flow":  # both levels start from the matching flow (coarse to fine)
            cue = self._cue_flow(clip)  # (B*T, 2, H, W) in HR px
            lr_cue = F.avg_pool2d(cue, cfg.scale) / cfg.scale  # (B*T, 2, h, w) in LR px
            lr_logits = lr_logits + torch.log(flow_kernel(lr_cue, cfg.k_lr) + CUE_FLOOR)
        m_lr = normalize_filters(lr_logits, cfg.filter_norm)  # (B*T, k^2, h, w)
        if self.context is not None:
            frames = clip.transpose(1, 2)  # (B, T, 3, H, W)
            # frame t+1 of each frame t; the last frame has no successor in the clip: itself
            successors = torch.cat([frames[:, 1:], frames[:, -1:]], dim=1)  # (B, T, 3, H, W)
            if cfg.context_input == "pair":
                context_in = torch.cat([frames, successors], dim=2)  # (B, T, 6, H, W)
            else:
                context_in = frames
            f_context = to_grid(self.context(context_in.flatten(0, 1)), lr_grid)  # (B*T, C, h, w)
            m_hr = self.upsampler(f_context, m_lr, self.motion_features(f_lr))
            if cfg.hr_prior == "lr_flow":  # start from the LR motion as a sub-pixel shift
                m_hr = m_hr + lr_flow_prior(m_lr, cfg.scale, cfg.k_hr)
            elif cfg.hr_prior == "cue_flow":  # the matching flow as a bilinear kernel, CGMUL corrects
                m_hr = m_hr + torch.log(flow_kernel(cue, cfg.k_hr) + CUE_FLOOR)
            elif cfg.hr_prior in ("cost", "cost_local"):  # soft block matching of t+1 in t, learned tau
                log_scale = self.cost_scale
                if cfg.hr_prior == "cost_local":  # CGMUL's extra map: where to sharpen or soften
                    # split, not two slices: one backward concatenation instead of two zero-filled
                    # (B*T, k^^2 + 1, H, W) gradients
                    m_hr, offset = m_hr.split(
                        [m_hr.shape[1] - 1, 1], dim=1
                    )  # (B*T, k^^2, H, W), (B*T, 1, H, W)
                    log_scale = log_scale + offset
                temperature = log_scale.clamp(max=COST_LOG_SCALE_MAX).exp()
                # + temperature * (-cost), not - temperature * cost: the same numbers, but the
                # backward skips negating an 81-channel gradient (the cost needs none: 4% of a step)
                neg_cost = self._cost(frames, successors).neg_()  # (B*T, k^^2, H, W)
                m_hr = m_hr + temperature * neg_cost
            m_hr = normalize_filters(m_hr, cfg.filter_norm)  # (B*T, k^^2, H, W)
        else:  # dilating a normalised filter keeps it normalised: no second softmax
            m_hr = self.upsampler(None, m_lr, None)
        lr_maps = m_lr.view(b, t, *m_lr.shape[1:])  # (B, T, k^2, h, w)
        hr_maps = m_hr.view(b, t, *m_hr.shape[1:])  # (B, T, k^^2, H, W)
        logits = {}
        if self.backbone_head is not None:
            logits["backbone"] = self.backbone_head(f_v)
        if self.lr_head is not None:
            logits["lr"] = self.lr_head(lr_maps)
        if self.hr_head is not None:
            logits["hr"] = self.hr_head(hr_maps)
        return CGMOutput(lr_maps=lr_maps, hr_maps=hr_maps, logits=logits)


# --- inference pipelines, parameters, weights --------------------------------------------------


def fuse(logits: dict[str, torch.Tensor], pipeline: str) -> torch.Tensor:
    """Average of the softmax scores of the pipeline's heads (Table 8's †): (B, num_classes)."""
    if pipeline not in PIPELINE_HEADS:
        raise ValueError(f"unknown pipeline {pipeline!r}; valid: {tuple(PIPELINE_HEADS)}")
    heads = PIPELINE_HEADS[pipeline]
    missing = [h for h in heads if h not in logits]
    if missing:
        raise ValueError(f"pipeline {pipeline!r} needs heads {heads}; logits lack {missing}")
    return torch.stack([logits[h].softmax(dim=-1) for h in heads]).mean(dim=0)


def pipeline_params(model: CGMNet, pipeline: str) -> int:
    """Parameters of the modules a pipeline runs at inference (Table 8)."""
    if pipeline not in PIPELINE_MODULES:
        raise ValueError(f"unknown pipeline {pipeline!r}; valid: {tuple(PIPELINE_MODULES)}")
    missing = [h for h in PIPELINE_HEADS[pipeline] if f"{h}_head" not in dict(model.named_children())]
    if missing:
        raise ValueError(f"pipeline {pipeline!r} needs heads {missing} that the model was built without")
    return sum(
        p.numel()
        for name in PIPELINE_MODULES[pipeline]
        if getattr(model, name, None) is not None
        for p in getattr(model, name).parameters()
    )


def set_identity_motion_(model: CGMNet, logit: float = 30.0) -> CGMNet:
    """Force M_LR (and CGMUL's M_HR) to the identity filter: zero the last convs' weights, put
    `logit` on the centre tap's bias. With filter_norm="softmax" the maps are then one-hot at the
    centre up to exp(-logit); with "none" the bias is 1 on the centre tap. For tests and sanity checks.
    """
    norm = model.cfg.filter_norm
    value = logit if norm == "softmax" else 1.0
    with torch.no_grad():
        convs = [(model.lr_motion, model.cfg.k_lr, 1)]
        if model.context is not None:
            convs.append((model.upsampler.conv, model.cfg.k_hr, model.cfg.scale**2))
        for conv, k, sub in convs:
            conv.weight.zero_()
            bias = torch.full((conv.out_channels,), -value if norm == "softmax" else 0.0)
            # CGMUL's conv feeds F.pixel_shuffle: channel = tap * r*r + sub-pixel (tap major); any
            # extra maps after the taps (hr_prior="cost_local") get a zero bias.
            bias[k * k * sub :] = 0.0
            bias[: k * k * sub].view(k * k, sub)[k * k // 2] = value
            conv.bias.copy_(bias)
    return model


def load_pretrained(model: nn.Module, path: str) -> tuple[list[str], list[str]]:
    """Load a user's local state dict (weights_only=True) into `model`, non-strictly.

    Strips DDP/compile prefixes (`module.`, `_orig_mod.`) and accepts a checkpoint dict holding the
    weights under "model" or "state_dict". Shape mismatches raise ValueError; missing and unexpected
    keys are logged and returned as (missing, unexpected). (`cgm.checkpoints.load_weights`, partial.)
    """
    report = checkpoints.load_weights(model, path, partial=True)
    return report.missing, report.unexpected
