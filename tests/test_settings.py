"""The CGM_* variables are read in one place: defaults, parsing, one-line errors."""

from pathlib import Path

import pytest

from cgm import settings


def test_defaults_where_nothing_is_set():
    s = settings.read({})
    assert s == settings.Settings()
    assert s.threads == 2 and s.conv == "fast" and s.warp == "taps"
    assert s.runs_dir == settings.ROOT / "results" / "runs" and s.eval_memory_gib is None
    assert s.data_root("ucf101") is None


def test_values_are_parsed_into_their_kinds():
    s = settings.read(
        {
            "CGM_THREADS": "3",
            "CGM_RUNS_DIR": "~/runs",
            "CGM_EVAL_MEMORY_GIB": "1.5",
            "CGM_EVAL_WORKERS": "4",
            "CGM_CONV": "direct",
            "CGM_UCF101_ROOT": "/data/ucf",
            "CGM_VIDEOFOLDER_ROOT": "",
        }
    )
    assert (s.threads, s.eval_memory_gib, s.eval_workers, s.conv) == (3, 1.5, 4, "direct")
    assert s.runs_dir == Path("~/runs").expanduser()
    assert s.data_root("ucf101") == "/data/ucf" and s.data_root("videofolder") is None
    with pytest.raises(AttributeError):
        s.threads = 1  # frozen


@pytest.mark.parametrize(
    "env, match",
    [
        ({"CGM_THREADS": "zero"}, "CGM_THREADS must be a positive integer"),
        ({"CGM_THREADS": "0"}, "CGM_THREADS must be a positive integer"),
        ({"CGM_EVAL_MEMORY_GIB": "lots"}, "CGM_EVAL_MEMORY_GIB='lots' is not a number"),
        ({"CGM_EVAL_WORKERS": "2.5"}, "CGM_EVAL_WORKERS='2.5' is not an integer"),
        ({"CGM_CONV": "winograd"}, r"\$CGM_CONV must be one of"),
    ],
)
def test_a_bad_value_is_named(env, match):
    with pytest.raises(ValueError, match=match):
        settings.read(env)


def test_every_cgm_variable_read_in_cgm_is_documented_in_settings():
    import re

    root = Path(settings.__file__).parent
    doc = settings.__doc__
    for path in root.rglob("*.py"):
        if path.name == "settings.py":
            continue
        text = path.read_text()
        assert 'os.environ.get("CGM_' not in text and 'os.getenv("CGM_' not in text, (
            f"{path.relative_to(root.parent)} reads a CGM_ variable itself; read it through cgm.settings"
        )
        for name in re.findall(r"\bCGM_[A-Z0-9_]*[A-Z0-9]\b", text):
            if name.endswith("_ROOT"):
                continue
            assert f"`{name}`" in doc, f"{name} (named in {path.name}) is not in cgm.settings' table"
