"""Readings computed from the numbers: the "Reading the result" text of the notebooks.

Every sentence here is built from a measured frame (`cgm.tables.compare`'s columns: row, column,
measured, paper, dataset, profile), so a reading cannot contradict the table printed above it,
whatever the parameters. Each function returns markdown; a notebook shows it with
`IPython.display.Markdown`. The numbers behind a verdict come with it ("57.0 vs 25 ± 4.2").

Noise: a top-1 on n test clips carries a binomial standard error sqrt(p (1 - p) / n); two rows
differ beyond noise when their gap exceeds 1.96 standard errors of the difference. ℓ1 errors and
costs have no such model here: their gaps are reported, not judged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import pandas as pd

from cgm.tables import chance_band, ordering

Z = 1.96  # 95%


def _fmt(v: float) -> str:
    return f"{v:.1f}" if abs(v) >= 1 else f"{v:.4g}"


def gap_noise(p_a: float, p_b: float, clips: int) -> float:
    """Half-width (points) of the 95% band of the difference of two top-1s (%) on `clips` clips each."""
    var = sum(p / 100 * (1 - p / 100) for p in (p_a, p_b)) / clips
    return 100 * Z * math.sqrt(var)


def profile_note(frame: pd.DataFrame) -> str:
    """Where the numbers come from, and what that makes of a comparison with the paper's."""
    dataset = ", ".join(dict.fromkeys(frame["dataset"].astype(str)))
    profile = ", ".join(dict.fromkeys(frame["profile"].astype(str)))
    note = f"Measured on {dataset}, profile {profile}."
    if "smoke" in profile:
        note += (
            " Smoke-profile values come from tiny models on embedded data: they are not comparable "
            "with the paper's values; the order of the rows and their distance from chance are "
            "what a smoke run can confirm or contradict."
        )
    return note


def chance_reading(
    frame: pd.DataFrame, *, num_classes: int, clips: int, rows: Iterable[str] | None = None
) -> str:
    """Which top-1 rows (%) are above, inside or below the 95% band of guessing."""
    low, high = chance_band(num_classes, clips)
    sub = frame if rows is None else frame[frame["row"].isin(list(rows))]
    parts = {"above": [], "inside": [], "below": []}
    for _, r in sub.iterrows():
        where = "above" if r.measured > high else "below" if r.measured < low else "inside"
        label = r.row if "column" not in sub or sub["column"].nunique() == 1 else f"{r.row} [{r.column}]"
        parts[where].append(f"{label} {r.measured:.1f}")
    text = (
        f"Chance is {100 / num_classes:.0f}% top-1 ({num_classes} classes); guessing lands in "
        f"[{low:.1f}, {high:.1f}] on {clips} test clips (95%)."
    )
    for where, names in parts.items():
        if names:
            text += f" **{where.capitalize()} the band**: " + "; ".join(names) + "."
    if not parts["above"]:
        text += " **No row can be told apart from guessing.**"
    return text


def order_reading(
    frame: pd.DataFrame, *, higher_is_better: bool, clips: int | None = None, metric: str = "top-1"
) -> str:
    """Does the measured order of the rows agree with the paper's, pair by pair, and where?
    With `clips` (top-1 in %), each disagreement or agreement is judged against its noise."""
    pairs = ordering(frame[frame["paper"].notna()], higher_is_better=higher_is_better)
    ordered = pairs[pairs.paper_gap > 0]
    if ordered.empty:
        return f"The paper does not order these rows by {metric}: no order to check."
    values = frame.set_index("row")["measured"]
    agree, disagree, beyond = [], [], 0
    for _, p in ordered.iterrows():
        # a gap against the paper's order reads as its word, not a negative "better by"
        way = "better" if p.measured_gap >= 0 else "worse"
        what = (
            f"{p.better} {way} than {p.worse} by {_fmt(abs(p.measured_gap))} "
            f"(paper: better by {_fmt(p.paper_gap)})"
        )
        if clips:
            noise = gap_noise(values[p.better], values[p.worse], clips)
            what = (
                f"{p.better} − {p.worse}: measured {p.measured_gap:+.1f} (noise ±{noise:.1f}), "
                f"paper {p.paper_gap:+.1f}" + ("" if abs(p.measured_gap) > noise else ", within noise")
            )
        (agree if p.agrees else disagree).append(what)
        beyond += int(not p.agrees and (not clips or abs(p.measured_gap) > noise))
    best_col = frame[frame["paper"].notna()]
    best = best_col.loc[best_col["measured"].idxmax() if higher_is_better else best_col["measured"].idxmin()]
    paper_best = best_col.loc[best_col["paper"].idxmax() if higher_is_better else best_col["paper"].idxmin()]
    verdict = (
        "agrees with the paper's order"
        if not disagree
        else "contradicts the paper's order"
        if not agree
        else "agrees with the paper's order only in part"
    )
    text = (
        f"**The measured {metric} {verdict}**: {len(agree)} of {len(ordered)} pairs the paper orders go "
        f"its way"
        + (f"; {beyond} of the {len(disagree)} that do not are beyond noise" if clips and disagree else "")
        + f". Best measured row: {best.row} ({_fmt(best.measured)}); the paper's best: "
        f"{paper_best.row} ({_fmt(paper_best.paper)})."
    )
    if agree:
        text += "\n- Agree: " + "; ".join(agree) + "."
    if disagree:
        text += "\n- **Disagree**: " + "; ".join(disagree) + "."
    return text


def contrast_reading(
    frame: pd.DataFrame, contrasts: Mapping[str, tuple[tuple, tuple]], *, clips: int | None = None
) -> str:
    """Differences "a − b" of named cell pairs, measured beside the paper's, with their sign verdict.
    `contrasts`: {label: ((table, row, column) of a, (table, row, column) of b)}; pairs with a cell
    absent from `frame` are skipped."""
    lines = []
    for label, (a, b) in contrasts.items():
        cells = []
        for table, row, column in (a, b):
            hit = frame[(frame["table"] == table) & (frame["row"] == row) & (frame["column"] == column)]
            cells.append(None if hit.empty else hit.iloc[0])
        if any(c is None for c in cells):
            continue
        ca, cb = cells
        measured, paper = ca.measured - cb.measured, ca.paper - cb.paper
        noise = gap_noise(ca.measured, cb.measured, clips) if clips else None
        within = noise is not None and abs(measured) <= noise
        verdict = (
            "no measured difference"
            if measured == 0
            else "paper gives no value"
            if pd.isna(paper)
            else "within noise"
            if within
            else "same sign as the paper"
            if measured * paper > 0
            else "**opposite sign to the paper**"
        )
        noise_text = f" (noise ±{noise:.1f})" if noise is not None else ""
        paper_text = "n/a" if pd.isna(paper) else f"{paper:+.1f}"
        lines.append(f"- {label}: measured {measured:+.1f}{noise_text}, paper {paper_text}: {verdict}.")
    return "\n".join(lines) if lines else "No contrast can be computed from the cells measured."


def claims_reading(claims: Mapping[str, bool | None]) -> str:
    """A list of claims with holds / FAILS / not tested (None) beside each."""
    if not claims:
        return "No claim of the paper can be checked with these parameters."
    mark = {True: "holds", False: "**fails**", None: "not tested"}
    held = sum(v is True for v in claims.values())
    tested = sum(v is not None for v in claims.values())
    return f"{held} of {tested} checked claims hold.\n" + "\n".join(
        f"- {mark[v]}: {claim}" for claim, v in claims.items()
    )


def reference_reading(
    values: Mapping[str, float], *, reference: float, name: str, lower_is_better: bool = True
) -> str:
    """Which rows beat a reference value (e.g. copying the previous frame's ℓ1) and by how much."""
    better = {k: v for k, v in values.items() if (v < reference if lower_is_better else v > reference)}
    worse = {k: v for k, v in values.items() if k not in better}
    text = f"Against {name} ({_fmt(reference)}):"
    if better:
        text += (
            " better: "
            + ", ".join(f"{k} {_fmt(v)} ({100 * (v / reference - 1):+.0f}%)" for k, v in better.items())
            + "."
        )
    if worse:
        text += (
            " **not better**: "
            + ", ".join(f"{k} {_fmt(v)} ({100 * (v / reference - 1):+.0f}%)" for k, v in worse.items())
            + "."
        )
    return text


def show(*parts: str | None) -> None:
    """Display the non-empty parts as one markdown block (in a notebook; plain text elsewhere)."""
    text = "\n\n".join(p for p in parts if p)
    try:
        from IPython.display import Markdown, display  # only inside a notebook kernel

        display(Markdown(text))
    except ImportError:  # outside IPython: plain text
        print(text)


def shared_runs_note(results: Mapping) -> str:
    """Say when several cells come from one run (same config hash): one measurement, not several.
    `results`: {key: RunResult}."""
    hashes = {}
    for r in results.values():
        hashes.setdefault(r.hash, []).append(r.name)
    if len(hashes) == len(results):
        return ""
    same = "; ".join(" = ".join(names) for names in hashes.values() if len(names) > 1)
    return (
        f"The {len(results)} experiments are {len(hashes)} distinct runs ({same}: same config, e.g. "
        "every labeled dataset is SynthMotion in the smoke profile): their cells are one measurement "
        "printed under several columns, not independent confirmations."
    )


def cost_reading(table: pd.DataFrame, half: pd.DataFrame | None = None) -> str:
    """Table 8: parameters and GFLOP ratios against the paper's, and what its absolute GFLOPs match.
    `table`: `cgm.flops.table8_report`'s frame; `half`: the same at half the frames."""
    params_err = (table["params_m"] / table["paper_params_m"] - 1).abs()
    ratio_err = (table["gflops_ratio"] / table["paper_gflops_ratio"] - 1).abs()
    worst_p, worst_r = table.pipeline[params_err.idxmax()], table.pipeline[ratio_err.idxmax()]
    abs_ratio = table["gflops"] / table["paper_gflops"]
    text = (
        f"**Parameters**: within {100 * params_err.max():.1f}% of the paper's for every pipeline "
        f"(largest gap: {worst_p}). **GFLOP ratios to the backbone**: within {100 * ratio_err.max():.1f}% "
        f"(largest gap: {worst_r}). **Absolute GFLOPs**: ours are {abs_ratio.min():.2f}-{abs_ratio.max():.2f}× "
        f"the paper's at {int(table.frames.iloc[0])} frames"
    )
    if half is not None:
        h = half["gflops"] / half["paper_gflops"]
        text += f", {h.min():.2f}-{h.max():.2f}× at {int(half.frames.iloc[0])} frames"
    return text + "."
