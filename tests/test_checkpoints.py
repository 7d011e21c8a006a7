"""cgm.checkpoints: atomic save, safe load, slim weights, prefix stripping, the load policy."""

import pickle

import pytest
import torch
from torch import nn

from cgm import checkpoints as C
from cgm.experiments import fresh_heads
from cgm.network import CGMConfig


class Net(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.lr_head = nn.Linear(4, classes)


def test_save_is_atomic_with_a_temp_file_of_its_own(tmp_path):
    path = C.save({"x": torch.ones(2)}, tmp_path / "sub" / "checkpoint.pt")
    assert torch.equal(C.load(path)["x"], torch.ones(2))
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # no temp left behind
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        C.save({"x": lambda: 0}, path)  # unpicklable: the old file stays whole
    assert torch.equal(C.load(path)["x"], torch.ones(2))
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "is empty"),
        (b"PK\x03\x04 truncated", "cannot be read"),
        (b"not a torch file at all", "cannot be read"),
    ],
)
def test_unreadable_checkpoints_name_the_file(tmp_path, content, match):
    path = tmp_path / "c.pt"
    path.write_bytes(content)
    with pytest.raises(C.CheckpointError, match=match) as err:
        C.load(path)
    assert str(path) in str(err.value)


def test_truncated_real_checkpoint_and_non_dict(tmp_path):
    path = C.save({"model": Net().state_dict()}, tmp_path / "c.pt")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(C.CheckpointError, match="cannot be read"):
        C.load(path)
    torch.save([torch.ones(1)], tmp_path / "list.pt")
    with pytest.raises(C.CheckpointError, match="holds a list"):
        C.load(tmp_path / "list.pt")


@pytest.mark.slow
def test_prefixes_are_stripped_in_one_place():
    assert C.strip_prefixes("module._orig_mod.module.body.weight") == "body.weight"
    weights = C.model_weights({"state_dict": {"module.body.weight": torch.ones(1), "meta": 3}})
    assert list(weights) == ["body.weight"]
    wrapped = torch.compile(Net()) if hasattr(torch, "compile") else Net()
    assert isinstance(C.unwrap(wrapped), Net)


def test_load_policy_reports_everything_and_fails_unless_named(tmp_path):
    src, dst = Net(classes=5), Net(classes=3)
    state = {"module." + k: v for k, v in src.state_dict().items()} | {"extra.weight": torch.zeros(1)}
    with pytest.raises(C.CheckpointError) as err:
        C.load_weights(dst, state)
    assert "lr_head.weight is (5, 4) in the checkpoint, (3, 4) in the model" in str(err.value)
    assert "not in the model: extra.weight" in str(err.value)
    report = C.load_weights(dst, state, skip=("lr_head", "extra"))
    assert report.loaded == ["body.weight", "body.bias"] and report.unexpected == ["extra.weight"]
    assert report.left_random == ["lr_head.bias", "lr_head.weight"]
    assert torch.equal(dst.body.weight, src.body.weight)
    assert "lr_head (2)" in str(report)
    missing = {"body.weight": src.body.weight}
    with pytest.raises(C.CheckpointError, match="missing from the checkpoint: body.bias"):
        C.load_weights(dst, missing)
    assert C.load_weights(dst, missing, partial=True).missing == [
        "body.bias",
        "lr_head.weight",
        "lr_head.bias",
    ]
    with pytest.raises(C.CheckpointError, match="shape mismatch"):  # partial never hides a shape
        C.load_weights(dst, {"lr_head.weight": torch.zeros(5, 4)}, partial=True)


def test_slim_keeps_fp16_weights_and_configs(tmp_path):
    net = Net()
    path = C.save(
        {
            "model": net.state_dict(),
            "optimizer": {},
            "step": 7,
            "train_config": {"lr": 1.0},
            "model_config": {"width": 1},
        },
        tmp_path / "c.pt",
    )
    assert C.is_training_state(C.load(path))
    C.slim(path)
    state = C.load(path)
    assert state["format"] == C.SLIM_FORMAT and state["step"] == 7 and not C.is_training_state(state)
    assert state["model"]["body.weight"].dtype == torch.float16
    C.load_weights(Net(), path)  # fp16 weights load into the fp32 model


def test_fresh_heads_are_the_heads_the_configs_differ_in():
    selfsup = CGMConfig(heads=(), num_classes=4).to_dict()
    assert fresh_heads(CGMConfig(num_classes=4), selfsup) == ("backbone_head", "lr_head", "hr_head")
    assert fresh_heads(CGMConfig(num_classes=4, heads=("backbone",)), selfsup) == ("backbone_head",)
    assert fresh_heads(CGMConfig(num_classes=4), CGMConfig(num_classes=4).to_dict()) == ()
    assert fresh_heads(CGMConfig(num_classes=101), CGMConfig(num_classes=400).to_dict()) == (
        "backbone_head",
        "lr_head",
        "hr_head",
    )
    assert fresh_heads(CGMConfig(), None) == ()


def test_config_differences_name_fields():
    assert C.config_differences({"a": 1, "b": (1, 2), "old": 0}, {"a": 2, "b": [1, 2], "new": 1}) == [
        "a: 1 -> 2"
    ]
    assert C.config_differences({"a": 1, "steps": 1}, {"a": 1, "steps": 2}, ignore={"steps"}) == []
