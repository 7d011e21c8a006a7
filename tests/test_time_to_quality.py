"""scripts/time_to_quality.py: the CSV names the machine whose minutes it holds, and the figure says it."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "time_to_quality.py"


def _script():
    spec = importlib.util.spec_from_file_location("time_to_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _curve(**extra):
    return pd.DataFrame(
        {"step": [100, 200], "minutes": [2.5, 5.0], "l1": [0.014, 0.013], "no_motion_l1": 0.03}
        | {"tvl1_l1": 0.015, "block_matching_l1": 0.0153, "l1_over_tvl1": [0.93, 0.87], "pairs": 192}
        | extra
    )


@pytest.mark.slow
def test_replot_labels_the_axis_with_the_recorded_machine(tmp_path, monkeypatch):
    tq = _script()
    labels = []
    monkeypatch.setattr(tq.plt.Axes, "set_xlabel", lambda ax, text, **kw: labels.append(text))
    csv = tmp_path / "curve.csv"
    _curve(machine="Some CPU, 2 threads").to_csv(csv, index=False)
    tq.main(["--replot", str(csv)])
    assert labels == ["training minutes (Some CPU, 2 threads)"]
    assert (tmp_path / "curve.png").stat().st_size > 0


def test_replot_of_a_curve_without_its_machine_is_an_error(tmp_path):
    csv = tmp_path / "curve.csv"
    _curve().to_csv(csv, index=False)
    with pytest.raises(SystemExit, match="no `machine` column"):
        _script().main(["--replot", str(csv)])


def test_committed_curves_name_their_machine():
    for csv in sorted((SCRIPT.parent.parent / "results").glob("time_to_quality__*.csv")):
        machine = pd.read_csv(csv)["machine"]
        assert machine.notna().all() and machine.nunique() == 1, csv.name
