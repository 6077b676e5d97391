"""Watching training besides metrics.jsonl: logger plugins (TensorBoard, MLflow, ...), see zoo.tracking.logger."""

from zoo.tracking.logger import (Logger, RunView, StudyView, TrialView, code_loggers, finishing, installed,
                                logger_classes, logger_names, loggers_for)

__all__ = ["Logger", "RunView", "StudyView", "TrialView", "code_loggers", "finishing", "installed", "logger_classes",
           "logger_names", "loggers_for"]
