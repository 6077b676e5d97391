"""Runs: configs, run folders, checkpoints, model cards and loading a trained model."""
