"""Readings, result-file names, verdicts and run reports: computed from the numbers, so they must
say what the numbers say, whatever the numbers are."""

import math

import pandas as pd
import pytest

from cgm import notebook, readings, tables, verdicts


def frame(rows, column="top1", clips=400, chance=25.0):
    return pd.DataFrame(
        [
            {
                "table": "table7_upsampling_action",
                "row": r,
                "column": column,
                "measured": m,
                "paper": p,
                "dataset": "synthmotion",
                "profile": "smoke",
                "clips": clips,
                "chance": chance,
            }
            for r, m, p in rows
        ]
    )


@pytest.mark.parametrize(
    "measured, verdict",
    [
        ((60.0, 50.0, 40.0), "agrees with the paper's order**"),
        ((40.0, 50.0, 60.0), "contradicts the paper's order"),
        ((60.0, 40.0, 50.0), "agrees with the paper's order only in part"),
    ],
)
def test_order_reading_follows_the_measured_order(measured, verdict):
    f = frame(zip(["A", "B", "C"], measured, [90.0, 85.0, 80.0]))
    text = readings.order_reading(f, higher_is_better=True, clips=400)
    assert verdict in text
    best = ["A", "B", "C"][max(range(3), key=lambda i: measured[i])]
    assert f"Best measured row: {best} ({max(measured):.1f})" in text


def test_order_reading_judges_gaps_against_noise():
    text = readings.order_reading(
        frame([("A", 50.0, 90.0), ("B", 52.0, 80.0)]), higher_is_better=True, clips=400
    )
    assert "within noise" in text and "0 of the 1 that do not are beyond noise" in text
    text = readings.order_reading(
        frame([("A", 30.0, 90.0), ("B", 60.0, 80.0)]), higher_is_better=True, clips=400
    )
    assert "1 of the 1 that do not are beyond noise" in text


def test_order_reading_says_a_gap_against_the_paper_as_worse():
    f = frame([("Bilinear", 0.0310, 0.037), ("Nearest", 0.0301, 0.042)], column="l1")
    text = readings.order_reading(f, higher_is_better=False, metric="ℓ1")
    assert "Bilinear worse than Nearest by 0.0009 (paper: better by 0.005)" in text
    assert "by -" not in text


def test_chance_reading_puts_each_row_where_its_value_is():
    text = readings.chance_reading(
        frame([("A", 57.0, 1.0), ("B", 25.0, 1.0), ("C", 10.0, 1.0)]), num_classes=4, clips=400
    )
    low, high = tables.chance_band(4, 400)
    assert f"[{low:.1f}, {high:.1f}]" in text
    assert "**Above the band**: A 57.0." in text and "**Inside the band**: B 25.0." in text
    assert "**Below the band**: C 10.0." in text
    none = readings.chance_reading(frame([("B", 25.0, 1.0)]), num_classes=4, clips=400)
    assert "No row can be told apart from guessing" in none


def test_contrast_reading_signs():
    f = pd.concat(
        [
            frame([("P", 60.0, 88.0), ("S", 25.0, 56.0)], column="ucf101"),
            frame([("P", 20.0, 88.0), ("S", 60.0, 56.0)], column="hmdb51"),
        ]
    )
    text = readings.contrast_reading(
        f,
        {
            "ucf": (("table7_upsampling_action", "P", "ucf101"), ("table7_upsampling_action", "S", "ucf101")),
            "hmdb": (
                ("table7_upsampling_action", "P", "hmdb51"),
                ("table7_upsampling_action", "S", "hmdb51"),
            ),
            "absent": (
                ("table7_upsampling_action", "X", "ucf101"),
                ("table7_upsampling_action", "S", "ucf101"),
            ),
        },
        clips=400,
    )
    assert "ucf: measured +35.0" in text and "same sign as the paper" in text
    assert "hmdb: measured -40.0" in text and "**opposite sign to the paper**" in text
    assert "absent" not in text


def test_reference_and_claims_readings():
    text = readings.reference_reading({"r = 1": 0.08, "r = 2": 0.095}, reference=0.086, name="copy")
    assert "better: r = 1 0.08" in text and "**not better**: r = 2 0.095" in text
    text = readings.claims_reading({"a": True, "b": False, "c": None})
    assert (
        text.startswith("1 of 2 checked claims hold") and "- **fails**: b" in text and "not tested: c" in text
    )


def test_result_stem_names_files_by_the_parameters_that_differ():
    assert (
        notebook.result_stem("table3_kinetics", notebook.notebook_defaults("table3_kinetics"))
        == "table3_kinetics"
    )
    assert (
        notebook.result_stem("table3_kinetics", {"rows": "slowfast", "seed": 0})
        == "table3_kinetics__rows=slowfast"
    )
    # papermill hands text; "600" is the literal 600, and the variant is in the stem already
    assert (
        notebook.result_stem(
            "table3_kinetics", {"variant": "600"}, stem="table4_kinetics600", ignore=["variant"]
        )
        == "table4_kinetics600"
    )
    assert notebook.result_stem("fig6_scale", {"scales": "[1, 2, 4, 8]"}) == "fig6_scale__scales=1,2,4,8"
    assert notebook.parameters_label("fig6_scale", {"scales": None, "seed": 1}) == "seed=1"


@pytest.mark.slow
def test_write_results_with_parameters_never_clobbers_the_defaults(tmp_path):
    f = frame([("Backbone", 50.0, 84.4)])
    a = notebook.write_results(
        f,
        "table7_upsampling_action",
        results_dir=tmp_path,
        params=notebook.notebook_defaults("table7_upsampling_action"),
    )
    b = notebook.write_results(f, "table7_upsampling_action", results_dir=tmp_path, params={"seed": 3})
    assert a.name == "table7_upsampling_action.csv" and b.name == "table7_upsampling_action__seed=3.csv"
    assert pd.read_csv(a)["parameters"].tolist() == ["defaults"]
    assert pd.read_csv(b)["parameters"].tolist() == ["seed=3"]


def write_t1(folder, rows):
    pd.DataFrame(rows).to_csv(folder / "table1_motion.csv", index=False)


def verdict_of(folder, table, claim_start):
    v = verdicts.verdict_table(folder)
    return v[(v.table == table) & v.claim.str.startswith(claim_start)].iloc[0]


def test_verdicts_follow_the_csvs_and_prefer_the_laptop_profile(tmp_path):
    assert verdict_of(tmp_path, "Table 1", "CGM-Net").verdict == verdicts.NOT_MEASURED
    smoke = [
        {"method": "cgm", "metric": "l1", "measured": 0.034, "profile": "smoke", "dataset": "natural"},
        {"method": "tvl1", "metric": "l1", "measured": 0.019, "profile": "smoke", "dataset": "natural"},
    ]
    write_t1(tmp_path, smoke)
    assert verdict_of(tmp_path, "Table 1", "CGM-Net").verdict == verdicts.NOT_REPRODUCED
    laptop = [
        {**r, "profile": "laptop", "dataset": "footage", "measured": m} for r, m in zip(smoke, (0.01, 0.02))
    ]
    write_t1(tmp_path, smoke + laptop)
    row = verdict_of(tmp_path, "Table 1", "CGM-Net")
    assert row.outcome == verdicts.REPRODUCED and row.profile == "laptop" and row.dataset == "footage"
    # the laptop CGM-Net on footage: other data and a model the paper's has not, both named
    assert row.verdict == verdicts.WITH_DEPARTURE
    assert "other data: ours on footage" in row.evidence and verdicts.MATCHING_CUE in row.evidence


def test_top1_verdicts_use_the_noise_of_the_test_clips(tmp_path):
    rows = [
        ("+LR+HR (Ours)", 70.0, 90.6),
        ("+LR", 60.0, 88.2),
        ("Backbone", 40.0, 84.4),
        ("+LR+HR (bilinear)", 68.0, 88.2),
        ("+LR+HR (nearest)", 80.0, 88.2),
    ]
    notebook.write_results(frame(rows), "table7_upsampling_action", results_dir=tmp_path)
    assert verdict_of(tmp_path, "Table 7", "top-1: +LR+HR").outcome == verdicts.REPRODUCED
    assert verdict_of(tmp_path, "Table 7", "top-1: CGMUL > bilinear").verdict == verdicts.INCONCLUSIVE
    row = verdict_of(tmp_path, "Table 7", "top-1: CGMUL > nearest")
    assert row.verdict == verdicts.NOT_REPRODUCED and row.chance.startswith("25%")
    # a run with other parameters does not replace the defaults' numbers
    notebook.write_results(
        frame([(r, 25.0, p) for r, _, p in rows]),
        "table7_upsampling_action",
        results_dir=tmp_path,
        params={"seed": 1},
    )
    assert verdict_of(tmp_path, "Table 7", "top-1: +LR+HR").outcome == verdicts.REPRODUCED


def test_summary_opens_with_the_verdicts_and_hides_internal_columns(tmp_path):
    from cgm import reproduce

    f = frame([("Backbone", 50.0, 84.4)]).assign(
        paper_row="Backbone", paper_uncertain=False, evaluated_on="x", experiment="table7/backbone"
    )
    notebook.write_results(f, "table7_upsampling_action", results_dir=tmp_path)
    text = reproduce.write_summary(tmp_path).read_text()
    assert text.index("## Verdicts") < text.index("## Details")
    details = text[text.index("## Details") :]
    for internal in ("paper_row", "paper_uncertain", "evaluated_on", "experiment"):
        assert internal not in details
    assert "| Table 6 " in text and verdicts.NOT_MEASURED in text


def test_summary_tallies_each_evidence_class_and_marks_other_data(tmp_path):
    from cgm import reproduce

    notebook.write_results(
        frame([("Ours (3D-ResNet50)", 57.0, 70.1)]), "table3_kinetics", results_dir=tmp_path
    )
    report = pd.DataFrame(
        {
            "pipeline": ["Backbone"],
            "params_m": [33.2],
            "gflops": [40.0],
            "paper_params_m": [33.2],
            "paper_gflops": [19.3],
            "gflops_ratio": [1.0],
            "paper_gflops_ratio": [1.0],
            "profile": ["smoke"],
        }
    )
    notebook.write_results(tables.cost_compare(report), "table8_cost", results_dir=tmp_path)
    text = reproduce.write_summary(tmp_path).read_text()
    tally = next(line for line in text.splitlines() if line.startswith("Tally:"))
    # Table 3 above chance on SynthMotion is not counted with Table 8's exact parameter counts
    assert f"2 {verdicts.EXACT}" in tally and f"1 {verdicts.TOY_SCALE}" in tally
    assert f" {verdicts.REPRODUCED}," not in tally and f" {verdicts.REPRODUCED}." not in tally
    assert "70.1 (other data: Kinetics-400)" in text  # the paper's value beside ours on SynthMotion
    assert "33.2 (other data" not in text  # Table 8 counts the architecture: no data


def test_the_readme_tally_is_the_committed_summary_s():
    from cgm import reproduce

    def tally(path):
        return next(line for line in path.read_text().splitlines() if line.startswith("Tally:"))

    assert tally(reproduce.ROOT / "README.md") == tally(reproduce.RESULTS / "summary.md")


def test_the_named_model_departure_is_the_registry_s():
    """MATCHING_CUE is said of the laptop Table 1 CGM-Net and of no other claim's rows."""
    from cgm.experiments import registry

    laptop = registry.resolve("table1/cgm", "laptop").model
    assert laptop.hr_prior == "cue_flow" and laptop.k_hr == 17  # what MATCHING_CUE says
    assert registry.resolve("table1/cgm", "paper").model.hr_prior == "none"
    assert registry.resolve("table6/cgmul", "laptop").model.hr_prior == "none"
    claimed = {c.stem for c in verdicts.CLAIMS if dict(c.departures).get("laptop") == verdicts.MATCHING_CUE}
    assert claimed == {"table1_motion", "table1_known_motion"}


def test_run_report_puts_baselines_and_the_paper_beside_the_metrics():
    metrics = {
        "synthmotion/l1_hr": 0.065,
        "synthmotion/copy_l1_hr": 0.086,
        "synthmotion/lr+hr/top1": 55.0,
        "synthmotion/clips": 400.0,
    }
    text = notebook.run_report("table7/cgmul", metrics, profile="smoke", dataset="synthmotion")
    lines = {line.split()[0]: line for line in text.splitlines()[2:]}
    assert "copy the frame 0.086" in lines["synthmotion/l1_hr"]
    assert "chance 25" in lines["synthmotion/lr+hr/top1"] and "90.6" in lines["synthmotion/lr+hr/top1"]
    assert "synthmotion/clips" not in lines and not math.isnan(metrics["synthmotion/l1_hr"])


def test_cache_chain_names_what_would_train(tmp_path):
    from cgm import cache

    links = cache.chain("table7/cgmul", "smoke", runs_dir=tmp_path)
    assert [link.name for link in links] == ["table6/cgmul", "table7/cgmul"]
    assert [link.name for link in cache.to_train(links)] == ["table6/cgmul", "table7/cgmul"]
    assert "will train: table6/cgmul" in cache.announce(links, runs_dir=tmp_path)
    committed = cache.chain("table7/cgmul", "smoke")  # results/runs holds it
    assert committed[-1].cached and cache.announce(committed) is None


def test_a_chain_names_its_missing_pretraining_root_before_any_work(tmp_path, monkeypatch):
    from cgm import cache

    for var in ("CGM_VIDEOFOLDER_ROOT", "CGM_KINETICS400_ROOT", "CGM_UCF101_ROOT"):
        monkeypatch.delenv(var, raising=False)
    links = cache.chain("table3/r3d50", "paper", runs_dir=tmp_path, data_root=str(tmp_path))
    with pytest.raises(ValueError, match=r"pretrain/r3d50 .*pretrain_root.*'videofolder'.*Expected layout"):
        cache.check_chain(links, "paper")
    cache.use_roots(pretrain_root=str(tmp_path))  # sets CGM_VIDEOFOLDER_ROOT for this process
    monkeypatch.setenv("CGM_VIDEOFOLDER_ROOT", str(tmp_path))  # undone after the test
    # the pretraining's motion evaluation reads UCF-Flow from UCF101's root, not the video folder's
    links = cache.chain("table3/r3d50", "paper", runs_dir=tmp_path, data_root=str(tmp_path))
    with pytest.raises(
        ValueError, match=r"pretrain/r3d50 .*ucf101_root; CLI --ucf101-root.*'ucf_flow'.*CGM_UCF101_ROOT"
    ):
        cache.check_chain(links, "paper")
    monkeypatch.setenv("CGM_UCF101_ROOT", str(tmp_path))
    cache.check_chain(
        cache.chain("table3/r3d50", "paper", runs_dir=tmp_path, data_root=str(tmp_path)), "paper"
    )


def test_a_chain_names_the_training_root_of_the_run_asked_for(tmp_path, monkeypatch):
    from cgm import cache

    for var in ("CGM_VIDEOFOLDER_ROOT", "CGM_KINETICS400_ROOT", "CGM_UCF101_ROOT"):
        monkeypatch.setenv(var, str(tmp_path)) if var != "CGM_KINETICS400_ROOT" else monkeypatch.delenv(
            var, raising=False
        )
    links = cache.chain("table3/r3d50", "paper", runs_dir=tmp_path)
    with pytest.raises(
        ValueError, match=r"table3/r3d50 .*data_root or kinetics_root; CLI --data-root.*'kinetics400'"
    ):
        cache.check_chain(links, "paper")


def test_every_root_a_paper_chain_reads_is_a_parameter_of_its_notebook():
    from cgm import cache, experiments
    from cgm.experiments.runs import root_dataset
    from cgm.notebook import notebook_defaults

    notebooks = {
        "table2_selfsupervised": "table2/",
        "table3_kinetics": "table3/",
        "table5_ucf_hmdb": "table5/",
        "table7_upsampling_action": "table7/",
        "fig6_scale": "fig6/",
    }
    for name, prefix in notebooks.items():
        params = notebook_defaults(name)
        assert "data_root" in params, name
        for e in experiments.list_experiments():
            if not e.name.startswith(prefix):
                continue
            for link in cache.chain(e.name, "paper"):
                cfg = experiments.resolve(link.name, "paper")
                for spec in [cfg.data] + [s for _, _, s in cfg.eval.sets()]:
                    if link.name == e.name and root_dataset(spec.name) == root_dataset(cfg.data.name):
                        continue  # data_root
                    assert cache.ROOT_OF[spec.name] in params, (name, link.name, spec.name)


def test_table8_verdicts_read_the_compare_layout(tmp_path):
    report = pd.DataFrame(
        {
            "pipeline": ["Backbone", "LR†"],
            "params_m": [33.3, 45.0],
            "gflops": [40.0, 62.0],
            "paper_params_m": [33.2, 45.73],
            "paper_gflops": [19.3, 30.3],
            "gflops_ratio": [1.0, 1.55],
            "paper_gflops_ratio": [1.0, 30.3 / 19.3],
            "profile": ["smoke", "smoke"],
        }
    )
    frame8 = tables.cost_compare(report)
    assert set(frame8["column"]) == {"params_m", "gflops", "gflops_ratio"} and len(frame8) == 6
    assert frame8.loc[frame8["column"] == "gflops_ratio", "paper"].round(3).tolist() == [1.0, 1.57]
    notebook.write_results(frame8, "table8_cost", results_dir=tmp_path)
    row = verdict_of(tmp_path, "Table 8", "parameter counts")
    assert row.verdict == verdicts.EXACT and row.dataset == tables.COST_DATASET
    report["params_m"] = [33.3, 52.0]  # 14% off the paper's LR†
    notebook.write_results(tables.cost_compare(report), "table8_cost", results_dir=tmp_path)
    row = verdict_of(tmp_path, "Table 8", "parameter counts")
    assert row.verdict == verdicts.NOT_REPRODUCED and "LR†" in row.measured


def test_a_claim_falls_back_to_the_next_profile_that_holds_its_rows(tmp_path):
    smoke = [("Nearest", 0.078, 0.042), ("Bilinear", 0.076, 0.037), ("Ours (CGMUL)", 0.065, 0.024)]
    f = frame(smoke).assign(
        column="l1", profile="smoke", dataset="synthmotion", clips=math.nan, chance=math.nan
    )
    notebook.write_results(f, "table6_upsampling", results_dir=tmp_path)
    row = verdict_of(tmp_path, "Table 6", "ℓ1: CGMUL < bilinear")
    assert row.verdict == verdicts.TOY_SCALE and row.outcome == verdicts.REPRODUCED and row.profile == "smoke"
    laptop = f.assign(profile="laptop", dataset="footage", measured=[0.030, 0.031, 0.024])
    notebook.write_results(
        laptop, "table6_upsampling", results_dir=tmp_path, stem="table6_upsampling__profile=laptop"
    )
    row = verdict_of(tmp_path, "Table 6", "ℓ1: CGMUL < bilinear")
    assert row.verdict == verdicts.NOT_REPRODUCED and (row.profile, row.dataset) == ("laptop", "footage")
    row = verdict_of(tmp_path, "Table 6", "ℓ1: CGMUL below both")
    assert row.verdict == verdicts.WITH_DEPARTURE and row.evidence.startswith("other data: ours on footage")
    assert verdicts.MATCHING_CUE not in row.evidence  # Table 6's laptop rows keep the paper's CGMUL
    # a laptop file without the rows a claim needs leaves the claim to the smoke rows
    notebook.write_results(
        laptop[laptop.row != "Nearest"],
        "table6_upsampling",
        results_dir=tmp_path,
        stem="table6_upsampling__profile=laptop",
    )
    row = verdict_of(tmp_path, "Table 6", "ℓ1: CGMUL < bilinear")
    assert row.verdict == verdicts.TOY_SCALE and row.profile == "smoke"
    # on the paper's data, with the paper's model, a positive outcome is plainly reproduced
    notebook.write_results(
        f.assign(profile="paper", dataset="ucf101"),
        "table6_upsampling",
        results_dir=tmp_path,
        stem="table6_upsampling__profile=paper",
    )
    row = verdict_of(tmp_path, "Table 6", "ℓ1: CGMUL < bilinear")
    assert (row.verdict, row.profile) == (verdicts.REPRODUCED, "paper")


@pytest.mark.slow
def test_expected_seconds_come_from_the_same_profile_and_scale_with_the_models_cost():
    import json

    from cgm import cache

    scale8 = json.loads(next((tables.ROOT / "results/runs/fig6/scale8").glob("*/result.json")).read_text())
    est16 = cache.expected_seconds(cache.chain("fig6/scale16", "smoke")[-1])
    assert est16 > 2 * scale8["train"]["seconds"]  # r = 16 counts ~3x r = 8's GMACs
    selfsup = cache.chain("table6/cgmul", "smoke")[-1]  # the laptop run of the same name is not its cost
    smoke_s = json.loads((selfsup.path / "result.json").read_text())["train"]["seconds"]
    assert cache.expected_seconds(selfsup) == pytest.approx(smoke_s)
