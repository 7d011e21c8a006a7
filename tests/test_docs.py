"""The docs name only things that exist, the layout map matches the tree, `cgm/` imports one way.

Every span in backticks in README.md, docs/**/*.md and the notebooks' markdown that names a file
path, a module (`cgm.x.y`), a notebook, a make target, a command (`python -m cgm SUB --flag`,
`make T`, `python script.py --flag`) or a CLI flag must exist in the repository. Example paths
and outputs made at run time are in `ALLOWED`, each with its reason. Commands in fenced or
indented code blocks are checked the same way.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import re
import shlex
import subprocess
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent

# Spans that name something the repository does not hold, and why that is right.
ALLOWED = {
    "/data/ucf101": "an example dataset root on the user's machine",
    "/data/kinetics400": "an example dataset root on the user's machine",
    "/shared/runs/k400_r50": "an example output folder on a cluster's shared filesystem",
    "runs/table7_cgmul": "an example --out folder, created by the command that names it",
    "runs/table7_cgmul/checkpoint.pt": "written by the `train` command of the same example",
    "runs/k400_r50": "an example --out folder, created by the command that names it",
    "~/.cache/cgm/native": "the compiled warp kernels' cache, made at first use",
    "OUT/tb": "TensorBoard logs under the --out folder of a training run",
    "checkpoint.pt.tmp": "the temporary name of a checkpoint being written (atomic save)",
    "checkpoint.pt": "a run's weights, written by training (ignored by git)",
    "metrics.csv": "a run's training log, written by training (ignored by git)",
    "results/executed": "executed notebook copies, written by `make reproduce` (ignored by git)",
    "results/executed/": "executed notebook copies, written by `make reproduce` (ignored by git)",
    "results/timings/": "run times of `make reproduce`, written by it (ignored by git)",
    "data/footage/": "natural footage, fetched by `make data` (ignored by git)",
    "data/weights/": "where users put optical-flow weights files (the default of $CGM_WEIGHTS_DIR)",
    "results/local-runs/": "recomputed runs, written at run time (ignored by git)",
    "results/local-runs/<name>/<hash>/": "one recomputed run, written at run time (ignored by git)",
    "local-runs/": "the folder of recomputed runs, written at run time (ignored by git)",
    ".venv/bin/python": "the virtual environment's python, created by `make install`",
    "mbt/cube": "a ViSP sequence inside the archive that `make data` fetches",
    "*_test_split{1,2,3}.txt": "HMDB51's split files, in the user's dataset",
    "out.ipynb": "papermill's output notebook in an example command",
}
# Top-level entries a path may start with (anything else with a "/" is an experiment name,
# e.g. `table7/cgmul`, or must be in ALLOWED).
EXTENSIONS = (
    ".py",
    ".md",
    ".ipynb",
    ".csv",
    ".png",
    ".json",
    ".toml",
    ".yml",
    ".yaml",
    ".txt",
    ".npy",
    ".pt",
)


@functools.cache
def tracked() -> tuple[str, ...]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    files = [f for f in out.stdout.splitlines() if (ROOT / f).exists()]
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True
    )
    return tuple(sorted(set(files) | {f for f in untracked.stdout.splitlines() if (ROOT / f).exists()}))


def doc_files() -> list[Path]:
    docs = sorted((ROOT / "docs").rglob("*.md"))
    return [ROOT / "README.md", *docs]


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


FENCE = re.compile(r"^```.*?^```", re.S | re.M)
SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
COMMAND_START = re.compile(
    r"^(?:\$ )?(?:(?:[A-Z_]+=\S+|env|nohup|taskset -c \S+)\s+)*(python|make|torchrun)\b"
)


def markdown_texts() -> list[tuple[str, str]]:
    """(where, markdown) for every doc and every notebook markdown cell."""
    texts = [(str(p.relative_to(ROOT)), p.read_text()) for p in doc_files()]
    for nb in notebooks():
        cells = nbformat.read(nb, as_version=4).cells
        texts += [
            (f"{nb.relative_to(ROOT)}[{i}]", c.source)
            for i, c in enumerate(cells)
            if c.cell_type == "markdown"
        ]
    return texts


def spans_and_commands(text: str) -> tuple[list[str], list[str]]:
    """Inline backtick spans outside code blocks; command lines inside fenced or indented blocks."""
    commands = []
    for block in FENCE.findall(text):
        commands += [ln.strip() for ln in block.splitlines()[1:-1] if COMMAND_START.match(ln.strip())]
    rest = FENCE.sub("", text)
    lines = rest.splitlines()
    for i, ln in enumerate(lines):  # indented code blocks: 4 spaces after a blank line or more code
        if ln.startswith("    ") and COMMAND_START.match(ln.strip()):
            cmd = ln.strip()
            j = i
            while cmd.endswith("\\") and j + 1 < len(lines):
                j += 1
                cmd = cmd[:-1].rstrip() + " " + lines[j].strip()
            commands.append(cmd)
    return SPAN.findall(rest), commands


# --------------------------------------------------------------------------- what exists


@functools.cache
def make_targets() -> frozenset[str]:
    text = (ROOT / "Makefile").read_text()
    return frozenset(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, flags=re.M))


@functools.cache
def cli() -> dict[str, set[str]]:
    """`python -m cgm`'s subcommands -> their option strings ('' -> the top-level options)."""
    import argparse

    from cgm.__main__ import build_parser

    parser = build_parser()
    options = {"": {s for a in parser._actions for s in a.option_strings}}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                options[name] = {s for a in sub._actions for s in a.option_strings}
    return options


@functools.cache
def experiment_names() -> frozenset[str]:
    from cgm.experiments import list_experiments

    return frozenset(e.name for e in list_experiments())


@functools.cache
def flags_in_sources() -> frozenset[str]:
    """Every "--flag" string literal of the code that parses command lines."""
    found = set()
    for folder in ("cgm", "benchmarks", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            found |= set(re.findall(r"""["'](--[a-z][\w-]*)""", path.read_text()))
    for options in cli().values():
        found |= options
    return frozenset(found)


def module_file(dotted: str) -> Path | None:
    parts = dotted.split(".")
    base = ROOT.joinpath(*parts)
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


@functools.cache
def top_level_names(path: Path) -> dict[str, ast.AST]:
    tree = ast.parse(path.read_text())
    names: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        names[n.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for a in node.names:
                names[(a.asname or a.name).split(".")[0]] = node
    return names


def module_problem(span: str) -> str | None:
    """`cgm.a.b.name.attr` -> None if the module exists and defines `name` (and a class `name`
    has `attr`), else what is missing."""
    dotted = re.split(r"[(\s\[]", span, maxsplit=1)[0].rstrip(".,:;")
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        path = module_file(".".join(parts[:cut]))
        if path is not None:
            break
    else:
        return f"no module {dotted}"
    rest = parts[cut:]
    if not rest:
        return None
    names = top_level_names(path)
    if rest[0] not in names:
        return f"{'.'.join(parts[:cut])} defines no {rest[0]!r}"
    node = names[rest[0]]
    if len(rest) > 1 and isinstance(node, ast.ClassDef):
        body = {n.name for n in node.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        body |= {
            t.id for n in node.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
        }
        body |= {
            n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
        }
        if rest[1] not in body:
            return f"class {rest[0]} has no {rest[1]!r}"
    return None


def expand(path: str) -> list[str]:
    """`a.{csv,png}` -> [a.csv, a.png]."""
    m = re.search(r"\{([^{}]*,[^{}]*)\}", path)
    if not m:
        return [path]
    return [e for alt in m.group(1).split(",") for e in expand(path[: m.start()] + alt + path[m.end() :])]


def path_exists(path: str) -> bool:
    path = path.rstrip("/") or "/"
    if path.startswith("<"):  # a placeholder root (`<runs_dir>/...`): nothing to check
        return True
    if "<" in path:  # a placeholder: the part before it must exist
        prefix = path.split("<")[0].rstrip("/")
        return (
            not prefix
            or any(f == prefix or f.startswith(prefix.rstrip("/") + "/") for f in tracked())
            or (ROOT / prefix).exists()
        )
    if any(ch in path for ch in "*?["):
        return any(fnmatch.fnmatch(f, path) for f in tracked())
    if (ROOT / path).exists():
        return True
    return any(f.startswith(path + "/") for f in tracked())


def path_problem(span: str) -> str | None:
    span = re.sub(r"::\w+.*$", "", span)  # pytest node id -> its file
    span = re.sub(r":\d+(-\d+)?$", "", span)  # file:line
    for path in expand(span):
        if path in ALLOWED:
            continue
        first = path.split("/")[0]
        top = {f.split("/")[0] for f in tracked()}
        if "/" not in path.rstrip("/"):  # a bare file name: it must be somewhere in the tree
            base = path.rstrip("/")
            if not any(f.rsplit("/", 1)[-1] == base or f.startswith(base + "/") for f in tracked()):
                return f"no file named {path}"
            continue
        if first in top or path.startswith(("/", "~", "$", "<")):
            if not path_exists(path):
                return f"no path {path}"
            continue
        # not a repository path: an experiment name (`table7/cgmul`, `pretrain/<backbone>`)
        pattern = re.sub(r"<[^>]*>|\.\.\.", "*", path)
        if not any(fnmatch.fnmatch(n, pattern) for n in experiment_names()):
            return f"{path} is neither a path in the repository nor an experiment"
    return None


def looks_like_path(span: str) -> bool:
    if " " in span or span.startswith("-") or "=" in span or "(" in span:
        return False
    core = re.sub(r"(::\w+.*|:\d+(-\d+)?)$", "", span)
    if core.startswith(".") and "/" not in core:  # an extension (`.png`), not a file
        return False
    return "/" in core or core.endswith(EXTENSIONS) or core in {"Makefile", "README.md"}


def command_problems(cmd: str) -> list[str]:
    """What a command line names that does not exist."""
    try:
        words = shlex.split(cmd.replace("\\", " "), comments=True)
    except ValueError:
        words = cmd.split()
    while words and (re.match(r"^[A-Z_]+=", words[0]) or words[0] in ("$", "env", "nohup")):
        words = words[1:]
    if words[:1] == ["taskset"]:
        words = words[3:]
    if not words:
        return []
    problems = []
    if words[0] == "make":
        for w in words[1:]:
            if not w.startswith("-") and "=" not in w and w not in make_targets():
                problems.append(f"no make target {w!r}")
        return problems
    if "-m" in words:
        i = words.index("-m")
        module, args = words[i + 1] if i + 1 < len(words) else "", words[i + 2 :]
        if module == "cgm":
            sub = args[0] if args and not args[0].startswith("-") else ""
            options = cli()
            if sub and sub not in options:
                return [f"`python -m cgm` has no subcommand {sub!r}"]
            known = options[""] | options.get(sub, set())
            flags = [a.split("=")[0] for a in args if a.startswith("--")]
            problems += [f"`python -m cgm {sub}` has no option {f}" for f in flags if f not in known]
        elif module.startswith("cgm"):
            path = module_file(module)
            if path is None:
                return [f"no module {module}"]
            source = path.read_text()
            problems += [
                f"{module} has no option {a}"
                for a in args
                if a.startswith("--") and f'"{a.split("=")[0]}"' not in source
            ]
        return problems
    scripts = [w for w in words[1:] if w.endswith(".py")]
    if words[0] == "python" and scripts:
        script = ROOT / scripts[0]
        if not script.is_file():
            return [f"no script {scripts[0]}"]
        source = script.read_text()
        args = words[words.index(scripts[0]) + 1 :]
        problems += [
            f"{scripts[0]} has no option {a}"
            for a in args
            if a.startswith("--") and f'"{a.split("=")[0]}"' not in source
        ]
    return problems


def span_problems(span: str) -> list[str]:
    span = span.strip()
    if span in ALLOWED:
        return []
    if COMMAND_START.match(span):
        return command_problems(span)
    if re.match(r"^--[a-z][\w-]*", span):
        flag = re.match(r"^--[a-z][\w-]*", span).group(0)
        return [] if flag in flags_in_sources() else [f"no command-line option {flag}"]
    if re.match(r"^cgm(\.\w+)+", span) and " " not in span.split("(")[0]:
        problem = module_problem(span)
        return [problem] if problem else []
    if looks_like_path(span):
        problem = path_problem(span)
        return [problem] if problem else []
    return []


def test_every_named_path_module_command_and_flag_exists():
    problems = []
    for where, text in markdown_texts():
        spans, commands = spans_and_commands(text)
        for item in spans + commands:
            problems += [f"{where}: `{item}`: {p}" for p in span_problems(item)]
    assert not problems, "the docs name what does not exist:\n" + "\n".join(sorted(set(problems)))


def test_allow_list_entries_are_still_named_somewhere():
    """An allow-list entry that no doc names any more is dead weight: remove it."""
    text = "\n".join(t for _, t in markdown_texts())
    unused = [k for k in ALLOWED if f"`{k}" not in text and f" {k}" not in text and f"{k}`" not in text]
    assert not unused, f"ALLOWED entries no doc names: {unused}"


def test_the_checker_catches_what_does_not_exist():
    assert span_problems("cgm/no_such_module.py")
    assert span_problems("cgm.warp.no_such_function")
    assert span_problems("cgm.no_such_module")
    assert span_problems("make no-such-target")
    assert span_problems("python -m cgm no-such-command")
    assert span_problems("python -m cgm train --no-such-flag")
    assert span_problems("--no-such-flag")
    assert span_problems("table9/cgmul")
    assert span_problems("notebooks/no_such.ipynb")
    assert not span_problems("cgm/warp.py")
    assert not span_problems("cgm.warp.adaptive_warp")
    assert not span_problems("python -m cgm train --experiment table7/cgmul --profile paper")
    assert not span_problems("table1/cgm")
    assert not span_problems("results/time_to_quality__table1_cgm_laptop.{csv,png}")


# --------------------------------------------------------------------------- figures from results/

# A figure the README quotes carries its source just before it, invisible when rendered:
#   <!-- results/table1_motion.csv row="CGM-Net (ours)" column="l1" -->0.0133
# (any column of the CSV selects the line; `value="..."` names the column read, default
# `measured`). The quoted number must equal the CSV's value rounded to the quoted decimals.
FIGURE = re.compile(r"<!--\s*(results/\S+\.csv)((?:\s+\w+=\"[^\"]*\")*)\s*-->\s*([-+]?\d[\d,]*(?:\.\d+)?)")


def figure_problems(text: str, root: Path = ROOT) -> list[str]:
    """Every marked figure of `text` that does not match its results file."""
    import pandas as pd

    problems = []
    for path, attrs, quoted in FIGURE.findall(text):
        keys = dict(re.findall(r'(\w+)="([^"]*)"', attrs))
        value_col = keys.pop("value", "measured")
        if not (root / path).is_file():
            problems.append(f"{path}: no such results file")
            continue
        frame = pd.read_csv(root / path)
        for col, want in keys.items():
            if col not in frame.columns:
                problems.append(f"{path}: no column {col!r}")
                break
            frame = frame[frame[col].astype(str) == want]
        else:
            if len(frame) != 1 or value_col not in frame.columns:
                problems.append(
                    f"{path} {keys}: {len(frame)} lines match, need exactly one with {value_col!r}"
                )
                continue
            decimals = len(quoted.partition(".")[2])
            actual = round(float(frame[value_col].iloc[0]), decimals)
            if actual != float(quoted.replace(",", "")):
                problems.append(f"{path} {keys}: quoted {quoted}, results say {actual}")
    return problems


def test_readme_figures_match_results():
    problems = figure_problems((ROOT / "README.md").read_text())
    assert not problems, "README figures that differ from results/:\n" + "\n".join(problems)


def test_the_figure_checker_catches_a_stale_figure(tmp_path):
    (tmp_path / "results").mkdir()
    pd_frame = "row,column,measured\nCGM-Net,l1,0.013259\nTV-L1,l1,0.0149949\n"
    (tmp_path / "results" / "t.csv").write_text(pd_frame)
    good = 'ℓ1 <!-- results/t.csv row="CGM-Net" column="l1" -->0.0133 against'
    assert figure_problems(good, tmp_path) == []
    assert figure_problems(good.replace("0.0133", "0.0143"), tmp_path)
    assert figure_problems(good.replace('row="CGM-Net"', 'row="DIS"'), tmp_path)
    assert figure_problems(good.replace("t.csv", "u.csv"), tmp_path)


# --------------------------------------------------------------------------- the layout map


def layout_map() -> list[str]:
    """Repository paths the layout block of docs/design.md names (`cgm/`, `cgm/warp.py`, ...)."""
    text = (ROOT / "docs" / "design.md").read_text()
    block = re.search(r"## Layout\s+```\n(.*?)```", text, re.S)
    assert block, "docs/design.md has no ```-fenced block under '## Layout'"
    paths, stack = [], []  # stack of (indent, folder)
    for line in block.group(1).splitlines():
        indent = len(line) - len(line.lstrip(" "))
        m = re.match(r"^((?:[\w.-]+/?)(?:,\s*[\w.-]+/?)*)(?:\s{2,}|$)", line.lstrip(" "))
        if indent >= 12 or not m:  # a description's continuation line
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        prefix = stack[-1][1] if stack else ""
        for name in re.split(r",\s*", m.group(1)):
            paths.append(prefix + name)
            if name.endswith("/"):
                stack.append((indent, prefix + name))
    return paths


def test_design_layout_map_matches_the_tree():
    named = layout_map()
    missing = [p for p in named if not (ROOT / p).exists()]
    assert not missing, f"docs/design.md's layout names what the tree lacks: {missing}"
    files = tracked()
    top_dirs = {f.split("/")[0] + "/" for f in files if "/" in f and not f.startswith(".")}
    modules = {
        f
        for f in files
        if re.fullmatch(r"cgm/[\w]+\.py|cgm/experiments/\w+\.py", f) and not f.endswith("__init__.py")
    }
    packages = {f.rsplit("/", 1)[0] + "/" for f in files if re.fullmatch(r"cgm/\w+/__init__\.py", f)}
    unnamed = sorted((top_dirs | modules | packages) - set(named))
    assert not unnamed, f"the tree has what docs/design.md's layout does not name: {unnamed}"


# --------------------------------------------------------------------------- import direction


def module_imports(path: Path, name: str, package: bool, *, everywhere: bool) -> set[str]:
    """Modules of cgm that module `name` imports. With `everywhere=False` only the statements run
    when it is imported (top level, `if`/`try`/`with` blocks; not `if TYPE_CHECKING:`, not function
    bodies); with `everywhere=True` also the imports inside functions, which run later."""
    found = set()

    def add(node):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "cgm")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] == "cgm":
                for a in node.names:
                    sub = f"{mod}.{a.name}"
                    found.add(sub if module_file(sub) else mod)

    def visit(nodes):
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, ast.If | ast.Try | ast.With):
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(node, field, []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            else:
                add(node)

    tree = ast.parse(path.read_text())
    if everywhere:
        for node in ast.walk(tree):
            add(node)
    else:
        visit(tree.body)
    return found - {name}


def import_graph(*, everywhere: bool) -> dict[str, set[str]]:
    graph = {}
    for path in sorted((ROOT / "cgm").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        package = rel.name == "__init__"
        name = ".".join(rel.parts[:-1] if package else rel.parts)
        graph[name] = module_imports(path, name, package, everywhere=everywhere)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_cycle_finder_finds_a_loop_and_only_loops():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_importing_cgm_modules_never_loops():
    """What runs at import time has no cycle (a cycle there fails or half-initialises a module)."""
    found = cycles(import_graph(everywhere=False))
    assert not found, "import cycles among cgm's modules at import time: " + "; ".join(
        " <-> ".join(c) for c in found
    )


def test_cgm_imports_in_one_direction():
    """No cycle even counting imports inside functions: moving an import into a function hides a
    loop from the interpreter, not from this test."""
    found = cycles(import_graph(everywhere=True))
    assert not found, "import cycles among cgm's modules (imports inside functions included): " + "; ".join(
        " <-> ".join(c) for c in found
    )


# --------------------------------------------------------------------------- habits


def test_pre_commit_hooks_run_the_checks_of_make_ruff_check():
    import yaml

    paths = re.search(r"^RUFF_PATHS\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert set(hooks) == {"ruff-check", "ruff-format"}
    for hook in hooks.values():
        assert hook["entry"].startswith(".venv/bin/ruff ") and "--force-exclude" in hook["entry"]
        assert hook["files"] == "^(" + "|".join(paths) + ")/", (hook["files"], paths)


def test_fast_tier_leaves_out_slow_and_footage_tests():
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^test-fast:([^\n]*)\n((?:\t[^\n]*\n)+)", text, re.M)
    assert recipe, "the Makefile has no test-fast target"
    assert "$(FOOTAGE)" not in recipe.group(1), "test-fast must not download the footage"
    assert '-m "not slow and not footage"' in recipe.group(2)
    markers = (ROOT / "pyproject.toml").read_text()
    assert '"slow:' in markers and '"footage:' in markers and "--strict-markers" in markers
