"""The notebooks' plumbing: their parameters, the files they write, the registry cells they read.

A notebook declares its parameters in a cell tagged `parameters`; `notebook_defaults` reads them
from the file, `result_stem` names a run's results by the parameters that differ from them (so a
run with other parameters never overwrites the committed defaults' file) and `write_results`
writes a comparison frame of `cgm.tables` there. `run_overrides` turns a notebook's parameters into
the overrides of an experiment's config; `paper_cell_of`, `main_pipeline` and `run_report` read the
registry (`cgm.experiments`) for the notebooks and the CLI's reports. The comparison itself (the
paper beside the measurement) is `cgm.tables`'.
"""

from __future__ import annotations

import ast
import io
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from cgm import settings
from cgm.experiments import get_experiment, resolve
from cgm.overrides import merge_overrides
from cgm.paper import paper_cell, paper_table
from cgm.tables import ROOT, TIMING_COLUMNS, chance_band

# CGM_RESULTS_DIR redirects what notebooks write (tests use it); cached runs stay in results/runs.
RESULTS = settings.read().results_dir


def run_overrides(name: str, profile: str, overrides: str | Mapping | None = None, **params) -> dict:
    """The notebook parameters that change experiment `name`'s config in `profile`, with the
    notebook's `overrides` (the CLI's `--set` pairs as text, "amp=bf16 eval__batch_size=1",
    read by `cgm.overrides.parse_overrides`) on top: what the notebook passes to the run.

    Parameters left at None, or equal to what the profile already sets (e.g. seed=0, the smoke
    profile's device "cpu"), are dropped, so that a notebook run with default parameters has the
    same config hash as every other user of the experiment and shares its cached run; a run the
    CLI trained with `--set k=v` is found by a notebook given `overrides="k=v"`.
    """
    base = resolve(name, profile)
    current = {**base.data, **base.data.get("kw", {}), **base.model.to_dict(), **vars(base.train)}
    kept = {k: v for k, v in params.items() if v is not None and not (k in current and current[k] == v)}
    merged = merge_overrides(kept, overrides)
    resolve(name, profile, **merged)  # a bad override fails here, naming what is valid
    return merged


def same_picture(a: bytes, b: bytes, *, levels: int = 1) -> bool:
    """Whether two PNGs show the same picture up to `levels` of 255 in any pixel and channel."""
    x, y = (np.asarray(Image.open(io.BytesIO(v)).convert("RGBA"), dtype=np.int16) for v in (a, b))
    return x.shape == y.shape and int(np.abs(x - y).max(initial=0)) <= levels


def save_figure(fig, path: str | Path, **savefig_kw) -> Path:
    """`fig.savefig(path)`, except that a file already showing the same picture (`same_picture`)
    is left as it is: a model's float output differs in its last bits between CPUs, which moves a
    few pixels by one colour level, and a committed figure should not change for that."""
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", **savefig_kw)
    png = buffer.getvalue()
    if not (path.is_file() and same_picture(path.read_bytes(), png)):
        path.write_bytes(png)
    return path


def write_results(
    frame: pd.DataFrame,
    notebook: str,
    *,
    results_dir: str | Path | None = None,
    params: Mapping | None = None,
    stem: str | None = None,
    ignore: Iterable[str] = (),
) -> Path:
    """Write `frame` to `<results_dir>/<stem>.csv` (default: the repository's results/).

    With `params` (the notebook's parameters, `notebook_params`), the file is named by
    `result_stem` (the defaults' file only for default parameters) and a `parameters` column says
    which parameters produced the numbers. Without, `<notebook>.csv`. Timing columns
    (`TIMING_COLUMNS`) go to `<results_dir>/timings/<stem>.csv` with the row and column keys."""
    missing = [c for c in ("measured", "paper", "dataset", "profile") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"results of {notebook} lack columns {missing}; build them with cgm.tables.compare()"
        )
    folder = Path(results_dir) if results_dir is not None else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    if params is not None:
        frame = frame.assign(parameters=parameters_label(notebook, params, ignore=ignore))
        stem = result_stem(notebook, params, stem=stem, ignore=ignore)
    path = folder / f"{stem or notebook}.csv"
    timing = [c for c in TIMING_COLUMNS if c in frame.columns]
    if timing:
        keys = [c for c in ("table", "row", "column") if c in frame.columns]
        (folder / "timings").mkdir(exist_ok=True)
        frame[keys + timing].to_csv(folder / "timings" / path.name, index=False, float_format="%.6g")
        frame = frame.drop(columns=timing)
    frame.to_csv(path, index=False, float_format="%.6g")
    return path


NOTEBOOKS = ROOT / "notebooks"


def _literal(value):
    """A parameter value as papermill may hand it (text) or the notebook declares it (a literal)."""
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def notebook_defaults(notebook: str, folder: str | Path | None = None) -> dict:
    """The default parameters of `notebooks/<notebook>.ipynb`: every `name = literal` of its cell
    tagged `parameters`, read from the file (so a notebook never restates its own defaults)."""
    import nbformat  # heavy (jsonschema, seconds): only reading a notebook file needs it

    path = Path(folder or NOTEBOOKS) / f"{notebook}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ValueError(f"{path.name} has no cell tagged 'parameters'")
    defaults = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and node.value is not None:
                    defaults[target.id] = ast.literal_eval(node.value)
    return defaults


def changed_parameters(notebook: str, params: Mapping, *, ignore: Iterable[str] = ()) -> dict:
    """The entries of `params` that differ from the notebook's defaults (papermill's text
    values, e.g. "600" or "[1, 2]", compared as the literals they spell), in declaration order."""
    defaults = notebook_defaults(notebook)
    skip = set(ignore)
    return {
        k: _literal(v)
        for k, v in params.items()
        if k not in skip and (k not in defaults or _literal(v) != defaults[k])
    }


def _slug(value) -> str:
    text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    text = re.sub(r"[^A-Za-z0-9.,+_-]+", "-", text).strip("-")
    return text[:40] or "-"


def result_stem(
    notebook: str, params: Mapping, *, stem: str | None = None, ignore: Iterable[str] = ()
) -> str:
    """The file stem a notebook run writes its results under (CSV, PNG).

    With the notebook's default parameters: `stem` (default: the notebook's name), i.e.
    `results/<notebook>.csv`, the committed file. With any other parameters: the stem followed by
    `__name=value` for each parameter that differs from its default, in declaration order, e.g.
    `table3_kinetics__rows=slowfast`, so a run with other parameters never overwrites the
    defaults' file. `ignore` names parameters already expressed by `stem` (Table 3's `variant`
    600 writes `table4_kinetics600`). Use it in every notebook that writes results:

        params = notebook.notebook_params(NOTEBOOK, globals())
        path = notebook.write_results(frame, NOTEBOOK, params=params)
    """
    changed = changed_parameters(notebook, params, ignore=ignore)
    return (stem or notebook) + "".join(f"__{k}={_slug(v)}" for k, v in changed.items())


def parameters_label(notebook: str, params: Mapping, *, ignore: Iterable[str] = ()) -> str:
    """'defaults', or the parameters that differ from the notebook's defaults ("rows=slowfast")."""
    changed = changed_parameters(notebook, params, ignore=ignore)
    return ", ".join(f"{k}={v}" for k, v in changed.items()) or "defaults"


def notebook_params(notebook: str, namespace: Mapping) -> dict:
    """The current value of every parameter `notebook` declares, read from `namespace`
    (a notebook passes `globals()`)."""
    return {k: namespace[k] for k in notebook_defaults(notebook) if k in namespace}


def paper_cell_of(name: str) -> tuple[str, str | None, str | None]:
    """(paper table, paper row, paper column) of experiment `name`, from the registry's
    `paper_table`/`paper_row`/`paper_column`: the cell a notebook compares the experiment's main
    number with. The row is None where the paper gives no number (Fig. 6 beyond r = 4), the
    column None where the run has no main number of its own (a pretraining run)."""
    e = get_experiment(name)
    return e.paper_table, e.paper_row, e.paper_column


def main_pipeline(name: str, profile: str = "smoke") -> str:
    """The inference pipeline whose top-1 the paper reports for experiment `name`: `backbone` for
    a plain classifier, the fused `lr+hr` for a CGM-Net with motion heads."""
    heads = resolve(name, profile).model.heads
    return "lr+hr" if "hr" in heads and "lr" in heads else heads[0] if heads else "lr+hr"


def run_report(
    name: str, metrics: Mapping[str, float], *, profile: str, dataset: str, source: str = ""
) -> str:
    """A run's metrics for people (`python -m cgm run` / `eval`): one line per metric with its
    baseline (copying the previous frame for motion metrics, guessing for top-k) and, on the
    experiment's main metric, the paper's value for its cell."""
    table, row, column = paper_cell_of(name)
    paper_columns = set(paper_table(table)["column"])
    main_pipe = main_pipeline(name, profile)
    if column is None:  # an entry without its column: the table's own metric
        column = "l1" if "l1" in paper_columns else "top1" if "top1" in paper_columns else None
    main = "l1_hr" if column == "l1" else f"{main_pipe}/top1"  # the metric the paper's cell reports
    lines = [
        f"{name} ({profile} profile, trained on {dataset}){' — ' + source if source else ''}",
        f"{'metric':28s} {'measured':>10s}  {'baseline':30s} paper",
    ]
    shown = False
    for key, value in metrics.items():
        tag, _, m = key.partition("/")
        if m.startswith("copy_") or m == "clips":
            continue
        baseline = ""
        if f"{tag}/copy_{m}" in metrics:
            baseline = f"copy the frame {metrics[f'{tag}/copy_{m}']:.4g}"
        elif m.rsplit("/", 1)[-1] == "top1" and f"{tag}/clips" in metrics:
            classes = resolve(name, profile).model.num_classes
            if classes >= 2:
                low, high = chance_band(classes, int(metrics[f"{tag}/clips"]))
                baseline = f"chance {100 / classes:.0f} (band {low:.1f}-{high:.1f})"
        paper = ""
        if m == main and row is not None and column is not None and not shown:  # the first set scored
            shown = True
            value_p = paper_cell(table, row, column).value
            paper = f"{value_p:g} ({table}, {row}, {column})" if value_p is not None else ""
        lines.append(f"{key:28s} {value:10.4g}  {baseline:30s} {paper}")
    return "\n".join(lines)
