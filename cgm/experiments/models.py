"""The trained model behind the motion notebooks (Table 1, Figs. 4-5, the explorer)."""

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


@user_errors
def figure_inputs(
    kind: str,
    *,
    dataset: str,
    profile: str,
    num_clips: int,
    backbone: str | None = None,
    resolution: int | None = None,
    data_root: str | None = None,
    device: str = "cpu",
    seed: int = 0,
    overrides: str | dict | None = None,
) -> tuple[RunResult, object, list[dict]]:
    """What Figs. 4-5 draw from: the parameters checked, the seed set, the `table1/cgm` model of
    `trained_model`, and about `num_clips` test clips of `dataset` for `kind` ("motion" or
    "prediction", `cgm.baselines.test_clips`) at the model's clip length and size. `overrides`:
    as in `trained_model`."""
    import torch

    from cgm import baselines

    baselines.check_motion_parameters(dataset, resolution, data_root)
    if not isinstance(num_clips, int) or num_clips < 1:
        raise ValueError(f"num_clips must be a positive int, got {num_clips!r}")
    torch.manual_seed(seed)
    print(f"dataset={dataset} profile={profile} backbone={backbone} device={device}")
    result, model = trained_model(
        "table1/cgm",
        profile,
        backbone=backbone,
        resolution=resolution,
        data_root=data_root,
        device=device,
        overrides=overrides,
    )
    clip_len, size = model.cfg.clip_len, model.cfg.size
    items = baselines.test_clips(
        dataset, kind, clip_len=clip_len, size=size, max_pairs=num_clips * (clip_len - 1), data_root=data_root
    )
    print(f"{len(items)} clips of {dataset} (test split), {clip_len} input frames + 1 at {size}px")
    return result, model, items
