"""Parameter and FLOP counts of CGM-Net's inference pipelines (Table 8).

Convention: one multiply-add = one FLOP, as fvcore and torchvision's model tables count (r3d_18 at
16x112x112: 40.7 "GFLOPS"). `torch.utils.flop_counter.FlopCounterMode` counts 2 FLOPs per
multiply-add, so its totals are halved here. Only convolutions, matmuls and the like are counted
(norms, activations, softmax, interpolation are not), as in those tools.

Models are built and run on the meta device: shapes propagate, nothing is allocated or computed,
so the full 16x112x112 model is counted in well under a second.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cgm.network import PIPELINE_HEADS, PIPELINE_MODULES, CGMConfig, CGMNet, VideoClassifier, pipeline_params
from cgm.paper import paper_value  # the paper's numbers live only there

# Table 8's row names -> our pipelines; the baselines are separately trained plain classifiers.
TABLE8_PIPELINES = {"Backbone": "backbone", "LR†": "lr", "HR†": "hr", "LR+HR†": "lr+hr"}
TABLE8_BASELINES = {"Baseline 3D-ResNet18": "r3d18", "Baseline 3D-ResNet34": "r3d34"}


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def module_gflops(model: nn.Module, clip: torch.Tensor) -> dict[str, float]:
    """GFLOPs (multiply-adds / 1e9) of one forward, per direct child of `model`, plus "total"."""
    with FlopCounterMode(display=False) as counter:
        model(clip)
    root = type(model).__name__
    counts = counter.get_flop_counts()
    out = {name: sum(counts.get(f"{root}.{name}", {}).values()) / 2e9 for name, _ in model.named_children()}
    out["total"] = sum(counts.get("Global", {}).values()) / 2e9
    return out


def _meta_clip(frames: int, size: int) -> torch.Tensor:
    return torch.empty(1, 3, frames, size, size, device="meta")  # (B=1, 3, T, H, W)


def pipeline_cost(cfg: CGMConfig) -> pd.DataFrame:
    """params_m and gflops (one clip of cfg.clip_len x cfg.size^2) of each pipeline of CGM-Net.

    A pipeline counts the modules it runs (network.PIPELINE_MODULES): e.g. LR† = encoder + backbone
    head + decoder + M_LR conv + LR action CNN; HR† adds F_motion, context extractor and CGMUL in
    place of the LR CNN, plus the HR action CNN.
    """
    cfg = dataclasses.replace(cfg, heads=("backbone", "lr", "hr"))
    with torch.device("meta"):
        model = CGMNet(cfg).eval()
    gflops = module_gflops(model, _meta_clip(cfg.clip_len, cfg.size))
    rows = []
    for pipeline in PIPELINE_HEADS:
        rows.append(
            {
                "pipeline": pipeline,
                "params_m": pipeline_params(model, pipeline) / 1e6,
                "gflops": sum(gflops[m] for m in PIPELINE_MODULES[pipeline] if m in gflops),
            }
        )
    return pd.DataFrame(rows)


def classifier_cost(
    backbone: str, *, num_classes: int, frames: int, size: int, width: float = 1.0
) -> tuple[float, float]:
    """(params in millions, GFLOPs) of a bare backbone + FC classifier on one clip."""
    with torch.device("meta"):
        model = VideoClassifier(backbone, num_classes, width=width).eval()
    return count_params(model) / 1e6, module_gflops(model, _meta_clip(frames, size))["total"]


def table8_cost(
    *, backbone: str = "r3d18", frames: int = 16, size: int = 112, num_classes: int = 101
) -> pd.DataFrame:
    """Table 8's six rows measured: pipeline, params_m, gflops, gflops_ratio (to the backbone)."""
    rows = []
    for row, name in TABLE8_BASELINES.items():
        params, gflops = classifier_cost(name, num_classes=num_classes, frames=frames, size=size)
        rows.append({"pipeline": row, "params_m": params, "gflops": gflops})
    cfg = CGMConfig(backbone=backbone, num_classes=num_classes, clip_len=frames, size=size)
    cost = pipeline_cost(cfg).set_index("pipeline")
    for row, pipeline in TABLE8_PIPELINES.items():
        rows.append(
            {
                "pipeline": row,
                "params_m": cost.at[pipeline, "params_m"],
                "gflops": cost.at[pipeline, "gflops"],
            }
        )
    table = pd.DataFrame(rows)
    table["gflops_ratio"] = table["gflops"] / cost.at["backbone", "gflops"]
    return table


def table8_report(
    *,
    backbone: str = "r3d18",
    frames: int = 16,
    size: int = 112,
    num_classes: int = 101,
    profile: str = "smoke",
) -> pd.DataFrame:
    """`table8_cost` beside the paper's Table 8 (params, GFLOPs, their ratio, and top-1, which we
    do not measure here). The paper's CGM rows are for r3d18: with another backbone they are NaN."""
    table = table8_cost(backbone=backbone, frames=frames, size=size, num_classes=num_classes)
    paper_backbone_gflops = paper_value("table8_cost", "Backbone", "gflops")
    for column in ("params_m", "gflops", "top1"):
        table[f"paper_{column}"] = [
            paper_value("table8_cost", row, column)
            if row in TABLE8_BASELINES or backbone == "r3d18"
            else float("nan")
            for row in table["pipeline"]
        ]
    table["paper_gflops_ratio"] = table["paper_gflops"] / paper_backbone_gflops
    table["backbone"], table["frames"], table["size"], table["profile"] = backbone, frames, size, profile
    return table[
        [
            "pipeline",
            "params_m",
            "gflops",
            "paper_params_m",
            "paper_gflops",
            "paper_top1",
            "gflops_ratio",
            "paper_gflops_ratio",
            "backbone",
            "frames",
            "size",
            "profile",
        ]
    ]
