"""Hyperparameter search (`zoo search`): Optuna studies over a space file (zoo.search.space).

Each trial samples the space, trains the configuration without a run folder (on the validation split,
or k folds of the training set), reports every epoch's objective metric (a metrics.jsonl key, `val_loss`
or `train_loss`) to the pruner and returns the objective: that metric (reduced over the epochs; the mean
over folds) plus optional penalties, λ × training minutes and μ × latent size. A configuration that
cannot be built (the plugin raises ConfigError) or diverges is pruned with its reason. The default pruner
(`auto`) is sized from the search, and prunes nothing in a search too small for it (zoo.search.study).

A resumed study must be the same search (zoo.search.resume): the study records its model, data set,
epochs, objective, folds, fixed keys and space, and a resume that differs is refused before anything is
written. The outputs are made from one snapshot of the trials and put in place together (zoo.search.outputs).

The study lives in a storage: by default Optuna's journal file in the study folder (safe for several
processes on one disk, and on a shared disk across machines), or any Optuna storage URL (SQLite,
PostgreSQL, MySQL). `--workers N` starts N local worker processes on the same storage; several
machines share a study by pointing `--storage` at the same database. The trial budget is the
study's, not a process's: workers stop when the study holds N complete or pruned trials (Optuna's
MaxTrialsCallback semantics, enforced before a trial starts, so a study does not overshoot).

Workers sharing a study never draw from the same random stream: trial n draws from one seeded by
(seed, n), and trial numbers are unique in a study (a grid gives trial n its n-th point). A draw equal
to an earlier trial still queued or running is failed ("drew the configuration of trial K"), not run.
Before any trial, the objective metric is checked against those the model records (zoo.search.objective),
and every searched value against the config key it sets (zoo.search.space.Space.check_values).

A dead worker's trial is failed and queued again (Optuna's RetryHeartbeatStaleTrialCallback, formerly
RetryFailedTrialCallback): database storages use Optuna's own heartbeats; the journal file, which
has none, gets the same from a heartbeat user attribute and, on one host, a process check.
"""

from zoo.errors import Interrupted
from zoo.search.run import run_search, worker_main
from zoo.search.settings import Settings, prepare

__all__ = ["Interrupted", "Settings", "prepare", "run_search", "worker_main"]
