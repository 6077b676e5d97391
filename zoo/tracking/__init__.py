"""Watching training besides metrics.jsonl: logger plugins (TensorBoard, MLflow, ...), see zoo.tracking.logger."""

from zoo.tracking.logger import (Logger, RunView, StudyView, TrialView, finishing, installed, logger_names,
                                loggers_for)

__all__ = ["Logger", "RunView", "StudyView", "TrialView", "finishing", "installed", "logger_names", "loggers_for"]
