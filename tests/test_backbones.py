"""Tests for cgm.backbones: shapes, strides, torchvision equivalence, parameter counts, errors."""

import pytest
import torch
import torchvision
from torch import nn

from cgm.backbones import BACKBONES, build_backbone


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "name",
    [n if n == "r3d18" else pytest.param(n, marks=pytest.mark.slow) for n in BACKBONES],
)
def test_forward_backward_shapes_and_strides(name):
    torch.manual_seed(0)
    net = build_backbone(name, width=0.125)
    clip = torch.randn(1, 3, 8, 64, 64, requires_grad=True)
    f_v = net(clip)
    t, h = 8 // net.temporal_stride, 64 // net.spatial_stride
    assert f_v.shape == (1, net.out_channels, t, h, h)
    f_v.square().mean().backward()
    assert clip.grad is not None and clip.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("name", ["r3d18", "r3d50", "rx3d101", "slowfast_r50"])
def test_shallow_variant(name):
    deep, shallow = build_backbone(name, 0.125), build_backbone(name, 0.125, depth=(1, 1, 1, 1))
    assert n_params(shallow) < n_params(deep)
    f_v = shallow(torch.randn(2, 3, 8, 32, 32))  # batch 2: SlowFast's res5 is 1x1x1 per clip here
    assert f_v.shape[1] == shallow.out_channels == deep.out_channels


def test_expected_strides_and_channels():
    expected = {
        "r3d18": (512, 8, 16),
        "r3d34": (512, 8, 16),
        "r3d50": (2048, 8, 16),
        "r3d101": (2048, 8, 16),
        "rx3d101": (2048, 8, 16),
        "slowfast_r50": (2048 + 256, 1, 32),
        "slowfast_r101": (2048 + 256, 1, 32),
    }
    assert set(expected) == set(BACKBONES)
    for name, want in expected.items():
        with torch.device("meta"):  # full width without allocating or initialising weights
            net = build_backbone(name)
        assert (net.out_channels, net.temporal_stride, net.spatial_stride) == want


@pytest.mark.slow
def test_r3d18_matches_torchvision_and_table8():
    ours = build_backbone("r3d18")
    tv = torchvision.models.video.r3d_18(weights=None, num_classes=101)
    # Table 8: 3D-ResNet18 with a 101-way FC has 33.2M parameters.
    assert abs(n_params(tv) - 33.2e6) < 0.05e6
    assert n_params(ours) + n_params(nn.Linear(ours.out_channels, 101)) == n_params(tv)
    # Same parameter names and shapes: torchvision's weights load strictly, same features.
    state = {k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}
    ours.load_state_dict(state, strict=True)
    tv.eval(), ours.eval()
    clip = torch.randn(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tv_features = tv.layer4(tv.layer3(tv.layer2(tv.layer1(tv.stem(clip)))))
        torch.testing.assert_close(ours(clip), tv_features)


def test_r3d34_matches_table8_baseline():
    with torch.device("meta"):
        net = build_backbone("r3d34")  # Table 8's Baseline (3D-ResNet34): 63.5M with 101 classes
    assert abs(n_params(net) + 512 * 101 + 101 - 63.5e6) < 0.05e6


def test_init_like_torchvision():
    net = build_backbone("r3d50", width=0.25)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm3d)]
    assert all((m.weight == 1).all() and (m.bias == 0).all() for m in bns)
    conv = net.layer3[0].conv2[0]  # kaiming normal, fan_out: std = sqrt(2 / (c_out * k^3))
    expected = (2 / (conv.out_channels * 27)) ** 0.5
    assert abs(conv.weight.std().item() / expected - 1) < 0.1


def test_width_rules():
    net = build_backbone("rx3d101", width=0.1)
    for m in net.modules():
        if isinstance(m, nn.Conv3d):
            assert m.out_channels >= 8
            if m.groups > 1:
                assert m.groups == 32 and m.in_channels % 32 == 0 and m.out_channels % 32 == 0
    assert build_backbone("r3d18", width=0.01).out_channels == 8


def test_slowfast_output_is_upsampled_slow_then_fast():
    torch.manual_seed(0)
    net = build_backbone("slowfast_r50", width=0.125, depth=(1, 1, 1, 1), alpha=4).eval()
    with torch.no_grad():
        f_v = net(torch.randn(1, 3, 8, 32, 32))
    c_slow = net.slow.out_channels
    assert f_v.shape[1] == c_slow + net.fast.out_channels and f_v.shape[2] == 8
    slow = f_v[:, :c_slow]
    torch.testing.assert_close(slow[:, :, 0:4], slow[:, :, 0:1].expand(-1, -1, 4, -1, -1))
    torch.testing.assert_close(slow[:, :, 4:8], slow[:, :, 4:5].expand(-1, -1, 4, -1, -1))
    assert not torch.allclose(slow[:, :, 0], slow[:, :, 4])
    fast = f_v[:, c_slow:]
    assert not torch.allclose(fast[:, :, 0], fast[:, :, 1])  # the fast path keeps every frame


@pytest.mark.parametrize("stride", [1, 2, 4, 8, 16])
def test_spatial_stride_removes_the_earliest_strides(stride):
    """A lower spatial stride keeps every weight (same parameters, same names) and the temporal
    stride; F_v is H / stride; the stem loses its stride first, the last stage never does."""
    ref = build_backbone("r3d18", width=0.125, depth=(1, 1, 1, 1))
    net = build_backbone("r3d18", width=0.125, depth=(1, 1, 1, 1), spatial_stride=stride)
    assert net.spatial_stride == stride and net.temporal_stride == 8
    assert {k: v.shape for k, v in net.state_dict().items()} == {
        k: v.shape for k, v in ref.state_dict().items()
    }
    assert net.stem[0].stride == (1, 1 if stride < 16 else 2, 1 if stride < 16 else 2)
    assert net.layer4[0].conv1[0].stride[1] == (2 if stride > 1 else 1)
    assert net(torch.randn(1, 3, 8, 32, 32)).shape[2:] == (1, 32 // stride, 32 // stride)


def test_errors():
    for name, stride in (("r3d18", 3), ("r3d18", 32), ("slowfast_r50", 4)):
        with pytest.raises(ValueError, match="spatial_stride"):
            build_backbone(name, spatial_stride=stride)
    with pytest.raises(ValueError, match="r3d18"):
        build_backbone("resnet18")
    for width in (0, -1.0):
        with pytest.raises(ValueError, match="width"):
            build_backbone("r3d18", width=width)
    with pytest.raises(ValueError, match="depth"):
        build_backbone("r3d18", depth=(1, 1, 1))
    with pytest.raises(ValueError, match="alpha"):
        build_backbone("slowfast_r50", alpha=0)
    net = build_backbone("slowfast_r50", width=0.125, depth=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="divisible by alpha=8"):
        net(torch.randn(1, 3, 12, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        build_backbone("r3d18", width=0.125)(torch.randn(3, 8, 32, 32))
