"""Measured beside paper: the small table helpers shared by the notebooks of Tables 2-7 and Fig. 6.

A notebook measures some cells (an experiment's top-1, ℓ1 error, ...) and hands them here as
records `{"row", "column", "measured", "paper_row"?, ...}`. `compare` looks up the paper's value
for the same cell in `cgm.paper` and returns one tidy frame with the dataset and profile that
produced each number (`cgm.notebook.write_results` writes it to `results/<notebook>.csv`). A
paper number only ever appears in the `paper` column, never in `measured`. This module reads the
paper and the numbers it is given, nothing else: the registry and the notebooks' parameters are
`cgm.notebook`'s.

Smoke-profile numbers come from tiny models on embedded data; their values are not comparable
with the paper's, their ordering is. `ordering` says, pair by pair, whether the measured order of
two rows agrees with the paper's: that is what a smoke run can confirm or contradict.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from cgm.paper import paper_cell, paper_table

ROOT = Path(__file__).resolve().parent.parent
# Columns that time the machine, not the method: they change on every run, so
# `cgm.notebook.write_results` keeps
# them out of the committed CSV (a rerun with equal numbers rewrites it byte for byte) and writes
# them to the ignored `results/timings/<stem>.csv` instead.
TIMING_COLUMNS = ("sec_per_pair",)
COLUMNS = (
    "table",
    "row",
    "column",
    "measured",
    "paper",
    "paper_row",
    "paper_uncertain",
    "dataset",
    "profile",
)


def paper_grid(table: str) -> pd.DataFrame:
    """The paper's table as printed: one line per row, one column per value column.

    Uncertain rows (garbled in our copy of the paper) are flagged in an `uncertain` column;
    dashes (not reported) are NaN. Row order is the paper's.
    """
    tidy = paper_table(table)
    grid = tidy.pivot(index="row", columns="column", values="value")
    rows = list(dict.fromkeys(tidy["row"]))
    columns = list(dict.fromkeys(tidy["column"]))
    grid = grid.loc[rows, columns]
    grid.columns.name = None
    uncertain = tidy.groupby("row", sort=False)["uncertain"].any()
    if uncertain.any():
        grid["uncertain"] = uncertain.loc[rows].to_numpy()
    return grid


def compare(table: str, records: Iterable[Mapping], *, dataset: str, profile: str) -> pd.DataFrame:
    """Measured cells beside the paper's value for the same cell of `table`.

    Each record has `row` (our label), `column` (a column id of the paper table, e.g. "top1",
    "l1", "ucf101") and `measured` (a number). `paper_row` names the paper row the cell compares
    to; it defaults to `row`, and `None` means the paper has no such row (paper = NaN, e.g. our
    training-from-scratch baseline). Any other keys (experiment name, pipeline, ...) are kept as
    extra columns. Unknown paper rows or columns raise KeyError naming the valid ones.
    """
    out = []
    for record in records:
        missing = {"row", "column", "measured"} - set(record)
        if missing:
            raise ValueError(
                f"record {dict(record)!r} lacks {sorted(missing)}; each record needs row, column and measured"
            )
        paper_row = record.get("paper_row", record["row"])
        cell = paper_cell(table, paper_row, record["column"]) if paper_row is not None else None
        extras = {k: v for k, v in record.items() if k not in ("row", "column", "measured", "paper_row")}
        out.append(
            {
                "table": table,
                "row": record["row"],
                "column": record["column"],
                "measured": float(record["measured"]),
                "paper": math.nan if cell is None or cell.value is None else cell.value,
                "paper_row": paper_row,
                "paper_uncertain": bool(cell and cell.uncertain),
                "dataset": dataset,
                "profile": profile,
                **extras,
            }
        )
    if not out:
        raise ValueError(f"no measured cells for {table}: nothing to compare")
    frame = pd.DataFrame.from_records(out)
    return frame[list(COLUMNS) + [c for c in frame.columns if c not in COLUMNS]]


COST_DATASET = "none (counted on a random clip)"


def cost_compare(report: pd.DataFrame) -> pd.DataFrame:
    """Table 8's cost report (`flops.table8_report`, one wide row per pipeline) in the `compare`
    layout every results CSV shares: one row per pipeline and quantity, `params_m` and `gflops`
    beside the paper's cells, `gflops_ratio` (GFLOPs over the backbone's) beside the paper's ratio
    of its own GFLOPs. Extra columns: network (when the report has it), frames, size."""
    records = []
    extra = [c for c in ("network", "frames", "size") if c in report.columns]
    for _, r in report.iterrows():
        for column in ("params_m", "gflops", "gflops_ratio"):
            known = column != "gflops_ratio" and not pd.isna(r[f"paper_{column}"])
            records.append(
                {
                    "row": r["pipeline"],
                    "column": column,
                    "measured": r[column],
                    **({} if known else {"paper_row": None}),
                    **{c: r[c] for c in extra},
                }
            )
    profile = str(report["profile"].iloc[0]) if "profile" in report.columns else "smoke"
    frame = compare("table8_cost", records, dataset=COST_DATASET, profile=profile)
    ratio = frame["column"] == "gflops_ratio"
    frame.loc[ratio, "paper"] = report["paper_gflops_ratio"].to_numpy()
    return frame


def ordering(frame: pd.DataFrame, *, higher_is_better: bool) -> pd.DataFrame:
    """For every pair of cells of one column with both a measured and a paper value: does the
    measured order agree with the paper's? Ties in the paper (e.g. three rows at 88.2) count as
    agreeing with any measured order, since the paper does not order them.

    Returns columns column, better, worse (by the paper), paper_gap, measured_gap, agrees.
    """
    rows = []
    sign = 1.0 if higher_is_better else -1.0
    both = frame.dropna(subset=["measured", "paper"])
    for column, group in both.groupby("column", sort=False):
        for (_, a), (_, b) in itertools.combinations(group.iterrows(), 2):
            if sign * (a["paper"] - b["paper"]) < 0:
                a, b = b, a
            paper_gap = sign * (a["paper"] - b["paper"])
            measured_gap = sign * (a["measured"] - b["measured"])
            rows.append(
                {
                    "column": column,
                    "better": a["row"],
                    "worse": b["row"],
                    "paper_gap": paper_gap,
                    "measured_gap": measured_gap,
                    "agrees": bool(paper_gap == 0 or measured_gap > 0),
                }
            )
    return pd.DataFrame.from_records(
        rows, columns=["column", "better", "worse", "paper_gap", "measured_gap", "agrees"]
    )


def check(frame: pd.DataFrame, *, rows: Iterable[str], low: float, high: float) -> None:
    """Assert what must hold of measured cells whatever the CPU: the expected rows are present,
    every measured value is finite and within [low, high]. Raises AssertionError saying which."""
    missing = sorted(set(rows) - set(frame["row"]))
    assert not missing, f"expected rows missing from the measured table: {missing}"
    values = frame["measured"].astype(float)
    bad = frame.loc[~values.between(low, high) | ~values.map(math.isfinite), ["row", "column", "measured"]]
    assert bad.empty, f"measured values not finite or outside [{low}, {high}]:\n{bad.to_string()}"


def metric(result, name: str) -> float:
    """One metric of a run result (cgm.experiments.RunResult), by its name after the dataset tag:
    `metric(r, "l1_hr")` reads "<tag>/l1_hr", `metric(r, "lr+hr/top1")` "<tag>/lr+hr/top1". Where
    several evaluation sets report it (the paper profile scores motion on UCF-Flow and UCF-Pred),
    the first the experiment lists wins (UCF-Flow for ℓ1, as in Table 1).
    """
    found = [k for k in result.metrics if k.split("/", 1)[-1] == name]
    if not found:
        raise KeyError(f"run {result.name!r} has no metric {name!r}; it has {sorted(result.metrics)}")
    return float(result.metrics[found[0]])


def measured(result, name: str) -> dict:
    """Record fields for one metric of a run: measured value, the set it was scored on, the run,
    and for a top-k metric the test clips and the chance level (%) that its noise depends on."""
    found = [k for k in result.metrics if k.split("/", 1)[-1] == name]
    value = metric(result, name)
    tag = found[0].split("/", 1)[0]
    record = {"measured": value, "evaluated_on": tag, "experiment": result.name}
    if name.rsplit("/", 1)[-1].startswith("top") and f"{tag}/clips" in result.metrics:
        classes = result.config.get("model", {}).get("num_classes")
        record.update(
            clips=int(result.metrics[f"{tag}/clips"]), chance=100 / classes if classes else math.nan
        )
    return record


def describe(cfg) -> str:
    """One line saying what an experiment config trains (cgm.experiments.ExperimentConfig)."""
    m, t, d = cfg.model, cfg.train, cfg.data
    length = f"{t.steps} steps" if t.steps is not None else f"{t.epochs} epochs"
    kw = ", ".join(f"{k}={v}" for k, v in sorted(d.get("kw", {}).items()))
    frac = f", {t.labeled_fraction:g} of the labels" if t.labeled_fraction < 1 else ""
    pre = f", from {cfg.pretrain_from}" if cfg.pretrain_from else ""
    return (
        f"{t.stage} on {d['name']} ({d['split']}{', ' + kw if kw else ''}{frac}){pre}: "
        f"{m.backbone} width {m.width:g}, {m.clip_len}x{m.size}x{m.size}, upsampler {m.upsampler}, "
        f"scale {m.scale}, heads {'/'.join(m.heads) or 'none'}; {length} of batch {t.batch_size}, "
        f"lr {t.lr:g}, {t.device}"
    )


def chance_band(num_classes: int, clips: int, *, z: float = 1.96) -> tuple[float, float]:
    """Top-1 (%) that guessing reaches on `clips` test clips: chance ± z binomial standard errors.
    Measured accuracies inside this band are indistinguishable from guessing."""
    if num_classes < 2 or clips < 1:
        raise ValueError(f"need num_classes >= 2 and clips >= 1, got {num_classes}, {clips}")
    p = 1.0 / num_classes
    half = z * math.sqrt(p * (1 - p) / clips)
    return 100 * max(0.0, p - half), 100 * min(1.0, p + half)


def show(
    frame: pd.DataFrame, columns: Iterable[str] = ("row", "column", "measured", "paper", "dataset", "profile")
) -> str:
    """A fixed-width text rendering of the comparison (4 significant digits) for printing."""
    columns = [c for c in columns if c in frame.columns]
    return frame[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}")


def test_size(result) -> tuple[int, int]:
    """(classes, test clips) of a run's action evaluation: what its top-1 noise depends on."""
    clips = [v for k, v in result.metrics.items() if k.endswith("/clips")]
    tags = list(result.config.get("eval", {}).get("action", {}))
    if tags and f"{tags[0]}/clips" in result.metrics:
        clips = [result.metrics[f"{tags[0]}/clips"]]
    if not clips:
        raise KeyError(f"run {result.name!r} reports no test clip count")
    return int(result.config["model"]["num_classes"]), int(clips[0])


def in_paper_order(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the rows that have a paper row first, in the paper's order, then the others."""
    order = {}
    for table in frame["table"].unique():
        for i, row in enumerate(dict.fromkeys(paper_table(table)["row"])):
            order[(table, row)] = i
    key = [
        order.get((t, r), len(order)) if isinstance(r, str) else len(order) + 1
        for t, r in zip(frame["table"], frame["paper_row"])
    ]
    return (
        frame.assign(_order=key)
        .sort_values("_order", kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )
