"""Run every notebook with papermill and collect `results/summary.md` (the README's main job).

    python -m cgm.reproduce                      # smoke profile, embedded data, CPU
    python -m cgm.reproduce -p profile paper -p data_root /data/ucf101 --only table5
    python -m cgm.reproduce --inplace            # refresh the committed notebooks' stored outputs

Executed copies go to `results/executed/`; each notebook writes its own `results/<notebook>.csv`
(measured value, dataset, profile, paper value), which the summary gathers table by table. Timings
(each notebook's seconds, Table 1's seconds per pair) go to the ignored `results/timings/`, and a
figure redrawn with the same picture (pixels within one colour level: float rounding of another
CPU) keeps its committed bytes, so a rerun whose numbers did not change leaves the committed files
as they were.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import pandas as pd

from cgm import notebook
from cgm.paper import PAPER_DATA

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
RESULTS = ROOT / "results"

# Order matters only for speed: notebooks that train the shared smoke runs come first, the ones
# that reuse their cached results after. Notebooks not listed run last, alphabetically.
ORDER = (
    "datasets",
    "table8_cost",
    "table6_upsampling",
    "table7_upsampling_action",
    "fig6_scale",
    "table1_motion",
    "fig4_motion_maps",
    "fig5_prediction",
    "table2_selfsupervised",
    "table3_kinetics",
    "table5_ucf_hmdb",
    "explore",
)
# Extra executions of a notebook with other parameters: Table 4 is table3_kinetics on Kinetics-600.
VARIANTS = {"table3_kinetics": [("table4_kinetics600", {"variant": 600})]}


def notebook_order(folder: Path = NOTEBOOKS) -> list[Path]:
    """All notebooks of `folder`, in ORDER first, then the rest by name."""
    found = {p.stem: p for p in sorted(folder.glob("*.ipynb"))}
    listed = [found.pop(name) for name in ORDER if name in found]
    return listed + list(found.values())


def parse_parameters(pairs: list[list[str]]) -> dict[str, object]:
    """`-p name value` pairs -> dict; values are parsed as Python literals when they are ones."""
    import ast

    params: dict[str, object] = {}
    for name, value in pairs:
        try:
            params[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name] = value
    return params


def declared_parameters(path: Path) -> set[str]:
    """Names assigned in a notebook's cell tagged `parameters` (papermill's own inspector gives up
    on lines whose comments hold `=`; a plain `name = ...` match does not)."""
    import re

    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ValueError(f"{path.name} has no cell tagged 'parameters' (papermill needs one)")
    return set(re.findall(r"^([A-Za-z_]\w*)\s*(?::[^=\n]+)?=(?!=)", cells[0].source, flags=re.M))


# Columns that only the code needs (how a cell was looked up); the summary leaves them out.
INTERNAL = (
    "table",
    "paper_row",
    "paper_uncertain",
    "evaluated_on",
    "experiment",
    "clips",
    "pipeline",
    "sec_per_pair",
)
TITLES = {
    "datasets": "Embedded datasets",
    "table1_motion": "Table 1 (left): motion",
    "table1_prediction": "Table 1 (right): prediction",
    "table1_known_motion": "Table 1: EPE against ground truth (not in the paper)",
    "table2_selfsupervised": "Table 2",
    "table3_kinetics": "Table 3",
    "table4_kinetics600": "Table 4",
    "table5_ucf_hmdb": "Table 5",
    "table6_upsampling": "Table 6",
    "table7_upsampling_action": "Table 7",
    "table8_cost": "Table 8",
    "fig6_scale": "Figure 6",
}


def reader_columns(frame: pd.DataFrame, stem: str = "") -> pd.DataFrame:
    """A results CSV as a reader needs it: no internal columns, uncertain paper values marked,
    a paper value beside a measurement on other data than the paper's marked "other data"
    (`stem`: the file's, e.g. `table1_prediction`; `cgm.paper.PAPER_DATA`), quoted paper rows
    without the measurement's settings, `parameters` only when not all defaults."""
    out = frame.copy()
    if "paper_uncertain" in out.columns and "paper" in out.columns:
        flag = out["paper_uncertain"].fillna(False).astype(bool)
        out["paper"] = [
            f"{v:.4g} (garbled in our copy)" if f and pd.notna(v) else v for v, f in zip(out["paper"], flag)
        ]
    base = stem.partition("__")[0]
    if base in PAPER_DATA and {"paper", "measured", "dataset"} <= set(out.columns):
        name, same = PAPER_DATA[base]
        other = out["measured"].notna() & out["paper"].notna() & ~out["dataset"].astype(str).isin(same)
        out["paper"] = [
            f"{v if isinstance(v, str) else format(v, '.4g')} (other data: {name})" if o else v
            for v, o in zip(out["paper"], other)
        ]
    if "source" in out.columns:  # Table 1: rows quoted from the paper were not run at any resolution
        quoted = out["source"].astype(str).str.startswith("quoted")
        for col in ("resolution", "profile", "n"):
            if col in out.columns:
                out[col] = out[col].astype(object).where(~quoted, "")
    if "parameters" in out.columns and (out["parameters"] == "defaults").all():
        out = out.drop(columns="parameters")
    if "chance" in out.columns and out["chance"].isna().all():
        out = out.drop(columns="chance")
    return out.drop(columns=[c for c in INTERNAL if c in out.columns])


def write_summary(results: Path = RESULTS) -> Path:
    """Write `results/summary.md`: the verdict table (one row per claim of the paper, computed from
    the CSVs by `cgm.verdicts`), then every notebook's CSV with the columns a reader needs. Only
    numbers of the CSVs go in (no run times), so equal numbers give an identical file."""
    from cgm.verdicts import CLASSES, verdict_table

    verdicts = verdict_table(results)
    counts = verdicts["verdict"].value_counts()
    lines = [
        "# Measured vs paper",
        "",
        "## Verdicts",
        "",
        "One row per claim of the paper, computed from the notebooks' CSVs (`cgm/verdicts.py`): the paper's",
        "values, ours, the profile and dataset that produced ours, and a verdict that says what the evidence",
        "is: *exact* (a count on the architecture, no data), *reproduced* (on the paper's data and protocol),",
        "*reproduced with a departure* (other data or another model; the evidence column names each),",
        "*shown at toy scale* (tiny models of the smoke profile on SynthMotion: the effect is there, its size",
        "says nothing of the paper's), *not reproduced*, *inconclusive* (a top-1 gap within the 95% noise of",
        "the test clips) or *not measured*. *Chance* is the top-1 of guessing (± its 95% band). Each claim is",
        "read from the most faithful run that holds it (paper profile, then laptop on natural footage, then",
        "smoke; default parameters first), named in the profile, dataset and parameters columns.",
        "",
        "Tally: " + ", ".join(f"{counts[c]} {c}" for c in CLASSES if c in counts) + ".",
        "",
        verdicts.drop(columns="outcome").to_markdown(index=False),
        "",
        "## Details",
        "",
        "Each notebook's `results/<notebook>.csv` (measured beside the paper's value for the same cell; a",
        "paper value marked *other data* was measured on the data it names, ours on the row's dataset); a",
        "file `<notebook>__<parameter>=<value>.csv` holds a run with other than the default parameters, named",
        "by them (its `parameters` column says which).",
        "",
    ]
    # notebook tables only: other CSVs (e.g. scripts/time_to_quality.py's curves) are not in this layout
    stems = sorted(p.stem for p in results.glob("*.csv") if p.stem.partition("__")[0] in TITLES)
    for stem in stems:
        base, _, variant = stem.partition("__")
        frame = pd.read_csv(results / f"{stem}.csv")
        title = TITLES.get(base, base)
        lines += [f"### {title}: `{stem}.csv`" if variant or title != base else f"### `{stem}.csv`", ""]
        lines += [reader_columns(frame, stem).to_markdown(index=False, floatfmt=".4g"), ""]
    out = results / "summary.md"
    out.write_text("\n".join(lines))
    return out


def write_timings(timings: dict[str, float], results: Path = RESULTS) -> Path:
    """Each notebook run's wall-clock seconds -> `results/timings/notebooks.csv` (ignored by git)."""
    folder = results / "timings"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "notebooks.csv"
    pd.DataFrame({"notebook": list(timings), "seconds": [round(v, 1) for v in timings.values()]}).to_csv(
        out, index=False
    )
    return out


class ParameterInspectionNoise(logging.Filter):
    """Drops papermill's "Unable to parse line N" warnings. Given parameters, papermill inspects the
    parameters cell to warn about unknown ones, and its inspector cannot read a line whose comment
    holds `=` (`overrides = ""  # ... ("amp=bf16 ...")`). This runner passes a notebook only the
    parameters it declares (`declared_parameters`), so that check has nothing to add."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Unable to parse line")


def keep_same_pictures(before: dict[Path, bytes]) -> list[Path]:
    """Put back each figure a run rewrote with the same picture (`same_picture`): a model's float
    output differs in its last bits between CPUs, which moves a few pixels by one colour level,
    and the committed file should then stay as it is. Returns the figures put back."""
    kept = []
    for path, old in before.items():
        if path.is_file() and (new := path.read_bytes()) != old and notebook.same_picture(old, new):
            path.write_bytes(old)
            kept.append(path)
    return kept


def kernel_manager_class():
    """A kernel manager whose kernels talk over IPC (Unix sockets) instead of TCP on localhost: the
    notebooks' kernels never leave this machine, and ipykernel then has no reason to warn that its
    TCP traffic is unencrypted (it prints that warning for every TCP kernel).

    Shutting down, it sends the shutdown request without interrupting the kernel first, and waits
    up to a minute for the kernel to exit (jupyter_client interrupts first and waits 5 s): every
    cell has finished by then, and the interrupt only lands in whatever message the kernel is still
    handling, which prints "KeyboardInterrupt caught in kernel" on a loaded CPU."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc"

        @default("shutdown_wait_time")
        def _shutdown_wait_time_default(self) -> float:
            return 60.0

        async def _async_interrupt_kernel(self) -> None:
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    return IPCKernelManager


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cgm.reproduce", description=__doc__.split("\n")[0])
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="papermill parameter for every notebook",
    )
    parser.add_argument("--only", nargs="+", default=None, help="notebook names (stems) to run")
    parser.add_argument(
        "--inplace",
        action="store_true",
        help="execute the committed notebooks in place (refresh stored outputs)",
    )
    args = parser.parse_args(argv)

    import papermill

    logging.getLogger("papermill.translators").addFilter(ParameterInspectionNoise())

    notebooks = notebook_order()
    if args.only:
        unknown = sorted(set(args.only) - {p.stem for p in notebooks})
        if unknown:
            parser.error(f"unknown notebook(s) {unknown}; valid: {[p.stem for p in notebooks]}")
        notebooks = [p for p in notebooks if p.stem in args.only]
    params = parse_parameters(args.parameter)
    executed = RESULTS / "executed"
    executed.mkdir(parents=True, exist_ok=True)

    timings: dict[str, float] = {}
    manager = kernel_manager_class()
    figures = {path: path.read_bytes() for path in RESULTS.glob("*.png")}
    start = time.perf_counter()
    jobs = [(path, path.stem, {}) for path in notebooks]
    if not args.inplace:  # variants write their own executed copy; the committed notebook is one
        jobs += [(path, stem, extra) for path in notebooks for stem, extra in VARIANTS.get(path.stem, [])]
    for i, (path, stem, extra) in enumerate(jobs, 1):
        out = path if args.inplace else executed / f"{stem}.ipynb"
        print(f"[{i}/{len(jobs)}] {stem} ...", end=" ", flush=True)
        t0 = time.perf_counter()
        # Only parameters a notebook declares are passed to it: one -p applies to all that have it.
        declared = declared_parameters(path)
        mine = {k: v for k, v in {**params, **extra}.items() if k in declared}
        papermill.execute_notebook(
            str(path),
            str(out),
            parameters=mine,
            cwd=str(NOTEBOOKS),
            progress_bar=False,
            kernel_name="python3",
            kernel_manager_class=manager,
        )
        timings[stem] = time.perf_counter() - t0
        print(f"{timings[stem]:.0f} s", flush=True)
    kept = keep_same_pictures(figures)
    if kept:
        print(
            f"kept {len(kept)} figure(s) whose pixels differ by at most one colour level: "
            + ", ".join(p.name for p in kept)
        )
    summary = write_summary()
    timing = write_timings(timings)
    total = time.perf_counter() - start
    print(
        f"{len(jobs)} notebook runs in {total / 60:.1f} min; summary: {summary.relative_to(ROOT)}; "
        f"timings: {timing.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
