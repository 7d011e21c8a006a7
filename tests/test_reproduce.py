"""The notebook runner: parameter discovery, order, variants, summary."""

import nbformat
import pandas as pd
import pytest

from cgm import notebook, reproduce


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
    text = reproduce.write_summary(tmp_path).read_text()
    head = "### Embedded datasets: `datasets.csv`"
    assert head in text and "0.4" in text
    assert "### Embedded datasets: `datasets__size=64.csv`" in text
    assert "time_to_quality" not in text
    assert text.index("## Verdicts") < text.index(head)  # the verdict table opens the report


def test_equal_numbers_rewrite_the_committed_files_byte_for_byte(tmp_path):
    """A rerun whose numbers did not change leaves `git status` clean: run times go to the ignored
    results/timings/, never into the summary or a notebook's CSV."""
    from cgm import notebook

    frame = pd.DataFrame(
        {"table": ["table1_motion"], "row": ["TV-L1"], "column": ["l1"], "measured": [0.015]}
        | {"paper": [0.04], "dataset": ["footage"], "profile": ["laptop"], "sec_per_pair": [0.123]}
    )
    path = notebook.write_results(frame, "table1_motion", results_dir=tmp_path)
    first = path.read_bytes()
    assert b"sec_per_pair" not in first and b"0.123" not in first
    timing = pd.read_csv(tmp_path / "timings" / "table1_motion.csv")
    assert list(timing.columns) == ["table", "row", "column", "sec_per_pair"]
    notebook.write_results(frame.assign(sec_per_pair=9.0), "table1_motion", results_dir=tmp_path)
    assert path.read_bytes() == first
    summary = reproduce.write_summary(tmp_path).read_bytes()
    reproduce.write_timings({"table1_motion": 12.0}, tmp_path)
    assert reproduce.write_summary(tmp_path).read_bytes() == summary
    assert b"Notebook ran" not in summary and (tmp_path / "timings" / "notebooks.csv").exists()


def test_notebook_kernels_talk_over_ipc():
    """No 'running over TCP without encryption' warning from ipykernel in `make reproduce`."""
    manager = reproduce.kernel_manager_class()()
    assert manager.transport == "ipc" and manager.shutdown_wait_time >= 30


def test_notebook_kernels_are_not_interrupted_on_shutdown(monkeypatch):
    """A finished notebook's kernel gets its shutdown request without a SIGINT first (which would
    print 'KeyboardInterrupt caught in kernel' if it landed inside a message handler)."""
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    calls = []

    async def interrupt(self):
        calls.append(self.shutting_down)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", interrupt)
    manager = reproduce.kernel_manager_class()()
    manager.shutting_down = True
    asyncio.run(manager._async_interrupt_kernel())
    assert calls == []
    manager.shutting_down = False
    asyncio.run(manager._async_interrupt_kernel())
    assert calls == [False]


def test_papermill_parameter_inspection_noise_is_filtered(tmp_path, caplog):
    """papermill's inspector warns on parameter lines whose comment holds '='; the runner drops
    exactly that warning and keeps papermill's others."""
    import logging

    import papermill
    from papermill.inspection import _infer_parameters

    path = _notebook(tmp_path, 'overrides = ""  # e.g. "amp=bf16"\nsteps = 3\n')
    nb = papermill.iorw.load_notebook_node(str(path))
    log = logging.getLogger("papermill.translators")  # where the inspector logs
    with caplog.at_level(logging.WARNING, logger="papermill"):
        _infer_parameters(nb, name="python3", language="python")
    assert any("Unable to parse line" in r.getMessage() for r in caplog.records)
    caplog.clear()
    noise = reproduce.ParameterInspectionNoise()
    log.addFilter(noise)
    try:
        with caplog.at_level(logging.WARNING, logger="papermill"):
            _infer_parameters(nb, name="python3", language="python")
            log.warning("Passed unknown parameter: x")
    finally:
        log.removeFilter(noise)
    assert [r.getMessage() for r in caplog.records] == ["Passed unknown parameter: x"]


def _png(pixels) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def test_a_redrawn_figure_with_the_same_picture_keeps_its_bytes(tmp_path):
    import numpy as np

    base = np.random.default_rng(0).integers(0, 255, (8, 8, 3))
    old = _png(base)
    same, other = tmp_path / "same.png", tmp_path / "other.png"
    shifted = base.copy()
    shifted[2, 3, 1] += 1  # one pixel one level off: float rounding of another CPU
    same.write_bytes(_png(shifted))
    changed = base.copy()
    changed[2, 3, 1] += 9  # a different picture
    other.write_bytes(_png(changed))
    assert _png(shifted) != old
    kept = reproduce.keep_same_pictures({same: old, other: old})
    assert kept == [same] and same.read_bytes() == old and other.read_bytes() != old
    assert not notebook.same_picture(old, _png(base[:4]))  # another size is another picture


def test_save_figure_leaves_a_file_showing_the_same_picture(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    path = notebook.save_figure(fig, tmp_path / "f.png", dpi=50)
    first = path.read_bytes()
    stamp = path.stat().st_mtime_ns
    notebook.save_figure(fig, path, dpi=50)
    assert path.stat().st_mtime_ns == stamp  # the same picture: not rewritten
    ax.plot([0, 1], [1, 0])
    notebook.save_figure(fig, path, dpi=50)
    assert path.read_bytes() != first  # another picture: written
    plt.close(fig)
