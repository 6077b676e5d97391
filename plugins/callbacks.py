"""zoo's built-in training callbacks (zoo.training.regularize, zoo.training.pictures), registered through the `zoo_callbacks` hook as a
third-party package would register its own."""

from __future__ import annotations

from zoo import hookimpl
from zoo.training.pictures import Pictures
from zoo.training.regularize import IterativeAutoencoding, Pruning


@hookimpl
def zoo_callbacks():
    return [Pruning, IterativeAutoencoding, Pictures]
