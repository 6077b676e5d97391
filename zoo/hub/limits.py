"""How many bytes a pull fetches, per kind of file: checked against the size a hub lists (or `stat`
gives) before a file is requested, and again while it is read, so an oversized file is never read whole.

    config.json, README.md   1 MiB each (and a folder hub's push mark, .zoo-pushed.json, and quality.json)
    metrics.jsonl, eval.json 16 MiB each (a row per epoch; a classifier's report)
    eval-images.safetensors  16 MiB (each test image's metrics: 2 million numbers)
    each picture             20 MiB
    each latent sampler      64 MiB (sampler-NAME.safetensors, fitted on the run's training codes)
    model.safetensors        the size of the weights the config.json (fetched first) describes, computed
                             on the meta device, plus 1 MiB of header; 2 GiB where the model's plugin is
                             not installed here

ZOO_HUB_MAX_BYTES=N replaces every one of these with N bytes. A model file over its cap refuses the
pull; an optional file (the model card, a picture, a sampler) over its cap is skipped with a note.
"""

from __future__ import annotations

import dataclasses
import os

from zoo.errors import ConfigError
from zoo.hub.files import (
    CONFIG,
    EVAL,
    EVAL_IMAGES,
    METRICS,
    MODEL_FILES,
    PUSHED_MANIFEST,
    QUALITY,
    WEIGHTS,
    is_picture,
    is_sampler_file,
    model_spec,
)
from zoo.hub.locations import HubError, Log
from zoo.runs.files import nbytes

ENV = "ZOO_HUB_MAX_BYTES"
MiB = 1 << 20
TEXT_CAP = 1 * MiB
IMAGE_CAP = 20 * MiB
RECORD_CAP = 16 * MiB                # metrics.jsonl, eval.json
SAMPLER_CAP = 64 * MiB               # a fitted latent sampler (a GMM's means and covariances, a flow's weights)
HEADER_SLACK = 1 * MiB               # a safetensors header and its metadata, beyond the tensors' bytes
WEIGHTS_CAP = 2 << 30                # the weights of a model zoo cannot size (its plugin is not installed)


@dataclasses.dataclass(frozen=True)
class Cap:
    """At most `limit` bytes; `what` says where that number comes from, for the message."""

    limit: int
    what: str


def _override() -> int | None:
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{ENV}={raw!r} is not a number of bytes",  # a usage error, as the other variables'
                       f"Set {ENV} to a positive whole number (e.g. {ENV}={4 << 30}), or unset it.")
    return min(int(raw), 1 << 62)  # more bytes than any disk holds: no cap (a read of that size overflowed)


def expected_weights(run: dict | None) -> int | None:
    """Bytes of the weights of the model `run` describes (None where zoo cannot build it here)."""
    spec = model_spec(run) if run is not None else None
    return None if spec is None else nbytes(spec)


def cap(name: str, run: dict | None = None) -> Cap:
    """The most zoo fetches of file `name` of a location whose config.json is `run` (None before it is read)."""
    override = _override()
    if override is not None:
        return Cap(override, f"any file ({ENV})")
    if name == WEIGHTS:
        expected = expected_weights(run)
        if expected is None:
            return Cap(WEIGHTS_CAP, "the weights of a model whose size zoo cannot compute here")
        return Cap(expected + HEADER_SLACK, f"the weights its config.json describes ({size_text(expected)} "
                                            f"and {size_text(HEADER_SLACK)} of header)")
    if is_picture(name):
        return Cap(IMAGE_CAP, "a picture")
    if is_sampler_file(name):
        return Cap(SAMPLER_CAP, "a fitted latent sampler")
    if name == QUALITY:
        return Cap(TEXT_CAP, "sample quality figures")
    if name in (METRICS, EVAL, EVAL_IMAGES):
        return Cap(RECORD_CAP, {METRICS: "a training log", EVAL: "test metrics"}.get(name, "each test image's metrics"))
    return Cap(TEXT_CAP, name if name in (CONFIG, PUSHED_MANIFEST) else "a model card")


class TooBig(HubError):
    """A file larger than zoo fetches for its kind."""


def size_text(n: int) -> str:
    if n < 10 * 1024:
        return f"{n} bytes"
    return f"{n / MiB:.1f} MiB" if n < 1 << 30 else f"{n / (1 << 30):.2f} GiB"


def too_big(name: str, size: int | None, limit: Cap, where: str) -> TooBig:
    """The error for a file over its cap (`size` None: found larger while being read)."""
    what = f"is {size_text(size)}, more than" if size is not None else "is larger than"
    return TooBig(f"{name} of {where} {what} the {size_text(limit.limit)} zoo fetches for {limit.what}",
                  f"Set {ENV} to a larger number of bytes to fetch it anyway.")


def admit(name: str, size: int | None, limit: Cap, where: str, log: Log) -> bool:
    """Whether to fetch `name`, whose listed size is `size` (None: not listed): True within its cap;
    over it, a model file refuses the pull (HubError) and an optional file is skipped with a note."""
    if size is None or size <= limit.limit:
        return True
    skip(name, too_big(name, size, limit, where), log)
    return False


def skip(name: str, error: HubError, log: Log) -> None:
    """Refuse the pull for a model file; leave out an optional file, saying why."""
    if name in MODEL_FILES:
        raise error
    log(f"note: {error.message}: skipped it ({error.hint})" if error.hint else f"note: {error.message}: skipped it")
