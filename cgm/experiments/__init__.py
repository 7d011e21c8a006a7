"""Named experiments: one per paper table row or figure point, each in the profiles it fits.

- `config`: `ExperimentConfig` (model, train, typed data/eval specs), overrides, the config hash;
  `bounds`: the allowed range of every numeric config field;
- `profiles`: smoke (every experiment), laptop (the motion experiments of Table 1 and Table 6, on
  natural footage), paper (every experiment) (`PROFILES`): one builder per profile from a
  registry `Recipe`;
- `registry`: the named experiments (`EXPERIMENTS`, `list_experiments`, `resolve`);
- `runs`: data and model of a config, training, evaluation, and the run cache (`run`), with
  `lock` (one process computes a run at a time) and `environment` (what a run records besides
  its config) and `integrity` (the check of a cached run before it is trusted);
- `models`: the trained model behind the motion notebooks (`trained_model`; their clips: `cgm.motion_table`).

`run(name, profile, **overrides)` trains and evaluates, or loads the cached result from
`results/runs/<name>/<config-hash>/`. Overrides change the config and hence the hash.
"""

from .config import (
    DATA_KEYS,
    SECTIONS,
    UNHASHED_EVAL,
    UNHASHED_TRAIN,
    DataSpec,
    EvalSpec,
    ExperimentConfig,
    apply_overrides,
    config_hash,
    overrides_between,
)
from .integrity import CacheError, read_run
from .lock import RunLockedError, run_lock
from .models import trained_model
from .profiles import (
    BUILDERS,
    PAPER_CLASSES,
    PAPER_EPOCHS,
    PAPER_INPUT,
    PAPER_TEST_VIEWS,
    PAPER_TRAIN,
    PROFILES,
    SMOKE_ACTION_EVAL,
    SMOKE_BATCH,
    SMOKE_CLASSES,
    SMOKE_MODEL,
    SMOKE_MOTION_EVAL,
    SMOKE_NATURAL_EVAL,
    SMOKE_STEPS,
    SMOKE_SYNTH,
    SMOKE_TRAIN,
    SMOKE_TRAIN_N,
    Recipe,
    build_config,
    data_root_from_env,
)
from .registry import EXPERIMENTS, Experiment, get_experiment, list_experiments, resolve
from .runs import (
    EMBEDDED,
    PRETRAIN_PASS,
    ROOT,
    RUNS,
    RunResult,
    build_data,
    build_model,
    check_data,
    check_device,
    evaluate_config,
    find_cached,
    fresh_heads,
    init_from_checkpoint,
    model_from_checkpoint,
    pretrain_overrides,
    run,
    train_experiment,
)

__all__ = [
    "trained_model",
    "DATA_KEYS",
    "SECTIONS",
    "UNHASHED_EVAL",
    "UNHASHED_TRAIN",
    "DataSpec",
    "EvalSpec",
    "ExperimentConfig",
    "apply_overrides",
    "config_hash",
    "overrides_between",
    "BUILDERS",
    "PAPER_CLASSES",
    "PAPER_EPOCHS",
    "PAPER_INPUT",
    "PAPER_TEST_VIEWS",
    "PAPER_TRAIN",
    "PROFILES",
    "SMOKE_ACTION_EVAL",
    "SMOKE_BATCH",
    "SMOKE_CLASSES",
    "SMOKE_MODEL",
    "SMOKE_MOTION_EVAL",
    "SMOKE_NATURAL_EVAL",
    "SMOKE_STEPS",
    "SMOKE_SYNTH",
    "SMOKE_TRAIN",
    "SMOKE_TRAIN_N",
    "Recipe",
    "build_config",
    "data_root_from_env",
    "EXPERIMENTS",
    "Experiment",
    "RunLockedError",
    "CacheError",
    "read_run",
    "run_lock",
    "get_experiment",
    "list_experiments",
    "resolve",
    "EMBEDDED",
    "PRETRAIN_PASS",
    "ROOT",
    "RUNS",
    "RunResult",
    "build_data",
    "build_model",
    "check_data",
    "check_device",
    "evaluate_config",
    "find_cached",
    "fresh_heads",
    "init_from_checkpoint",
    "model_from_checkpoint",
    "pretrain_overrides",
    "run",
    "train_experiment",
]
