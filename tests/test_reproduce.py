"""The notebook runner: parameter discovery, order, variants, summary."""

import nbformat
import pandas as pd
import pytest

from cgm import reproduce


def _notebook(tmp_path, source, tags=("parameters",)):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_declared_parameters_reads_commented_and_annotated_lines(tmp_path):
    path = _notebook(
        tmp_path,
        'data_root = None  # root for dataset="ucf101"\n'
        "steps: int = 3\nif steps == 3:\n    pass\nscales = [1, 2]\n",
    )
    assert reproduce.declared_parameters(path) == {"data_root", "steps", "scales"}


def test_notebook_without_parameters_cell_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        reproduce.declared_parameters(_notebook(tmp_path, "x = 1", tags=()))


def test_every_committed_notebook_declares_a_smoke_default():
    notebooks = reproduce.notebook_order()
    assert [p.stem for p in notebooks[:2]] == ["datasets", "table8_cost"]
    for path in notebooks:
        assert reproduce.declared_parameters(path), path.name
    for stem in reproduce.VARIANTS:
        assert stem in {p.stem for p in notebooks}


def test_parse_parameters_literals_and_strings():
    assert reproduce.parse_parameters([["steps", "3"], ["backbone", "slowfast"], ["scales", "[1, 2]"]]) == {
        "steps": 3,
        "backbone": "slowfast",
        "scales": [1, 2],
    }


def test_summary_gathers_every_notebook_csv_and_only_those(tmp_path):
    frame = pd.DataFrame({"row": ["a"], "measured": [0.5], "paper_value": [0.4]})
    frame.to_csv(tmp_path / "datasets.csv", index=False)  # a notebook's table that no verdict reads
    frame.to_csv(tmp_path / "datasets__size=64.csv", index=False)
    frame.to_csv(tmp_path / "time_to_quality__table1_cgm_laptop.csv", index=False)  # a script's curve
    text = reproduce.write_summary(tmp_path, timings={"datasets": 12.0}).read_text()
    head = "### Embedded datasets: `datasets.csv`"
    assert head in text and "12 s" in text and "0.4" in text
    assert "### Embedded datasets: `datasets__size=64.csv`" in text
    assert "time_to_quality" not in text
    assert text.index("## Verdicts") < text.index(head)  # the verdict table opens the report
