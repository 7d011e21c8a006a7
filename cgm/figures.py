"""Result figures of the notebooks: measured beside the paper, with the reference lines a reader
needs (chance, copying the previous frame), axes from zero.

`paper_bars` draws any `cgm.tables.compare` frame (Tables 3, 6, 7, ...) as two panels of
horizontal bars in the same row order: what we measured (dataset, profile) and what the paper
prints. `scale_curves` is Fig. 6. Both return the matplotlib figure; the caller saves it.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def paper_bars(
    frame: pd.DataFrame,
    *,
    xlabel: str,
    title: str = "",
    chance: tuple[float, float] | None = None,
    reference: float | None = None,
    reference_label: str = "",
    rows: Sequence[str] | None = None,
    lower_is_better: bool = False,
):
    """Measured (left) and paper (right) values of each row of one column of `frame`.

    `chance`: a (low, high) band shaded on the measured panel (top-1 that guessing reaches);
    `reference`: a vertical line on the measured panel (e.g. ℓ1 of copying the previous frame).
    Rows without a paper value get an empty paper bar ("—")."""
    data = frame if rows is None else frame.set_index("row").loc[list(rows)].reset_index()
    labels = data["row"].tolist()
    y = np.arange(len(labels))[::-1]
    fig, (ax_m, ax_p) = plt.subplots(1, 2, figsize=(10, 0.5 * len(labels) + 1.6), sharey=True)
    where = (
        f"measured ({', '.join(dict.fromkeys(data['dataset'].astype(str)))}, "
        f"{', '.join(dict.fromkeys(data['profile'].astype(str)))})"
    )
    ax_m.barh(y, data["measured"], color="C0")
    for yi, v in zip(y, data["measured"]):
        ax_m.text(v, yi, f" {v:.3g}", va="center", fontsize=8)
    if chance is not None:
        ax_m.axvspan(
            *chance, color="0.6", alpha=0.3, label=f"guessing (95%): {chance[0]:.0f}-{chance[1]:.0f}"
        )
        ax_m.axvline(sum(chance) / 2, color="0.3", ls="--", lw=1)
    if reference is not None:
        ax_m.axvline(reference, color="C3", ls="--", lw=1.5, label=f"{reference_label} ({reference:.3g})")
    paper = data["paper"].astype(float)
    ax_p.barh(y, paper.fillna(0), color="C1")
    for yi, v in zip(y, paper):
        ax_p.text(0 if np.isnan(v) else v, yi, " —" if np.isnan(v) else f" {v:.3g}", va="center", fontsize=8)
    better = "lower" if lower_is_better else "higher"
    for ax, name in ((ax_m, where), (ax_p, "paper")):
        ax.set_xlim(0, None)
        ax.set_xlabel(f"{xlabel} ({better} is better)")
        ax.set_title(name, fontsize=10)
        ax.margins(x=0.15)
    ax_m.set_yticks(y, labels)
    if chance is not None or reference is not None:
        ax_m.legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def scale_curves(
    frame: pd.DataFrame, *, copy_l1: float | None = None, chance: tuple[float, float] | None = None
):
    """Fig. 6: ℓ1 of the HR reconstructions and LR+HR top-1 against the scale factor r, with the
    copy-the-previous-frame ℓ1 and the chance band as reference lines, both axes from zero.
    `frame`: rows with columns `scale`, `column` ("l1" or "top1"), `measured`, `paper`."""
    fig, (ax_l1, ax_top1) = plt.subplots(1, 2, figsize=(10, 3.8))
    label = f"measured ({frame.dataset.iloc[0]}, {frame.profile.iloc[0]})"
    for ax, column in ((ax_l1, "l1"), (ax_top1, "top1")):
        part = frame[frame.column == column].sort_values("scale")
        ax.plot(part.scale, part.measured, "o-", color="C0", label=label)
        for s, v in zip(part.scale, part.measured):
            ax.annotate(
                f"{v:.3g}", (s, v), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8
            )
    if copy_l1 is not None:
        ax_l1.axhline(copy_l1, color="C3", ls="--", label=f"copy the previous frame ({copy_l1:.3g})")
    if chance is not None:
        ax_top1.axhspan(
            *chance, color="0.6", alpha=0.3, label=f"guessing (95%): {chance[0]:.0f}-{chance[1]:.0f}%"
        )
    paper = frame[(frame.column == "top1") & frame.paper.notna()]
    if not paper.empty:
        ax_top1.scatter(
            paper.scale,
            paper.paper,
            marker="*",
            s=160,
            color="C1",
            zorder=3,
            label="paper, UCF101 (the only printed value)",
        )
    scales = sorted(frame.scale.unique())
    for ax, title, ylabel in (
        (ax_l1, "HR reconstruction ℓ1 (lower is better)", "ℓ1"),
        (ax_top1, "top-1 of the LR+HR pipeline (higher is better)", "top-1 (%)"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_xticks(scales, [str(s) for s in scales])
        ax.minorticks_off()
        ax.set_xlabel("scale factor r (HR / LR)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 100 if ax is ax_top1 else None)
        ax.set_title(title, fontsize=10)
        # top-1: below the chance band, the one place free of the curve and the paper's star at ~90
        ax.legend(fontsize=8, loc="lower right" if ax is ax_top1 else "best")
    fig.tight_layout()
    return fig
