"""What the latent tools (zoo.analysis.latent, .manifold, .interpolation) share: loading a run and
checking that it can do what a tool asks of it."""

from __future__ import annotations

from zoo.runs.loading import load
from zoo.runs.run import Run


def load_run(source, device) -> Run:
    """The run (a folder, a catalogued name, a hub location or a loaded Run) on `device`."""
    return load(source, device=device)


def require_all(run: Run, *capabilities: str) -> None:
    """Refuse, with Run.require's message, a model that lacks any of `capabilities`."""
    for c in capabilities:
        run.require(c)
