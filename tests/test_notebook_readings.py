"""A notebook run with non-default (cached) parameters: its reading says what its table says, and
it writes a file named by its parameters, not the defaults' file."""

import re

import nbformat
import pandas as pd
import pytest

from cgm import notebook, tables

papermill = pytest.importorskip("papermill")


def markdown_outputs(nb) -> str:
    return "\n".join(
        o.get("data", {}).get("text/markdown", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )


@pytest.mark.slow
def test_table3_with_slowfast_reads_its_own_table(tmp_path, monkeypatch):
    monkeypatch.setenv("CGM_RESULTS_DIR", str(tmp_path))
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(notebook.NOTEBOOKS / "table3_kinetics.ipynb"),
        str(out),
        parameters={"rows": "slowfast"},
        cwd=str(notebook.NOTEBOOKS),
        progress_bar=False,
        kernel_name="python3",
        start_timeout=300,
    )
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == ["table3_kinetics__rows=slowfast.csv"]
    frame = pd.read_csv(tmp_path / "table3_kinetics__rows=slowfast.csv")
    assert set(frame["parameters"]) == {"rows=slowfast"}
    reading = markdown_outputs(nbformat.read(str(out), as_version=4))
    top1 = frame[frame.column == "top1"]
    low, high = tables.chance_band(4, int(top1.clips.iloc[0]))
    above = re.search(r"\*\*Above the band\*\*: (.*?)\.(?: \*\*|$)", reading, flags=re.M)
    above_rows = {part.rsplit(" ", 1)[0] for part in above.group(1).split("; ")} if above else set()
    assert above_rows == set(top1.loc[top1.measured > high, "row"])
    assert "SlowFast" in reading and "3D-ResNet50" not in reading
