"""cgm.paper: the transcription of the paper's numbers matches docs/paper_tables.md."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import pytest

from cgm.paper import PAPER_VALUES, TABLES, paper_cell, paper_table, paper_value

TABLES_MD = Path(__file__).resolve().parents[1] / "docs" / "paper_tables.md"

# Section heading prefix in paper_tables.md -> table id in cgm.paper.
SECTIONS = {
    "Table 1 — left": "table1_motion",
    "Table 1 — right": "table1_prediction",
    "Table 2 — left": "table2_selfsup",
    "Table 2 — right": "table2_labels",
    "Table 3": "table3_kinetics400",
    "Table 4": "table4_kinetics600",
    "Table 5": "table5_ucf_hmdb",
    "Table 6": "table6_upsampling",
    "Table 7": "table7_upsampling_action",
    "Table 8": "table8_cost",
}
# Header of a numeric column in paper_tables.md -> column id in cgm.paper.
COLUMNS = {
    "ℓ1": "l1",
    "PSNR": "psnr",
    "SSIM": "ssim",
    "UCF101": "ucf101",
    "HMDB51": "hmdb51",
    "top-1": "top1",
    "top-5": "top5",
    "params": "params_m",
    "GFLOPs": "gflops",
}
# Table 8 rows are renamed to short pipeline names in cgm.paper.
ROW_ALIASES = {
    "Baseline (3D-ResNet18)": "Baseline 3D-ResNet18",
    "Baseline (3D-ResNet34)": "Baseline 3D-ResNet34",
    "Backbone CNN (3D-ResNet18)": "Backbone",
    "LR (3D-ResNet18)†": "LR†",
    "HR (3D-ResNet18)†": "HR†",
    "LR+HR (3D-ResNet18)†": "LR+HR†",
}
# Text columns of Tables 3 and 4, which cgm.paper keeps in the note as "flow: yes; backbone: ...".
ATTRIBUTES = ("flow", "backbone", "pretrain")
KEYS = {(v.table, v.row, v.column) for v in PAPER_VALUES}
NUMBER = re.compile(r"^-?\d+(\.\d+)?M?$")
DASH = "–"


def _parse_tables_md(text: str) -> dict[str, list[dict]]:
    """{table id: [{"method", "values": {column: float|None}, "attributes": {name: str}, "uncertain"}]}."""
    tables: dict[str, list[dict]] = {}
    table_id = None
    header: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:]
            table_id = next((tid for prefix, tid in SECTIONS.items() if title.startswith(prefix)), None)
            header = None
            continue
        if table_id is None or not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if set("".join(cells)) <= set("-"):  # the |---|---| separator
            continue
        record = dict(zip(header, cells))
        method = ROW_ALIASES.get(cells[0], cells[0])
        values: dict[str, float | None] = {}
        for name, cell in record.items():
            if name not in COLUMNS:
                continue
            column = record["data"] if "data" in record else COLUMNS[name]  # half/full rows
            if cell == DASH:
                values[column] = None
            else:
                assert NUMBER.match(cell), f"{table_id}/{method}: unparsed cell {cell!r}"
                values[column] = float(cell.rstrip("M"))
        rows = tables.setdefault(table_id, [])
        same = [r for r in rows if r["method"] == method and not set(r["values"]) & set(values)]
        if "data" in record and same:  # Table 2 right: one md row per (method, data)
            same[0]["values"].update(values)
        else:
            rows.append(
                {
                    "method": method,
                    "values": values,
                    "attributes": {a: record[a] for a in ATTRIBUTES if a in record},
                    "uncertain": "uncertain" in record.get("note", ""),
                }
            )
    return tables


@pytest.fixture(scope="module")
def md_tables() -> dict[str, list[dict]]:
    return _parse_tables_md(TABLES_MD.read_text(encoding="utf-8"))


def test_docs_copy_matches_shared_source_when_present():
    shared = Path(__file__).resolve().parents[2] / "shared" / "paper" / "tables.md"
    if not shared.exists():
        pytest.skip("../shared/paper/tables.md is not present (clean clone)")

    def tables(text):  # the tables and their notes; the opening paragraph (how to cite) is ours
        return text[text.index("\n## ") :]

    assert tables(shared.read_text(encoding="utf-8")) == tables(TABLES_MD.read_text(encoding="utf-8"))


def test_every_table_of_the_md_is_parsed(md_tables):
    assert set(md_tables) == set(SECTIONS.values())
    assert sum(len(rows) for rows in md_tables.values()) > 80


@pytest.mark.slow
def test_every_md_row_is_in_paper_values_with_the_same_numbers(md_tables):
    for table_id, md_rows in md_tables.items():
        paper_rows = paper_table(table_id).groupby("row", sort=False)
        matched = []
        for md_row in md_rows:
            method = md_row["method"]
            candidates = [name for name, _ in paper_rows if name == method or name.startswith(method + " (")]
            hits = []
            for name in candidates:
                if not all((table_id, name, c) in KEYS for c in md_row["values"]):
                    continue
                cells = {c: paper_cell(table_id, name, c) for c in md_row["values"]}
                same_values = all(_same(cells[c].value, v) for c, v in md_row["values"].items())
                same_attributes = all(
                    f"{a}: {v}" in cell.note
                    for a, v in md_row["attributes"].items()
                    for cell in cells.values()
                )
                if same_values and same_attributes:
                    hits.append(name)
            assert len(hits) == 1, f"{table_id}: md row {method} {md_row['values']} matches {hits}"
            assert all(
                paper_cell(table_id, hits[0], c).uncertain == md_row["uncertain"] for c in md_row["values"]
            ), f"{table_id}/{hits[0]}: uncertain flag"
            matched.append(hits[0])
        assert sorted(matched) == sorted(name for name, _ in paper_rows), table_id


def test_numeric_cells_are_the_same_multiset(md_tables):
    for table_id, md_rows in md_tables.items():
        md_cells = Counter((c, v) for r in md_rows for c, v in r["values"].items() if v is not None)
        ours = Counter(
            (v.column, v.value) for v in PAPER_VALUES if v.table == table_id and v.value is not None
        )
        assert md_cells == ours, table_id


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12)


def test_spot_values():
    assert paper_value("table1_motion", "TV-L1", "l1") == 0.037
    assert paper_value("table1_motion", "Ours (CGM-Net)", "l1") == 0.018
    assert paper_value("table1_prediction", "Ours (256 px)", "psnr") == 36.3
    params = [paper_value("table8_cost", r, "params_m") for r in ("Backbone", "LR†", "HR†", "LR+HR†")]
    assert params == [33.2, 45.73, 48.12, 53.63]
    assert paper_value("table8_cost", "LR+HR†", "gflops") == 156.01
    assert paper_value("table2_labels", "StNet (R101)", "full") == 71.38
    assert paper_value("table3_kinetics400", "C3D", "top5") is None
    assert paper_value("text_training", "charbonnier_eps", "value") == 1e-6
    assert paper_cell("table2_selfsup", "OPN-RGB", "ucf101").uncertain
    assert not paper_cell("table2_selfsup", "Ours (3D-R101)*", "ucf101").uncertain


def test_every_table_has_rows_and_keys_are_unique():
    keys = [(v.table, v.row, v.column) for v in PAPER_VALUES]
    assert len(keys) == len(set(keys))
    assert {v.table for v in PAPER_VALUES} == set(TABLES)
    for table_id in TABLES:
        frame = paper_table(table_id)
        assert len(frame) > 0, table_id
        assert list(frame.columns) == ["table", "row", "column", "value", "uncertain", "note"]


def test_unknown_cell_names_valid_choices():
    with pytest.raises(KeyError) as info:
        paper_value("table8_cost", "LR+HR", "top1")
    message = str(info.value)
    assert "LR+HR†" in message and "params_m" in message and "gflops" in message
    with pytest.raises(KeyError, match="table8_cost"):
        paper_table("table9")


def _diff(table: str, a: str, b: str, column: str) -> float:
    return paper_value(table, a, column) - paper_value(table, b, column)


def test_text_claims_agree_with_the_tables():
    """Each difference the text states is recomputed from the transcribed tables."""
    t2, t3, t8 = "table2_selfsup", "table3_kinetics400", "table8_cost"
    computed = {
        "Ours (3D-R101)* UCF101 gap to 3D-ResNet101 of Table 5": paper_value(
            "table5_ucf_hmdb", "3D-ResNet101", "ucf101"
        )
        - paper_value(t2, "Ours (3D-R101)*", "ucf101"),
        "DynamoNet (S-R101)* over Ours on HMDB51": _diff(
            t2, "DynamoNet (S-R101)*", "Ours (3D-R101)*", "hmdb51"
        ),
        "Ours (3D-ResNeXt101) over DynamoNet (3D-ResNeXt101), top-1": _diff(
            t3, "Ours (3D-ResNeXt101)", "DynamoNet (3D-ResNeXt101)", "top1"
        ),
        "Ours (3D-ResNeXt101) over DynamoNet (3D-ResNeXt101), top-5": _diff(
            t3, "Ours (3D-ResNeXt101)", "DynamoNet (3D-ResNeXt101)", "top5"
        ),
        "Ours (3D-ResNet50) over 3D-ResNet101, top-1": _diff(
            t3, "Ours (3D-ResNet50)", "3D-ResNet101", "top1"
        ),
        "Ours (3D-ResNet50) over 3D-ResNet101, top-5": _diff(
            t3, "Ours (3D-ResNet50)", "3D-ResNet101", "top5"
        ),
        "Ours (SlowFast 16×8) over the best RGB+flow method, top-1": paper_value(
            t3, "Ours (SlowFast 16×8)", "top1"
        )
        - max(
            v.value for v in PAPER_VALUES if v.table == t3 and v.column == "top1" and "flow: yes" in v.note
        ),
        "Backbone over Baseline 3D-ResNet18": _diff(t8, "Backbone", "Baseline 3D-ResNet18", "top1"),
        "LR† over Baseline 3D-ResNet18": _diff(t8, "LR†", "Baseline 3D-ResNet18", "top1"),
        "LR† over Baseline 3D-ResNet34": _diff(t8, "LR†", "Baseline 3D-ResNet34", "top1"),
        "scale 4 over the baseline": paper_value("fig6_scale", "scale 4", "top1")
        - paper_value("table7_upsampling_action", "Backbone", "top1"),
    }
    claims = paper_table("text_claims")
    assert set(claims["row"]) == set(computed)
    for row, value in zip(claims["row"], claims["value"]):
        assert round(computed[row], 1) == pytest.approx(value), row
