"""The text form of config overrides, shared by the CLI (`--set key=value`) and the notebooks
(the parameter `overrides`): `"amp=bf16 eval__batch_size=1"` <-> `{"amp": "bf16",
"eval__batch_size": 1}`.

A value is read as a Python literal where it is one (`1`, `0.5`, `None`, `(1, 1, 1, 1)`), as text
otherwise (`bf16`, `/data/ucf101`). Pairs are separated by white space; quote a value that holds
spaces (`data_root='/my data'`). No torch import: the CLI parses its arguments before loading the
stack.
"""

from __future__ import annotations

import ast
import shlex
from collections.abc import Iterable, Mapping


def parse_value(text: str):
    """`text` as the Python literal it spells, else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_pairs(pairs: Iterable[str]) -> dict:
    """{key: value} of `key=value` strings (the CLI's repeated `--set`)."""
    out = {}
    for pair in pairs:
        if "=" not in pair or not pair.split("=", 1)[0].strip():
            raise ValueError(f"an override is key=value (e.g. amp=bf16), got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = parse_value(value.strip())
    return out


def parse_overrides(overrides: str | Mapping | None) -> dict:
    """{key: value} of an overrides text (`"amp=bf16 steps=2"`); a dict is returned as a copy,
    None or "" as {}."""
    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    if not isinstance(overrides, str):
        raise ValueError(
            f"overrides must be text like 'amp=bf16 eval__batch_size=1' (or a dict), got {overrides!r}"
        )
    try:
        words = shlex.split(overrides)
    except ValueError as err:  # an unclosed quote
        raise ValueError(f"overrides {overrides!r}: {err}") from None
    return parse_pairs(words)


def format_overrides(overrides: Mapping) -> str:
    """The text `parse_overrides` reads back into `overrides` (keys sorted)."""
    words = []
    for key in sorted(overrides):
        value = overrides[key]
        text = value if isinstance(value, str) and parse_value(value) == value else repr(value)
        words.append(shlex.quote(f"{key}={text}"))
    return " ".join(words)


def merge_overrides(params: Mapping, overrides: str | Mapping | None) -> dict:
    """`params` (a notebook's own parameters as overrides, None = not given) with `overrides` (its
    `overrides` text) applied on top: what every run of the notebook gets. A field that both set
    to different values is an error (say it once)."""
    extra = parse_overrides(overrides)
    given = {k: v for k, v in params.items() if v is not None}
    clash = sorted(k for k in extra if k in given and given[k] != extra[k])
    if clash:
        raise ValueError(
            "set in two places with different values: "
            + ", ".join(f"{k} ({given[k]!r} as a parameter, {extra[k]!r} in overrides)" for k in clash)
            + "; give each once"
        )
    return {**given, **extra}
