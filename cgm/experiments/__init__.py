"""Named experiments: one per paper table row or figure point, each in every profile.

- `config`: `ExperimentConfig` (model, train, typed data/eval specs), overrides, the config hash;
- `profiles`: smoke, paper (`PROFILES`): one builder per profile from a registry `Recipe`;
- `registry`: the named experiments (`EXPERIMENTS`, `list_experiments`, `resolve`);
- `runs`: data and model of a config, training, evaluation, and the run cache (`run`).

`run(name, profile, **overrides)` trains and evaluates, or loads the cached result from
`results/runs/<name>/<config-hash>/`. Overrides change the config and hence the hash.
"""

from .config import (
                     DATA_KEYS,
                     SECTIONS,
                     UNHASHED_TRAIN,
                     DataSpec,
                     EvalSpec,
                     ExperimentConfig,
                     apply_overrides,
                     config_hash,
)
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

__all__ = ["trained_model", "DATA_KEYS", "SECTIONS", "UNHASHED_TRAIN", "DataSpec", "EvalSpec", "ExperimentConfig",
           "apply_overrides", "config_hash", "BUILDERS", "PAPER_CLASSES", "PAPER_EPOCHS", "PAPER_INPUT",
           "PAPER_TEST_VIEWS", "PAPER_TRAIN", "PROFILES", "SMOKE_ACTION_EVAL", "SMOKE_BATCH", "SMOKE_CLASSES",
           "SMOKE_MODEL", "SMOKE_MOTION_EVAL", "SMOKE_NATURAL_EVAL", "SMOKE_STEPS", "SMOKE_SYNTH",
           "SMOKE_TRAIN", "SMOKE_TRAIN_N", "Recipe", "build_config", "data_root_from_env", "EXPERIMENTS",
           "Experiment", "RunLockedError", "run_lock", "get_experiment", "list_experiments", "resolve", "EMBEDDED", "PRETRAIN_PASS",
           "ROOT", "RUNS", "RunResult", "build_data", "build_model", "check_data", "check_device", "evaluate_config",
           "find_cached", "fresh_heads", "init_from_checkpoint", "model_from_checkpoint", "pretrain_overrides", "run", "train_experiment"]
