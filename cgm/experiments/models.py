"""The trained model behind the motion notebooks (Table 1, Figs. 4-5, the explorer); the clips
they are scored on come from `cgm.motion_table`."""

from __future__ import annotations

from pathlib import Path

from cgm.errors import user_errors
from cgm.overrides import merge_overrides

from .registry import resolve
from .runs import RunResult, run


@user_errors
def trained_model(
    name: str = "table1/cgm",
    profile: str = "laptop",
    *,
    backbone: str | None = None,
    resolution: int | None = None,
    data_root: str | None = None,
    device: str = "cpu",
    overrides: str | dict | None = None,
) -> tuple[RunResult, object]:
    """(the run, its CGM-Net in eval mode on `device`) for experiment `name` in `profile`, from the
    cache when its checkpoint is there (the laptop profile's is committed), else trained now.
    `backbone`, `resolution` (input size) and `data_root` override the profile only where they
    differ from it, so the defaults hit the cache; `overrides` (the notebooks' parameter: the
    CLI's `--set` pairs as text, "amp=bf16 steps=2") applies on top, so a run the CLI trained
    with them is found."""
    if data_root is not None and not Path(str(data_root)).expanduser().is_dir():
        raise ValueError(f"data_root {data_root!r} is not a folder (checked before any model is trained)")
    base = resolve(name, profile)
    changes = {}
    if backbone is not None and backbone != base.model.backbone:
        changes["backbone"] = backbone
    if resolution is not None and resolution != base.model.size:
        changes["size"] = resolution
    if profile == "paper" and data_root is not None:
        changes["data_root"] = data_root
    result = run(name, profile, need_checkpoint=True, **merge_overrides(changes, overrides))
    model = result.load_model(device)
    print(
        f"{result.name} ({result.profile}, {result.source}): trained on {result.dataset}, "
        f"{result.train.get('steps')} steps in {result.train.get('seconds', 0):.0f} s; input "
        f"{model.cfg.clip_len} frames of {model.cfg.size}x{model.cfg.size}, k_hr = {model.cfg.k_hr}"
    )
    return result, model
