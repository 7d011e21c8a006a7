"""Every number the paper reports, as plain data; nothing here is measured.

Transcribed from `docs/paper_tables.md` (a cleaned, cell-by-cell reading of the tables of Tian,
Che, Bao, Zhai, Gao, "Self-supervised Motion Representation via Scattering Local Motion Cues",
ECCV 2020) and cross-checked against the paper text. Each cell is a `PaperValue`
keyed by (table, row, column). Row names follow the paper's wording; where the paper repeats a
method name (e.g. "Ours" with three backbones) the backbone is added in brackets. A dash in the
paper ("not reported") is kept as `value=None`. Cells that could not be read with confidence from
our copy carry `uncertain=True`.

Column ids: `l1` (ℓ1 error, frames in [-1, 1]), `psnr`, `ssim`, `top1`, `top5` (percent),
`ucf101`, `hmdb51` (top-1 percent), `half`/`full` (Kinetics-400 training data, top-1 percent),
`params_m` (millions), `gflops`, `value` (a number stated in the text).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class PaperValue:
    """One cell of a paper table (or one number stated in the text)."""

    table: str
    row: str
    column: str
    value: float | None  # None: the paper prints a dash
    note: str = ""
    uncertain: bool = False


TABLES: dict[str, str] = {
    "table1_motion": "Table 1 (left): motion estimation on UCF-Flow, ℓ1 error of the warped frame, frames in [-1,1]; lower is better.",
    "table1_prediction": "Table 1 (right): 1-step video prediction on UCF-Pred, PSNR and SSIM; higher is better.",
    "table2_selfsup": "Table 2 (left): self-supervised pretraining, top-1 on UCF101 / HMDB51 (one unreadable row omitted).",
    "table2_labels": "Table 2 (right): Kinetics-400 top-1 when trained on half or the full labeled training set.",
    "table3_kinetics400": "Table 3: Kinetics-400 validation top-1 / top-5; Y500K = 500K-clip YouTube-8M subset.",
    "table4_kinetics600": "Table 4: Kinetics-600 validation top-1 / top-5; Y500K = 500K-clip YouTube-8M subset.",
    "table5_ucf_hmdb": "Table 5: UCF101 and HMDB51 top-1, mean of the three splits; (N) = input frames.",
    "table6_upsampling": "Table 6: motion-map upsampling methods, ℓ1 error (3D-ResNet18 backbone).",
    "table7_upsampling_action": "Table 7: motion maps for action recognition, UCF101 top-1 (3D-ResNet18).",
    "table8_cost": "Table 8: inference pipelines on UCF101: top-1, parameters, GFLOPs († = averaged with the backbone's prediction).",
    "fig6_scale": "Figure 6 (right): the only number the text gives for the HR/LR scale factor study.",
    "text_training": "Training settings stated in the text (§3.5, §4.1, §4.2).",
    "text_datasets": "Dataset sizes stated in the text (§4.1, §4.2).",
    "text_claims": "Differences the text states in percentage points (checkable against the tables).",
}

_T1 = "traditional, not trained"
_CNN = "CNN, trained"
_EXTRA = "* uses extra unlabeled data"


def _cells(
    table: str,
    columns: tuple[str, ...],
    rows: list[tuple],
    *,
    uncertain_rows: tuple[str, ...] = (),
) -> list[PaperValue]:
    """Expand `(row, (v_col0, v_col1, ...), note)` triples into one PaperValue per cell."""
    out = []
    for row, values, note in rows:
        if len(values) != len(columns):
            raise ValueError(f"{table}/{row}: {len(values)} values for columns {columns}")
        for column, value in zip(columns, values):
            out.append(
                PaperValue(
                    table, row, column, None if value is None else float(value), note, row in uncertain_rows
                )
            )
    return out


_TABLE1_MOTION = _cells(
    "table1_motion",
    ("l1",),
    [
        ("DIS-Fast", (0.055,), _T1),
        ("DeepFlow", (0.058,), _T1),
        ("TV-L1", (0.037,), _T1),
        ("FlowNet2.0", (0.057,), _CNN),
        ("PWC-Net", (0.049,), _CNN),
        ("TV-Net-50", (0.040,), _CNN),
        ("Ours (CGM-Net)", (0.018,), _CNN),
    ],
)

_TABLE1_PREDICTION = _cells(
    "table1_prediction",
    ("psnr", "ssim"),
    [
        ("BeyondMSE", (32, 0.92), ""),
        ("ContextVP", (34.9, 0.92), ""),
        ("MCnet+RES", (31, 0.91), ""),
        ("EpicFlow", (31.6, 0.93), ""),
        ("DVF", (33.4, 0.94), ""),
        ("Ours (112 px)", (35.0, 0.96), "input 112x112"),
        ("Ours (256 px)", (36.3, 0.96), "input 256x256"),
    ],
)

# The first four rows are garbled in our copy of the paper (tables.md marks them uncertain).
_TABLE2_SELFSUP = _cells(
    "table2_selfsup",
    ("ucf101", "hmdb51"),
    [
        ("3D-R101", (56.2, 30.3), ""),
        ("STC-R101 (S-R101)", (56.7, 30.8), ""),
        ("Shuffle and Learn", (50.9, 19.8), ""),
        ("OPN-RGB", (71.8, 36.7), ""),
        ("Order Prediction", (72.4, 30.9), ""),
        ("Odd-One-Out", (60.3, 32.5), ""),
        ("AoT-RGB*", (86.5, None), _EXTRA),
        ("ActionFlowNet", (83.9, 56.4), ""),
        ("DynamoNet (3D-R101)*", (87.3, 58.6), _EXTRA),
        (
            "DynamoNet (S-R101)*",
            (88.1, 59.9),
            _EXTRA + "; HMDB51 read from the text: 'outperforms our method ... by 0.9% on HMDB51'",
        ),
        ("Ours (3D-R101)*", (88.1, 59.0), _EXTRA),
    ],
    uncertain_rows=("3D-R101", "STC-R101 (S-R101)", "Shuffle and Learn", "OPN-RGB"),
)

_TABLE2_LABELS = _cells(
    "table2_labels",
    ("half", "full"),
    [
        ("3D-R101", (53.9, 65.1), ""),
        ("S-R101", (55.4, 66.2), ""),
        ("StNet (R101)", (56.7, 71.38), ""),
        ("DynamoNet (S-R101)", (63.6, 67.67), ""),
        ("Ours (3D-R101)", (69.8, 76.2), ""),
    ],
)


def _k400(flow: str, backbone: str, pretrain: str) -> str:
    return f"flow: {flow}; backbone: {backbone}; pretrain: {pretrain}"


_TABLE3_KINETICS400 = _cells(
    "table3_kinetics400",
    ("top1", "top5"),
    [
        ("3D-ResNet18", (54.2, 78.1), _k400("no", "–", "–")),
        ("C3D", (55.6, None), _k400("no", "–", "Sports1M")),
        ("3D-ResNet50", (61.3, 83.1), _k400("no", "–", "–")),
        ("3D-ResNet101", (62.8, 83.9), _k400("no", "–", "–")),
        ("3D-ResNeXt101", (65.1, 85.7), _k400("no", "–", "–")),
        ("R(2+1)D", (73.9, 90.9), _k400("no", "–", "–")),
        ("STC-Net", (68.7, 88.5), _k400("no", "3D-ResNeXt101", "–")),
        ("DynamoNet (3D-ResNeXt101)", (68.2, 88.1), _k400("no", "3D-ResNeXt101", "Y500K")),
        ("StNet", (71.4, None), _k400("no", "ResNet101", "–")),
        ("DynamoNet (STC-ResNeXt101)", (77.9, 94.2), _k400("no", "STC-ResNeXt101", "Y500K")),
        ("SlowFast 16×8", (78.9, 93.5), _k400("no", "ResNeXt101", "–")),
        ("R(2+1)D Flow", (67.5, 87.2), _k400("yes", "–", "–")),
        ("I3D", (71.6, 90.0), _k400("yes", "–", "–")),
        ("R(2+1)D (RGB+Flow)", (73.9, 90.9), _k400("yes", "–", "–")),
        ("Two-Stream I3D", (75.7, 92.0), _k400("yes", "BN-Inception", "ImageNet")),
        ("S3D-G", (77.2, 93.0), _k400("yes", "–", "ImageNet")),
        ("Ours (3D-ResNet50)", (70.1, 90.2), _k400("no", "3D-ResNet50", "Y500K")),
        ("Ours (3D-ResNeXt101)", (76.2, 92.3), _k400("no", "3D-ResNeXt101", "Y500K")),
        ("Ours (SlowFast 16×8)", (80.8, 94.5), _k400("no", "SlowFast 16×8", "Y500K")),
    ],
)


def _k600(backbone: str, pretrain: str) -> str:
    return f"backbone: {backbone}; pretrain: {pretrain}"


_TABLE4_KINETICS600 = _cells(
    "table4_kinetics600",
    ("top1", "top5"),
    [
        ("P3D", (71.3, None), _k600("ResNet152", "ImageNet")),
        ("I3D", (71.9, 90.1), _k600("BN-Inception", "–")),
        ("TSN", (76.2, None), _k600("IRv2", "ImageNet")),
        ("StNet", (79.0, None), _k600("IRv2", "ImageNet")),
        ("SlowFast 16×8", (81.1, 95.1), _k600("ResNeXt101", "–")),
        ("Ours (3D-ResNet50)", (76.2, 90.7), _k600("3D-ResNet50", "Y500K")),
        ("Ours (3D-ResNeXt101)", (80.2, 94.0), _k600("3D-ResNeXt101", "Y500K")),
        ("Ours (SlowFast 16×8)", (81.9, 95.1), _k600("SlowFast 16×8", "Y500K")),
    ],
)

_TABLE5_UCF_HMDB = _cells(
    "table5_ucf_hmdb",
    ("ucf101", "hmdb51"),
    [
        ("DT+MVSM", (83.5, 55.9), ""),
        ("iDT+FV", (85.9, 57.2), ""),
        ("C3D", (82.3, 56.8), ""),
        ("Two Stream", (88.6, None), ""),
        ("TDD+FV", (90.3, 63.2), ""),
        ("RGB+Flow-TSN", (94.0, 68.5), ""),
        ("ST-ResNet", (93.5, 66.4), ""),
        ("TSN", (94.2, 69.5), ""),
        ("3D-ResNet101", (88.9, 61.7), ""),
        ("3D-ResNeXt101", (90.7, 63.8), ""),
        ("DynamoNet (16), 3D-ResNeXt101", (91.6, 66.2), "16 input frames"),
        ("DynamoNet (32), 3D-ResNeXt101", (93.1, 68.5), "32 input frames"),
        ("DynamoNet (64), STC-ResNeXt101", (94.2, 77.9), "64 input frames"),
        ("Ours (32), 3D-ResNeXt101", (94.1, 69.8), "32 input frames"),
    ],
)

_TABLE6_UPSAMPLING = _cells(
    "table6_upsampling",
    ("l1",),
    [
        ("Nearest", (0.042,), "dilated filters ('zero holes')"),
        ("Bilinear", (0.037,), "dilated filters ('zero holes')"),
        ("Ours (CGMUL)", (0.024,), ""),
    ],
)

_TABLE7_UPSAMPLING_ACTION = _cells(
    "table7_upsampling_action",
    ("top1",),
    [
        ("Backbone", (84.4,), ""),
        ("+LR", (88.2,), ""),
        ("+LR+HR (nearest)", (88.2,), ""),
        ("+LR+HR (bilinear)", (88.2,), ""),
        ("+LR+HR (Ours)", (90.6,), ""),
    ],
)

_AVG = "† averaged with the backbone CNN's prediction"
_TABLE8_COST = _cells(
    "table8_cost",
    ("top1", "params_m", "gflops"),
    [
        ("Baseline 3D-ResNet18", (84.4, 33.2, 19.3), ""),
        ("Baseline 3D-ResNet34", (87.7, 63.5, 36.7), ""),
        ("Backbone", (86.5, 33.2, 19.3), "backbone CNN (3D-ResNet18) of CGM-Net"),
        ("LR†", (88.2, 45.73, 30.3), "3D-ResNet18; " + _AVG),
        ("HR†", (89.4, 48.12, 155.7), "3D-ResNet18; " + _AVG),
        ("LR+HR†", (90.6, 53.63, 156.01), "3D-ResNet18; " + _AVG),
    ],
)

_FIG6_SCALE = [
    PaperValue(
        "fig6_scale",
        "scale 4",
        "top1",
        90.6,
        "best scale; the text: 'surpasses the baseline by 6.2%' (84.4 + 6.2)",
    ),
    PaperValue("fig6_scale", "scale 4", "gain_over_baseline", 6.2, "percentage points, from the text"),
]

_TEXT_TRAINING = _cells(
    "text_training",
    ("value",),
    [
        ("clip_len", (16,), "frames per clip"),
        ("resize_short_side", (128,), "px, frames resized to this when smaller"),
        ("crop_size", (112,), "px, random crops of 112x112 (SlowFast uses its own input size)"),
        ("num_crops", (5,), "random crops (and flips)"),
        ("lr", (0.001,), "Adam, initial learning rate"),
        ("batch_size", (64,), ""),
        ("lr_step_epochs", (50,), "learning rate reduced every 50 epochs (Table 1 runs)"),
        ("lambda1_motion", (1.0,), "Eq. 7, Table 1 runs"),
        ("lambda2_motion", (0.0,), "Eq. 7, Table 1 runs (no labels)"),
        ("lambda1_action", (1.0,), "Eq. 7, action recognition"),
        ("lambda2_action", (10.0,), "Eq. 7, action recognition"),
        ("scale", (4,), "HR/LR motion-map scale factor"),
        ("charbonnier_eps", (0.000001,), "Charbonnier penalty epsilon"),
        ("unlabeled_clips", (500_000,), "YouTube-8M clips used for pretraining"),
        ("num_gpus", (16,), "2080 Ti"),
    ],
)

_TEXT_DATASETS = _cells(
    "text_datasets",
    ("value",),
    [
        ("UCF-Flow videos", (20,), "UCF101 videos with neat backgrounds and obvious motion"),
        ("UCF-Pred videos", (101,), "UCF101 videos of different actions"),
        ("UCF101 classes", (101,), ""),
        ("UCF101 videos", (13_320,), ""),
        ("HMDB51 classes", (51,), ""),
        ("HMDB51 videos", (6_766,), ""),
    ],
)

# Differences stated in the text, percentage points. tests/test_paper.py recomputes each
# from the tables above, which cross-checks the transcription.
_TEXT_CLAIMS = _cells(
    "text_claims",
    ("value",),
    [
        ("Ours (3D-R101)* UCF101 gap to 3D-ResNet101 of Table 5", (0.8,), "§4.2, Table 2 left"),
        ("DynamoNet (S-R101)* over Ours on HMDB51", (0.9,), "§4.2, Table 2 left"),
        ("Ours (3D-ResNeXt101) over DynamoNet (3D-ResNeXt101), top-1", (8.0,), "§4.2, Table 3"),
        ("Ours (3D-ResNeXt101) over DynamoNet (3D-ResNeXt101), top-5", (4.2,), "§4.2, Table 3"),
        ("Ours (3D-ResNet50) over 3D-ResNet101, top-1", (7.3,), "§4.2, Table 3"),
        ("Ours (3D-ResNet50) over 3D-ResNet101, top-5", (6.3,), "§4.2, Table 3"),
        ("Ours (SlowFast 16×8) over the best RGB+flow method, top-1", (3.6,), "§4.2, Table 3"),
        ("Backbone over Baseline 3D-ResNet18", (2.1,), "§4.3, Table 8"),
        ("LR† over Baseline 3D-ResNet18", (3.8,), "§4.3, Tables 7 and 8"),
        ("LR† over Baseline 3D-ResNet34", (0.5,), "§4.3, Table 8"),
        ("scale 4 over the baseline", (6.2,), "§4.3, Figure 6"),
    ],
)

PAPER_VALUES: tuple[PaperValue, ...] = tuple(
    _TABLE1_MOTION
    + _TABLE1_PREDICTION
    + _TABLE2_SELFSUP
    + _TABLE2_LABELS
    + _TABLE3_KINETICS400
    + _TABLE4_KINETICS600
    + _TABLE5_UCF_HMDB
    + _TABLE6_UPSAMPLING
    + _TABLE7_UPSAMPLING_ACTION
    + _TABLE8_COST
    + _FIG6_SCALE
    + _TEXT_TRAINING
    + _TEXT_DATASETS
    + _TEXT_CLAIMS
)

_INDEX: dict[tuple[str, str, str], PaperValue] = {(v.table, v.row, v.column): v for v in PAPER_VALUES}


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise KeyError(f"unknown paper table {table!r}; valid tables: {sorted(TABLES)}")


def paper_cell(table: str, row: str, column: str) -> PaperValue:
    """The full `PaperValue` (value, note, uncertain flag) of one cell."""
    _check_table(table)
    try:
        return _INDEX[(table, row, column)]
    except KeyError:
        rows = list(dict.fromkeys(v.row for v in PAPER_VALUES if v.table == table))
        columns = list(dict.fromkeys(v.column for v in PAPER_VALUES if v.table == table))
        raise KeyError(
            f"no cell ({row!r}, {column!r}) in paper table {table!r}; "
            f"valid rows: {rows}; valid columns: {columns}"
        ) from None


# Table 1 (left) rows by the method keys the code uses (cgm.baselines, cgm.verdicts): the four
# methods whose ℓ1 the readings and the verdict compare.
TABLE1_MOTION_ROWS = {
    "cgm": "Ours (CGM-Net)",
    "tvl1": "TV-L1",
    "dis_fast": "DIS-Fast",
    "deepflow": "DeepFlow",
}


# The data the paper's values were measured on, by the stem of our result file
# (`results/<stem>.csv`): (the paper's name for it, our dataset names that are the same data). A
# measured value on any other dataset sits beside the paper's as "other data". Table 6 does not
# name its data; the ablations around it (Table 7, Fig. 6) use UCF101.
PAPER_DATA: dict[str, tuple[str, tuple[str, ...]]] = {
    "table1_motion": ("UCF-Flow, 20 UCF101 videos", ("ucf101",)),
    "table1_prediction": ("UCF-Pred, UCF101 videos", ("ucf101",)),
    "table1_known_motion": ("no EPE reported", ()),
    "table2_selfsupervised": ("UCF101, HMDB51, Kinetics-400", ("ucf101", "hmdb51", "kinetics400")),
    "table3_kinetics": ("Kinetics-400", ("kinetics400",)),
    "table4_kinetics600": ("Kinetics-600", ("kinetics600",)),
    "table5_ucf_hmdb": ("UCF101, HMDB51", ("ucf101", "hmdb51")),
    "table6_upsampling": ("UCF101, the ablations' data", ("ucf101",)),
    "table7_upsampling_action": ("UCF101", ("ucf101",)),
    "fig6_scale": ("UCF101", ("ucf101",)),
}


def paper_value(table: str, row: str, column: str) -> float | None:
    """The paper's number for one cell (None where the paper prints a dash)."""
    return paper_cell(table, row, column).value


def paper_table(table: str) -> pd.DataFrame:
    """One table as a tidy frame: columns table, row, column, value, uncertain, note."""
    _check_table(table)
    records = [
        {
            "table": v.table,
            "row": v.row,
            "column": v.column,
            "value": v.value,
            "uncertain": v.uncertain,
            "note": v.note,
        }
        for v in PAPER_VALUES
        if v.table == table
    ]
    return pd.DataFrame.from_records(
        records, columns=["table", "row", "column", "value", "uncertain", "note"]
    )
