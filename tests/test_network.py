"""cgm.network: CGMConfig, CGM-Net shapes and gradients, identity maps, fuse, weights, Table 8 calibration."""

import dataclasses
import json
import math

import pytest
import torch
from torchvision.models import resnet18

from cgm.flops import TABLE8_PIPELINES, table8_cost
from cgm.losses import cgm_loss, warp_frames
from cgm.network import (
    CGMConfig,
    CGMNet,
    ContextExtractor,
    fuse,
    load_pretrained,
    pipeline_params,
    set_identity_motion_,
    to_grid,
)
from cgm.paper import paper_value

TINY = dict(
    num_classes=5,
    clip_len=8,
    size=32,
    width=0.125,
    depth=(1, 1, 1, 1),
    dropout=0.0,
    decoder_channels=(64, 64, 64),
    lr_cnn_channels=(64,) * 6,
    hr_cnn_channels=(64,) * 6,
)


def tiny(**kw) -> CGMConfig:
    return CGMConfig(**{**TINY, **kw})


def clip_for(cfg: CGMConfig, batch: int = 2, extra: int = 0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, cfg.clip_len + extra, cfg.size, cfg.size, generator=g) * 2 - 1


def test_default_config_is_the_paper_model():
    cfg = CGMConfig()
    assert (cfg.backbone, cfg.num_classes, cfg.clip_len, cfg.size) == ("r3d18", 101, 16, 112)
    assert (cfg.k_lr, cfg.scale, cfg.k_hr, cfg.context_channels) == (3, 4, 9, 128)
    with torch.device("meta"):
        out = CGMNet(cfg)(torch.empty(1, 3, 16, 112, 112))
    assert out.hr_maps.shape == (1, 16, 81, 112, 112)
    assert out.lr_maps.shape == (1, 16, 9, 28, 28)
    assert {k: tuple(v.shape) for k, v in out.logits.items()} == {h: (1, 101) for h in cfg.heads}


@pytest.mark.slow
def test_forward_backward_tiny():
    torch.manual_seed(0)
    cfg = tiny()
    model = CGMNet(cfg)
    clip = clip_for(cfg, extra=1)
    out = model(clip[:, :, :-1])
    assert out.lr_maps.shape == (2, 8, 9, 8, 8) and out.hr_maps.shape == (2, 8, 81, 32, 32)
    assert all(v.shape == (2, 5) for v in out.logits.values()) and set(out.logits) == {"backbone", "lr", "hr"}
    # softmax filters: non-negative, sum to one over the taps
    assert torch.allclose(out.hr_maps.sum(dim=2), torch.ones(2, 8, 32, 32), atol=1e-5)
    assert out.lr_maps.min() >= 0
    loss, metrics = cgm_loss(out, clip, lambda_lr=1.0, lambda_cls=0.0)  # self-supervised only
    assert math.isfinite(loss.item()) and set(metrics) == {"loss", "l_hr", "l_lr", "l_cls", "l1_hr"}
    loss.backward()
    stem = model.encoder.stem[0].weight.grad
    assert stem is not None and stem.abs().sum() > 0  # the reconstruction loss reaches the backbone
    assert model.context.conv1.weight.grad.abs().sum() > 0  # ... and the context extractor
    assert model.backbone_head.fc.weight.grad is None  # lambda_cls = 0: no classification gradient
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    "upsampler,scale",
    [("cgmul", 1), ("cgmul", 2), ("cgmul", 4), ("cgmul", 8), ("nearest", 2), ("nearest", 4), ("bilinear", 4)],
)
def test_shapes_per_upsampler_and_scale(upsampler, scale):
    cfg = tiny(upsampler=upsampler, scale=scale, clip_len=4, heads=("hr",))
    with torch.no_grad():
        out = CGMNet(cfg).eval()(clip_for(cfg, batch=1))
    k_hr = 2 * scale + 1
    assert cfg.k_hr == k_hr
    assert out.lr_maps.shape == (1, 4, 9, 32 // scale, 32 // scale)
    assert out.hr_maps.shape == (1, 4, k_hr * k_hr, 32, 32)
    assert set(out.logits) == {"hr"} and out.logits["hr"].shape == (1, 5)
    # normalised filters: the fixed upsamplers keep M_LR's normalisation (no second softmax)
    assert torch.allclose(out.hr_maps.sum(dim=2), torch.ones(1, 4, 32, 32), atol=1e-5)


@pytest.mark.parametrize(
    "upsampler,norm",
    [("cgmul", "softmax"), ("cgmul", "none"), ("nearest", "softmax"), ("bilinear", "softmax")],
)
def test_identity_motion_reconstructs_inputs(upsampler, norm):
    cfg = tiny(upsampler=upsampler, filter_norm=norm, clip_len=4)
    model = set_identity_motion_(CGMNet(cfg).eval())
    clip = clip_for(cfg, seed=1)
    with torch.no_grad():
        out = model(clip)
        assert out.hr_maps[:, :, cfg.k_hr**2 // 2].min() > 1 - 1e-6
        assert torch.allclose(warp_frames(clip, out.hr_maps), clip, atol=1e-5)
        lr = torch.nn.functional.avg_pool3d(clip, (1, 4, 4))
        assert torch.allclose(warp_frames(lr, out.lr_maps), lr, atol=1e-5)


def test_identity_on_a_static_clip_gives_zero_reconstruction_error():
    cfg = tiny(clip_len=4)
    model = set_identity_motion_(CGMNet(cfg).eval())
    still = clip_for(cfg, batch=1)[:, :, :1].expand(1, 3, 5, 32, 32)
    with torch.no_grad():
        _, metrics = cgm_loss(model(still[:, :, :4]), still)
    assert metrics["l1_hr"] < 1e-5 and metrics["l_lr"] < 1e-5


def test_fuse_by_hand():
    logits = {
        "backbone": torch.tensor([[0.0, math.log(3.0)]]),  # softmax [0.25, 0.75]
        "lr": torch.tensor([[0.0, 0.0]]),  # [0.5, 0.5]
        "hr": torch.tensor([[math.log(4.0), 0.0]]),
    }  # [0.8, 0.2]
    assert torch.allclose(fuse(logits, "backbone"), torch.tensor([[0.25, 0.75]]))
    assert torch.allclose(fuse(logits, "lr"), torch.tensor([[0.375, 0.625]]))
    assert torch.allclose(fuse(logits, "hr"), torch.tensor([[0.525, 0.475]]))
    assert torch.allclose(fuse(logits, "lr+hr"), torch.tensor([[1.55 / 3, 1.45 / 3]]))
    with pytest.raises(ValueError, match="unknown pipeline"):
        fuse(logits, "flow")
    with pytest.raises(ValueError, match="lack \\['hr'\\]"):
        fuse({"backbone": logits["backbone"]}, "hr")


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(backbone="r3d19"), "unknown backbone"),
        (dict(upsampler="pixelshuffle"), "unknown upsampler"),
        (dict(filter_norm="sigmoid"), "unknown filter_norm"),
        (dict(scale=3), "scale must be one of"),
        (dict(k_lr=4), "odd"),
        (dict(size=114), "multiple of scale"),
        (dict(padding="reflect"), "padding"),
        (dict(heads=("backbone", "flow")), "heads"),
        (dict(dropout=1.0), "dropout"),
        (dict(lr_cnn_strides=(1, 2)), "lr_cnn"),
        (dict(depth=(1, 1)), "depth"),
        (dict(width=0), "width"),
        (dict(backbone="slowfast_r50", clip_len=12), "divisible by 8"),
        (dict(num_classes=0), "num_classes"),
        (dict(encoder_spatial_stride=3), "encoder_spatial_stride"),
        (dict(backbone="slowfast_r50", encoder_spatial_stride=4), "encoder_spatial_stride"),
    ],
)
def test_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        CGMConfig(**kw)


def test_config_round_trip():
    cfg = tiny(heads=("backbone", "hr"), upsampler="bilinear", context_width=0.25)
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain types only
    assert CGMConfig.from_dict(d) == cfg
    assert CGMConfig.from_dict(CGMConfig().to_dict()) == CGMConfig()
    with pytest.raises(ValueError, match="unknown keys"):
        CGMConfig.from_dict({**d, "k_hr": 9})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.scale = 2


def test_forward_input_validation():
    cfg = tiny(clip_len=4)
    model = CGMNet(cfg)
    for bad, match in [
        (torch.zeros(3, 4, 32, 32), "\\(B, 3, T, H, W\\)"),
        (torch.zeros(1, 1, 4, 32, 32), "\\(B, 3, T, H, W\\)"),
        (torch.zeros(1, 3, 5, 32, 32), "clip_len = 4"),
        (torch.zeros(1, 3, 4, 30, 32), "divisible by scale=4"),
    ]:
        with pytest.raises(ValueError, match=match):
            model(bad)
    with pytest.raises(ValueError, match="CGMConfig"):
        CGMNet({"backbone": "r3d18"})


def test_context_extractor_is_resnet18_conv1_to_conv3x_without_maxpool():
    with torch.device("meta"):
        ctx, ref = ContextExtractor(1.0), resnet18(weights=None)
    ref_keys = {
        k: v.shape
        for k, v in ref.state_dict().items()
        if k.split(".")[0] in ("conv1", "bn1", "layer1", "layer2")
    }
    assert {k: v.shape for k, v in ctx.state_dict().items()} == ref_keys
    out = ContextExtractor(0.125)(torch.zeros(2, 3, 32, 48))
    assert out.shape == (2, 16, 8, 12)  # 1/4 resolution: no max-pool


def test_to_grid_resamples_context_to_the_lr_grid():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(to_grid(x, (4, 4)), x)
    assert torch.allclose(to_grid(x, (2, 2)), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))  # area mean
    assert to_grid(x, (8, 8)).shape == (1, 1, 8, 8)


def test_load_pretrained_strips_prefixes_and_reports(tmp_path):
    torch.manual_seed(0)
    src, dst = CGMNet(tiny(clip_len=4)), CGMNet(tiny(clip_len=4))
    state = {"module." + k: v for k, v in src.state_dict().items() if not k.startswith("hr_head")}
    state["module.extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "w.pt")
    missing, unexpected = load_pretrained(dst, str(tmp_path / "w.pt"))
    assert unexpected == ["extra.weight"]
    assert missing and all(k.startswith("hr_head") for k in missing)
    assert torch.equal(dst.encoder.stem[0].weight, src.encoder.stem[0].weight)
    torch.save({"lr_motion.weight": torch.zeros(3)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="shape mismatch"):
        load_pretrained(dst, str(tmp_path / "bad.pt"))


def test_parameter_counts_match_table8_within_5_percent():
    with torch.device("meta"):
        model = CGMNet(CGMConfig(backbone="r3d18", num_classes=101))
    for row, pipeline in TABLE8_PIPELINES.items():
        paper = paper_value("table8_cost", row, "params_m")
        assert pipeline_params(model, pipeline) / 1e6 == pytest.approx(paper, rel=0.05), row
    assert sum(p.numel() for p in model.parameters()) == pipeline_params(model, "lr+hr")


def test_gflop_ratios_match_table8_within_15_percent():
    cost = table8_cost(backbone="r3d18", frames=16, size=112, num_classes=101).set_index("pipeline")
    paper_backbone = paper_value("table8_cost", "Backbone", "gflops")
    for row in TABLE8_PIPELINES:
        paper_ratio = paper_value("table8_cost", row, "gflops") / paper_backbone
        assert cost.at[row, "gflops_ratio"] == pytest.approx(paper_ratio, rel=0.15), row
    assert cost.at["Baseline 3D-ResNet18", "gflops"] == pytest.approx(40.7, abs=0.05)  # torchvision's figure


def test_cost_patch_is_the_matching_cost_box():
    from cgm.upsample import matching_cost

    kw = dict(width=0.125, depth=(1, 1, 1, 1), clip_len=3, size=16, encoder_spatial_stride=4, heads=())
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(1, 3, 3, 16, 16, generator=g).transpose(1, 2)  # (B, T, 3, H, W)
    successors = torch.cat([frames[:, 1:], frames[:, -1:]], dim=1)
    for patch in (3, 5):
        net = CGMNet(CGMConfig(hr_prior="cost_local", cost_patch=patch, **kw))
        want = matching_cost(frames.flatten(0, 1), successors.flatten(0, 1), net.cfg.k_hr, patch)
        assert torch.equal(net._cost(frames, successors), want)
    assert "cost_patch" not in CGMConfig(**kw).to_dict()  # the default leaves cached hashes alone
    with pytest.raises(ValueError, match="cost_patch"):
        CGMConfig(cost_patch=4)
