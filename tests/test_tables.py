"""cgm.tables: measured-vs-paper frames, ordering agreement, checks and the results CSV."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from cgm.notebook import write_results
from cgm.paper import paper_table, paper_value
from cgm.tables import check, compare, ordering, paper_grid, show


def test_paper_grid_keeps_the_papers_rows_columns_and_flags():
    grid = paper_grid("table2_selfsup")
    tidy = paper_table("table2_selfsup")
    assert list(grid.index) == list(dict.fromkeys(tidy["row"]))
    assert list(grid.columns) == ["ucf101", "hmdb51", "uncertain"]
    assert grid.loc["Ours (3D-R101)*", "ucf101"] == paper_value("table2_selfsup", "Ours (3D-R101)*", "ucf101")
    assert math.isnan(grid.loc["AoT-RGB*", "hmdb51"])  # a dash in the paper
    assert grid.loc["OPN-RGB", "uncertain"] and not grid.loc["Order Prediction", "uncertain"]
    assert "uncertain" not in paper_grid("table6_upsampling").columns


def test_compare_puts_the_paper_value_of_the_same_cell_beside_the_measured_one():
    frame = compare(
        "table7_upsampling_action",
        [
            {"row": "Backbone", "column": "top1", "measured": 31.0, "experiment": "table7/backbone"},
            {"row": "+LR+HR (Ours)", "column": "top1", "measured": 40.5},
            {"row": "scratch", "column": "top1", "measured": 12.0, "paper_row": None},
            {"row": "cgmul", "column": "top1", "measured": 40.5, "paper_row": "+LR+HR (Ours)"},
        ],
        dataset="synthmotion",
        profile="smoke",
    )
    assert list(frame.columns[:9]) == [
        "table",
        "row",
        "column",
        "measured",
        "paper",
        "paper_row",
        "paper_uncertain",
        "dataset",
        "profile",
    ]
    assert "experiment" in frame.columns
    ours = paper_value("table7_upsampling_action", "+LR+HR (Ours)", "top1")
    assert frame["paper"].iloc[0] == paper_value("table7_upsampling_action", "Backbone", "top1")
    assert frame["paper"].iloc[1] == ours and frame["paper"].iloc[3] == ours
    assert math.isnan(frame["paper"].iloc[2]) and pd.isna(frame["paper_row"].iloc[2])
    assert frame["measured"].tolist() == [31.0, 40.5, 12.0, 40.5]
    assert set(frame["dataset"]) == {"synthmotion"} and set(frame["profile"]) == {"smoke"}


def test_compare_marks_uncertain_paper_cells():
    frame = compare(
        "table2_selfsup",
        [{"row": "3D-R101", "column": "ucf101", "measured": 1.0}],
        dataset="synthmotion",
        profile="smoke",
    )
    assert bool(frame["paper_uncertain"].iloc[0])


def test_compare_rejects_unknown_cells_and_incomplete_records():
    with pytest.raises(KeyError, match="valid rows"):
        compare(
            "table6_upsampling",
            [{"row": "Bicubic", "column": "l1", "measured": 0.1}],
            dataset="d",
            profile="smoke",
        )
    with pytest.raises(ValueError, match="measured"):
        compare("table6_upsampling", [{"row": "Nearest", "column": "l1"}], dataset="d", profile="smoke")
    with pytest.raises(ValueError, match="nothing to compare"):
        compare("table6_upsampling", [], dataset="d", profile="smoke")


def _l1_frame(nearest: float, bilinear: float, ours: float) -> pd.DataFrame:
    return compare(
        "table6_upsampling",
        [
            {"row": "Nearest", "column": "l1", "measured": nearest},
            {"row": "Bilinear", "column": "l1", "measured": bilinear},
            {"row": "Ours (CGMUL)", "column": "l1", "measured": ours},
        ],
        dataset="synthmotion",
        profile="smoke",
    )


def test_ordering_agrees_when_the_measured_order_is_the_papers():
    pairs = ordering(_l1_frame(0.05, 0.04, 0.03), higher_is_better=False)
    assert len(pairs) == 3 and pairs["agrees"].all()
    first = pairs.iloc[0]  # Nearest vs Bilinear: the paper's bilinear has the lower error
    assert (first["better"], first["worse"]) == ("Bilinear", "Nearest")
    assert first["paper_gap"] > 0 and first["measured_gap"] == pytest.approx(0.01)


def test_ordering_reports_a_disagreement():
    pairs = ordering(_l1_frame(0.03, 0.04, 0.05), higher_is_better=False)
    assert not pairs["agrees"].any()
    mixed = ordering(_l1_frame(0.05, 0.03, 0.04), higher_is_better=False).set_index(["better", "worse"])
    assert mixed.loc[("Bilinear", "Nearest"), "agrees"]
    assert not mixed.loc[("Ours (CGMUL)", "Bilinear"), "agrees"]


def test_ordering_treats_paper_ties_as_unordered():
    frame = compare(
        "table7_upsampling_action",
        [
            {"row": "+LR", "column": "top1", "measured": 50.0},
            {"row": "+LR+HR (nearest)", "column": "top1", "measured": 40.0},
        ],
        dataset="synthmotion",
        profile="smoke",
    )
    pairs = ordering(frame, higher_is_better=True)
    assert len(pairs) == 1 and pairs["paper_gap"].iloc[0] == 0 and pairs["agrees"].iloc[0]


def test_check_passes_good_tables_and_names_what_fails():
    frame = _l1_frame(0.05, 0.04, 0.03)
    check(frame, rows=["Nearest", "Bilinear", "Ours (CGMUL)"], low=0.0, high=2.0)
    with pytest.raises(AssertionError, match="missing.*Bicubic"):
        check(frame, rows=["Bicubic"], low=0.0, high=2.0)
    with pytest.raises(AssertionError, match="outside"):
        check(_l1_frame(0.05, float("nan"), 0.03), rows=[], low=0.0, high=2.0)
    with pytest.raises(AssertionError, match="outside"):
        check(_l1_frame(0.05, 3.0, 0.03), rows=[], low=0.0, high=2.0)


def test_write_results_round_trips_through_csv(tmp_path):
    frame = _l1_frame(0.05, 0.04, 0.03)
    path = write_results(frame, "table6_upsampling", results_dir=tmp_path)
    assert path == tmp_path / "table6_upsampling.csv"
    back = pd.read_csv(path)
    assert back["row"].tolist() == frame["row"].tolist()
    assert back["measured"].tolist() == pytest.approx(frame["measured"].tolist())
    assert back["paper"].tolist() == pytest.approx(frame["paper"].tolist())
    assert set(back["profile"]) == {"smoke"}
    with pytest.raises(ValueError, match="compare"):
        write_results(frame.drop(columns=["paper"]), "x", results_dir=tmp_path)


def test_show_renders_the_measured_and_paper_columns():
    text = show(_l1_frame(0.05, 0.04, 0.03))
    assert text.splitlines()[0].split() == ["row", "column", "measured", "paper", "dataset", "profile"]
    assert "0.05" in text and "synthmotion" in text


def test_metric_reads_a_metric_after_its_dataset_tag():
    from types import SimpleNamespace

    from cgm.tables import metric

    result = SimpleNamespace(
        name="x", metrics={"ucf_flow/l1_hr": 0.02, "ucf_pred/l1_hr": 0.03, "synthmotion/lr+hr/top1": 55.0}
    )
    assert metric(result, "l1_hr") == 0.02  # the first evaluation set listed
    assert metric(result, "lr+hr/top1") == 55.0
    with pytest.raises(KeyError, match="no metric 'hr/top1'"):
        metric(result, "hr/top1")


def test_run_overrides_drop_defaults_so_cached_runs_are_shared():
    from cgm.experiments import resolve
    from cgm.notebook import run_overrides

    base = resolve("table6/cgmul", "smoke")
    same = run_overrides(
        "table6/cgmul",
        "smoke",
        data_root=None,
        device=base.train.device,
        seed=base.train.seed,
        steps=None,
        epochs=None,
    )
    assert same == {}
    changed = run_overrides("table6/cgmul", "smoke", steps=base.train.steps + 1, seed=base.train.seed + 3)
    assert changed == {"steps": base.train.steps + 1, "seed": base.train.seed + 3}


def test_chance_band_is_the_binomial_interval_around_guessing():
    from cgm.tables import chance_band

    low, high = chance_band(10, 100)
    assert low == pytest.approx(10 - 1.96 * 3.0) and high == pytest.approx(10 + 1.96 * 3.0)
    assert chance_band(10, 10_000)[1] - chance_band(10, 10_000)[0] < 1.3
    with pytest.raises(ValueError):
        chance_band(1, 100)


def test_every_registered_run_names_a_cell_of_the_paper_by_its_exact_row():
    from cgm.experiments import list_experiments
    from cgm.notebook import paper_cell_of
    from cgm.paper import paper_cell

    without = []
    for e in list_experiments():
        table, row, column = paper_cell_of(e.name)
        if row is None or column is None:
            without.append(e.name)
            continue
        assert paper_cell(table, row, column).value is not None, e.name  # KeyError if no such cell
    # Only Fig. 6's scales the text gives no number for, the pretraining runs and table1/cgm
    # (its column is the table's only one) lack a cell.
    assert all(n.startswith(("fig6/", "pretrain/", "table2/pretrain", "table1/")) for n in without), without
    assert "fig6/scale4" not in without
    assert paper_cell_of("table7/cgmul") == ("table7_upsampling_action", "+LR+HR (Ours)", "top1")
    assert paper_cell_of("table2/kinetics400_half_pretrained") == ("table2_labels", "Ours (3D-R101)", "half")
    assert paper_cell_of("table8/baseline_r3d34")[1] == "Baseline 3D-ResNet34"


def test_run_report_shows_the_paper_cell_of_the_runs_own_column():
    from cgm.notebook import run_report

    metrics = {"synthmotion/lr+hr/top1": 50.0, "synthmotion/clips": 400.0}
    text = run_report("table5/ucf101", metrics, profile="smoke", dataset="synthmotion")
    assert "94.1 (table5_ucf_hmdb, Ours (32), 3D-ResNeXt101, ucf101)" in text
    text = run_report("table5/hmdb51", metrics, profile="smoke", dataset="synthmotion")
    assert "69.8" in text and "94.1" not in text
    text = run_report(
        "table2/kinetics400_half_scratch", {"synthmotion/backbone/top1": 30.0}, profile="smoke", dataset="s"
    )
    assert "53.9 (table2_labels, 3D-R101, half)" in text
