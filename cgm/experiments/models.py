"""The trained model behind the motion notebooks (Table 1, Figs. 4-5, the explorer)."""

from __future__ import annotations

from .registry import resolve
from .runs import RunResult, run


def trained_model(
    name: str = "table1/cgm",
    profile: str = "laptop",
    *,
    backbone: str | None = None,
    resolution: int | None = None,
    data_root: str | None = None,
    device: str = "cpu",
) -> tuple[RunResult, object]:
    """(the run, its CGM-Net in eval mode on `device`) for experiment `name` in `profile`, from the
    cache when its checkpoint is there (the laptop profile's is committed), else trained now.
    `backbone`, `resolution` (input size) and `data_root` override the profile only where they
    differ from it, so the defaults hit the cache."""
    base = resolve(name, profile)
    overrides = {}
    if backbone is not None and backbone != base.model.backbone:
        overrides["backbone"] = backbone
    if resolution is not None and resolution != base.model.size:
        overrides["size"] = resolution
    if profile == "paper" and data_root is not None:
        overrides["data_root"] = data_root
    result = run(name, profile, need_checkpoint=True, **overrides)
    model = result.load_model(device)
    print(
        f"{result.name} ({result.profile}, {result.source}): trained on {result.dataset}, "
        f"{result.train.get('steps')} steps in {result.train.get('seconds', 0):.0f} s; input "
        f"{model.cfg.clip_len} frames of {model.cfg.size}x{model.cfg.size}, k_hr = {model.cfg.k_hr}"
    )
    return result, model
