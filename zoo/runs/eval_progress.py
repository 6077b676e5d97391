"""An evaluation's progress, kept in its output folder so that an interrupted `zoo eval` goes on where it
stopped: a K = 5,000 IWAE bound over a test set runs for hours on a CPU, and Ctrl-C, a closed terminal or
a lack of memory near its end would otherwise lose all of it.

Each evaluation has its own file, eval-progress-KEY.safetensors (KEY: the start of evaluation_key), so that
a quick check (--limit 100) and a K = 5,000 bound over the whole test set of the same run never take each
other's place. The file holds the metric sums over the images done so far, each image's
metrics (for the standard errors and --per-image), at the end of a batch; each batch draws its random numbers
from a seed of its own (zoo.tasks.evaluation), so an evaluation that resumes from it draws the same ones for
the remaining images as one that never stopped, and its result is the same to the last digit (on the CPU and
CUDA; on another device, such as MPS, the draws follow the device's generator). It is written at most every
SAVE_EVERY_S
seconds and when the evaluation is interrupted, read only by an evaluation of the same weights, split,
images, options and kind of device, and removed once its eval.json is written. Another evaluation of the
same weights leaves it alone, and says it is there; one of weights trained on since removes it (it can
never go on). The single eval-progress.safetensors of zoo before 2026-12-06 is read the same way; a file of
zoo before 2026-12-07 (one stream of draws over all batches) is never continued with the batches' own seeds.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from pathlib import Path

import torch

from zoo.console import to_stderr
from zoo.errors import RunError, ZooError
from zoo.runs.checkpoint import load_tensors, save_tensors
from zoo.runs.eval_images import hash_images
from zoo.runs.files import read_header

PROGRESS = "eval-progress.safetensors"  # zoo before 2026-12-06: one file per folder, whichever evaluation
PROGRESS_FILE = re.compile(r"eval-progress(-[0-9a-f]{16})?\.safetensors")
SAVE_EVERY_S = 30.0  # a cheap evaluation ends before it writes anything
VALUES = "values."  # the file's tensors of each image's metrics: values.METRIC

# Each metric's per-image values so far, batch by batch (float64, on the CPU).
Values = dict[str, list[torch.Tensor]]


def evaluation_key(weights: str, split: str, options: dict, device: torch.device, x: torch.Tensor,
                   y: torch.Tensor) -> str:
    """What an evaluation's result depends on besides its seed: the weights (their digest), the split,
    the exact images and labels measured, the metric options and the kind of device (whose generator
    draws the random numbers)."""
    # "seed per batch": the draws of zoo before 2026-12-07 (one stream) are not continued with another's
    h = hashlib.sha256(json.dumps([weights, split, sorted(options.items()), device.type, "seed per batch"]).encode())
    hash_images(h, x, y)
    return h.hexdigest()


def progress_name(key: str) -> str:
    """The progress file of the evaluation whose evaluation_key is `key`."""
    return f"eval-progress-{key[:16]}.safetensors"


class EvalProgress:
    """Where an evaluation stands: `resume` restores a saved point, `reached` records the end of each
    batch (and saves it now and then), `interrupted` saves the last one, `finish` removes the file.
    With no folder (an evaluation that writes nothing) it only counts."""

    def __init__(self, folder: Path | None, key: str, weights: str):
        self.path = Path(folder) / progress_name(key) if folder is not None else None
        self.key, self.weights = key, weights
        self.saved_done, self.last_save, self.failing, self.rejected = 0, time.monotonic(), False, False
        self._point: tuple[int, dict[str, float], Values] | None = None

    def resume(self, boundaries: set[int], total: int) -> tuple[int, dict[str, float], Values]:
        """(images done, metric sums, each image's metrics) of a saved evaluation of the same key; (0, {}, {})
        when there is none, or it is another evaluation's, damaged or inconsistent."""
        if self.path is None:
            return 0, {}, {}
        self._others()
        if not self.path.is_file():
            return 0, {}, {}
        try:
            tensors, meta = load_tensors(self.path)
            if meta.get("key") != self.key:
                raise ValueError("it is another evaluation's")
            done, sums = int(meta["done"]), {k: float(v) for k, v in json.loads(meta["sums"]).items()}
            values = {k[len(VALUES):]: [t.double()] for k, t in tensors.items() if k.startswith(VALUES)}
            if (done not in boundaries or done > total or set(values) != set(sums)
                    or any(v[0].shape != (done,) for v in values.values())
                    or set(tensors) != {VALUES + k for k in values}):
                raise ValueError("its counts do not fit this evaluation")
            if any(not math.isclose(float(values[k][0].sum()), sums[k], rel_tol=1e-9, abs_tol=1e-6) for k in sums):
                raise ValueError("its sums are not those of its images' values")  # edited by hand, or damaged
        except (RunError, OSError, KeyError, ValueError, TypeError, RuntimeError) as e:  # OSError: unreadable
            why = e.message if isinstance(e, RunError) else (e.strerror if isinstance(e, OSError) else None) or str(e)
            to_stderr(f"note: {self.path} could not be read ({why}); the evaluation starts from the first image "
                      "and will replace it")
            self.rejected = True  # not a file ahead of this evaluation's: replaced at its first save
            return 0, {}, {}
        to_stderr(f"note: going on with the evaluation saved in {self.path}: {done:,} of {total:,} images "
                  "done (delete the file to start afresh)")
        self.saved_done = done
        return done, sums, values

    def _others(self) -> None:
        """Other evaluations' progress files in the folder: one of other weights is removed (it can never go
        on), one of these weights stays for its command to go on, said. zoo's older single file, where it
        holds this very evaluation, is taken up as this one's."""
        for path in sorted(self.path.parent.glob("eval-progress*.safetensors")):
            if path == self.path or not PROGRESS_FILE.fullmatch(path.name) or not path.is_file():
                continue
            try:
                tensors, meta = read_header(path)
            except (RunError, OSError):  # not readable: not ours to judge, left as it is
                continue
            if path.name == PROGRESS and meta.get("key") == self.key:
                self.path = path
            elif "rng.cpu" in tensors:  # saved by zoo before 2026-12-07, with one stream of draws: no command goes on
                path.unlink(missing_ok=True)  # from it now, and it would be said to stay for one forever
                to_stderr(f"note: removed {path}: the progress of an evaluation saved by an earlier zoo, whose "
                          "random draws this one does not continue (the command measures afresh)")
            elif meta.get("weights") != self.weights:
                path.unlink(missing_ok=True)
                to_stderr(f"note: removed {path}: the progress of an evaluation of other weights (the run trained "
                          "on since), which can never go on")
            else:
                to_stderr(f"note: {path} holds {meta.get('done', 'some')} images of another evaluation of these "
                          "weights (other options or images): it stays for that command to go on (delete it if "
                          "it is no longer needed)")

    def reached(self, done: int, sums: dict[str, float], values: Values) -> None:
        """A batch ended with `done` images measured: remember the point, and save it if the last save is
        SAVE_EVERY_S old. (The values' lists are copied, not their tensors, which no one changes: joined
        only when saved.)"""
        if self.path is None:
            return
        self._point = (done, dict(sums), {k: list(v) for k, v in values.items()})
        if time.monotonic() - self.last_save >= SAVE_EVERY_S:
            self._save()

    def interrupted(self, total: int) -> None:
        """Save the last batch's end, if it is newer than the file's, and say how to go on."""
        if self.path is None:
            return
        if self._point is not None and self._point[0] > self.saved_done:
            self._save(stopping=True)
        kept = max(self.saved_done, self._file_done())  # the same evaluation run beside this one may be ahead
        if kept:
            to_stderr(f"note: {kept:,} of {total:,} images were measured and saved in {self.path}: "
                      "the same command goes on from there")

    def finish(self) -> None:
        """The evaluation ended: its own progress file goes (another evaluation's stays). One that cannot
        go is said: the evaluation itself is written."""
        if self.path is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError as e:
            to_stderr(f"note: {self.path} could not be removed ({e.strerror or e}); delete it (a later evaluation "
                      "of these weights would only say it is there)")

    def _file_done(self) -> int:
        """The images the progress file holds of this very evaluation (0: none, not this one's, or one that
        resume() could not go on from)."""
        if self.rejected:
            return 0
        try:
            _, meta = read_header(self.path)
            return int(meta.get("done", 0)) if meta.get("key") == self.key else 0
        except (RunError, OSError, ValueError, TypeError):
            return 0

    def _save(self, stopping: bool = False) -> None:
        """Write the last batch's end, unless the file holds more of this very evaluation (the same command
        run twice at once: the one ahead keeps its file). A file that cannot be written is said once, and
        tried again at the next save: a disk freed meanwhile keeps the evaluation's progress."""
        done, sums, values = self._point
        self.last_save = time.monotonic()
        if self._file_done() > done:
            return
        meta = {"key": self.key, "weights": self.weights, "done": str(done), "sums": json.dumps(sums)}
        tensors = {VALUES + k: torch.cat(v) for k, v in values.items()}
        try:
            save_tensors(self.path, tensors, meta)
        except (OSError, ZooError) as e:
            why = e.message if isinstance(e, ZooError) else e.strerror or e
            if stopping:
                to_stderr(f"note: the evaluation's progress could not be saved: {self.path} cannot be written ({why})")
            elif not self.failing:
                to_stderr(f"note: the evaluation goes on, and its progress is not saved while {self.path} cannot "
                          f"be written ({why}): tried again every {SAVE_EVERY_S:.0f} s")
            self.failing = True
            return
        if self.failing:
            to_stderr(f"note: the evaluation's progress is saved again in {self.path} ({done:,} images)")
        self.failing, self.rejected, self.saved_done = False, False, done
