"""Watching training besides metrics.jsonl: logger plugins (TensorBoard, MLflow, ...), see zoo.tracking.logger."""

from zoo.tracking.logger import (Logger, RunView, StudyView, TrialView, code_loggers, eval_loggers, finishing,
                                installed, logger_classes, logger_names, logger_run_files, loggers_for,
                                logging_evaluations, study_loggers)
from zoo.tracking.messages import redact

__all__ = ["Logger", "RunView", "StudyView", "TrialView", "code_loggers", "eval_loggers", "finishing", "installed",
           "logger_classes", "logger_names", "logger_run_files", "loggers_for", "logging_evaluations", "redact",
           "study_loggers"]
