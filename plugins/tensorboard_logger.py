"""The TensorBoard logger (`--log tensorboard`), through torch.utils.tensorboard.

Event files go to RUN/tensorboard (or TENSORBOARD_DIR/RUN-NAME with `--set tensorboard_dir=...`, so one
`tensorboard --logdir` shows many runs). Every number of an epoch's metrics.jsonl row is a scalar
(`loss/train` and `loss/val` side by side, `lr`, `images_per_s`, ...), the model's preview rows are
images every `plot_every` epochs and at the end, and the finished run's config is its hparams, with
its final metrics, for the HParams dashboard. `zoo latent --log tensorboard` writes the test codes
with their labels and a sprite of the images for the Embedding Projector.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ConfigError
from zoo.runs import checkpoint as ckpt
from zoo.hooks import hookimpl
from zoo.tracking.logger import Logger, RunView, StudyView, check_writable, final_metrics, flat_params, scalars

EVENTS = "events.out.tfevents"
EVAL_SUFFIX = ".zoo-eval-"  # ends the events file of a `zoo eval --log`: EVAL_SUFFIX + the split evaluated
SPRITE_IMAGES = 4096  # at most this many images in the projector's sprite (TensorBoard's 8192 px limit at 28 px)


def tag(key: str) -> str:
    """A metrics.jsonl key as a TensorBoard tag: train_loss -> loss/train, so the splits share a section; an
    evaluation's figures beside them (test_mse -> mse/test, test_neg_elbo_nats -> neg_elbo/test: the training's
    −ELBO is in nats too; an evaluation of the validation split, eval_val_mse -> mse/eval-val)."""
    name, split = key, ""
    for prefix in ("eval_train", "eval_val", "train", "val", "test"):
        if key.startswith(prefix + "_"):
            name, split = key[len(prefix) + 1:], prefix.replace("_", "-")
            break
    if split in ("test", "eval-train", "eval-val"):
        name = name.replace("_nats", "")  # zoo eval's names say the unit, the training's do not
    return f"{name}/{split}" if split else key


def eval_split(figures: dict[str, float]) -> str:
    """The split a `zoo eval`'s figures are of, from their names: test_mse -> test, eval_val_mse -> eval-val."""
    splits = {tag(key).rpartition("/")[2] for key in figures}
    return "-".join(sorted(s for s in splits if s)) or "test"


def image_tag(label: str) -> str:
    """A preview row's label as a tag: "noisy (gaussian:0.5)" -> images/noisy, "class 3" -> images/class_3."""
    words = re.sub(r"[^A-Za-z0-9_. -]", "", label.split(" (")[0]).split()
    return "images/" + ("_".join(words) or "preview")


def event_files(folder: Path) -> list[Path]:
    """The event files in `folder` (only these: a TensorBoard folder may hold others' files too)."""
    return sorted(p for p in folder.glob(f"{EVENTS}*") if p.is_file())


EVALUATED = ("/test", "/eval-train", "/eval-val")  # the tags of `zoo eval --log`'s figures (see tag)


def carried_events(files: list[Path], last: int, redrawn: bool) -> list:
    """What a resumed run's new event file takes over from `files`, each (tag, step) once (the last written): its
    pictures up to epoch `last` (but those of `last` where they are `redrawn`, maybe cut short by the stop), and
    the figures `zoo eval --log` of an earlier zoo wrote into them (since, an evaluation writes files of its own,
    EVAL_SUFFIX, which a resume keeps)."""
    before = last if redrawn else last + 1
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    kept: dict[tuple[str, int], Any] = {}
    for path in files:
        for event in LegacyEventFileLoader(str(path)).Load():
            if event.HasField("summary"):
                for value in event.summary.value:
                    if (value.HasField("image") and event.step < before) or value.tag.endswith(EVALUATED):
                        kept[(value.tag, event.step)] = event
    return sorted(kept.values(), key=lambda e: e.step)


def writer(folder: Path, suffix: str = ""):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(folder), filename_suffix=suffix)


def grid(images: torch.Tensor) -> torch.Tensor:
    from torchvision.utils import make_grid

    return make_grid(images, nrow=images.shape[0], padding=2, pad_value=1.0)


OWNER = "zoo-run.txt"  # in TENSORBOARD_DIR/NAME: the run folder whose events it holds


class TensorBoard(Logger):
    name = "tensorboard"
    description = ("TensorBoard event files in RUN/tensorboard: every metric per epoch, image grids, the config "
                   "as hparams; `tensorboard --logdir runs`")
    requires = "tensorboard"
    install = "zoo[tensorboard]"
    run_files = ("tensorboard",)  # RUN/tensorboard: --overwrite removes the old run's events with it

    def __init__(self, train, say):
        super().__init__(train, say)
        self.writer = None
        self.hparams_written = False

    @classmethod
    def logged_training(cls, run_dir: Path) -> list[str]:
        """RUN/tensorboard with a training's claim in it (or, written before claims, event files without the
        projector's): `zoo latent --log tensorboard` writes its projector files there too, which log no epoch."""
        folder = run_dir / "tensorboard"
        older = any(folder.glob("events.out.tfevents*")) and not (folder / "projector_config.pbtxt").exists()
        return ["tensorboard"] if (folder / OWNER).is_file() or older else []

    def folder(self, run_folder: Path) -> Path:
        base = self.train.tensorboard_dir
        return Path(base).expanduser() / run_folder.name if base else run_folder / "tensorboard"

    def prepare(self, folder: Path) -> None:
        check_writable(self.folder(folder), "TensorBoard event files", "--set tensorboard_dir=...")
        owner = self.folder(folder) / OWNER
        if self.train.tensorboard_dir and owner.is_file():
            other, identity = (owner.read_text(errors="replace").splitlines() + ["", ""])[:2]
            record = Path(folder) / ckpt.CONFIG  # a resume of the same run, moved since: its events
            moved = bool(identity) and record.is_file() and ckpt.run_identity(ckpt.read_json(record)) == identity
            if other != str(Path(folder).resolve()) and not moved:  # runs/A/exp and runs/B/exp: one run to TensorBoard
                raise ConfigError(f"{self.folder(folder)} holds the TensorBoard events of another run ({other}), "
                                  f"whose folder is also named {Path(folder).name}: TensorBoard would show the two "
                                  "as one run, this one hiding that one's curves",
                                  "Name this run's folder otherwise (--out), or give it another tensorboard_dir.")
        if self.train.tensorboard_dir:  # config.json keeps it: a --resume from another folder logs to the same one
            self.train.tensorboard_dir = str(Path(self.train.tensorboard_dir).expanduser().absolute())

    def open(self, run: RunView) -> int:
        """A new events file holding the whole run: TensorBoard's loaders do not hide an earlier training's
        events reliably (the Python loader ignores a run's first purge, and both keep a tag's first hparams,
        so an old run's config stood beside a new run's results), so none is left beside it. A fresh training
        (--overwrite, a run folder made anew) removes the events an earlier one of this run wrote; a resume
        carries the earlier epochs' pictures into the new file, and returns 0 so that every epoch so far is
        logged again from metrics.jsonl (Logger.on_train_start), with the hparams of the resumed config at
        once (a stop before its end leaves the run in the HParams dashboard). A resume keeps the events
        `zoo eval --log` wrote (files of their own)."""
        folder = self.folder(run.folder)
        old = [p for p in event_files(folder) if not (run.resumed and EVAL_SUFFIX in p.name)]
        if old and not run.resumed and not self.written_for(folder, run.folder):  # never a user's own events
            raise RuntimeError(f"{folder} holds TensorBoard event files no training of {run.folder} wrote: they stay, "
                               "and TensorBoard would show them as this run's. Move them, or log to another folder "
                               "(--set tensorboard_dir=...)")
        self.claim(run.folder, ckpt.run_identity(run.config), run=True)
        last = run.history[-1]["epoch"] if run.resumed and run.history else 0
        # The last epoch's pictures at a plot_every epoch, maybe cut short by the stop, are drawn again
        # (Logger.on_train_start); those of a last epoch between them (its end's) are carried.
        every = self.train.plot_every
        pictures = carried_events(old, last, redrawn=bool(every) and last % every == 0) if last else []
        self.writer = writer(folder)
        for event in pictures:
            self.writer.file_writer.add_event(event, walltime=event.wall_time)
        if run.resumed and run.history:  # the resumed config's hparams now: a stop before the end left none
            self._write_hparams(run)
        self.writer.flush()  # the pictures are safe in the new file before the old ones go
        for path in old:
            path.unlink(missing_ok=True)
        return 0

    def _write_hparams(self, run: RunView) -> None:
        """The run's config as hparams, once per events file (TensorBoard keeps a run's first), with the names of
        its final metrics (their values are the final/* scalars)."""
        from torch.utils.tensorboard.summary import hparams

        metrics = {f"final/{k}": v for k, v in final_metrics(run.history).items()}
        for summary in hparams(flat_params(run.config), metrics):
            self.writer.file_writer.add_summary(summary)
        self.hparams_written = True

    def claim(self, run_folder: Path, identity: str = "", run: bool = False) -> None:
        """Write whose events these are (the run's or study's folder, and a run's identity): in a tensorboard_dir
        of many runs' events, see prepare; and a run's in any folder: a fresh training removes only the events
        written for its folder (written_for)."""
        if self.train.tensorboard_dir or run:
            folder = self.folder(run_folder)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / OWNER).write_text(f"{Path(run_folder).resolve()}\n{identity}\n")

    @staticmethod
    def written_for(folder: Path, run_folder: Path) -> bool:
        """Whether the events in `folder` were written by zoo for `run_folder` (claim's OWNER names it)."""
        try:
            owner = (folder / OWNER).read_text(errors="replace").splitlines()[:1]
        except OSError:
            return False
        return owner == [str(Path(run_folder).resolve())]

    def log_epoch(self, record: dict[str, Any]) -> None:
        for key, value in scalars(record).items():
            self.writer.add_scalar(tag(key), value, record["epoch"])
        self.writer.flush()  # a kill between epochs loses none of them

    def log_images(self, epoch: int, rows) -> None:
        for label, images in rows:
            self.writer.add_image(image_tag(label), grid(images), epoch)
        self.writer.flush()

    def release(self) -> None:
        if self.writer is not None:
            self.writer.close()  # its background thread and open event file

    def close(self, run: RunView, status: str) -> None:
        if self.writer is None:
            return
        try:
            if status == "finished" and run.history:
                if not self.hparams_written:
                    self._write_hparams(run)
                metrics = {f"final/{k}": v for k, v in final_metrics(run.history).items()}
                for key, value in metrics.items():
                    self.writer.add_scalar(key, value, run.history[-1]["epoch"])
        finally:
            self.writer.close()

    def log_study(self, study: StudyView) -> None:
        """Each finished trial as a run of its own (STUDY/tensorboard/trial-NNNN): the objective's metric
        at each epoch (with CV, each fold's: loss/val/fold1, ...), and its drawn values as hparams with its
        results, so the HParams dashboard compares the trials. A trial whose folder holds events was logged
        by an earlier session. Once the search has ended, the study's own run: each trial's objective and
        the best so far."""
        from torch.utils.tensorboard.summary import hparams

        self.claim(study.folder)
        for trial in study.trials:
            folder = self.folder(study.folder) / f"trial-{trial.number:04d}"
            if any(folder.glob(f"{EVENTS}*")):
                continue
            with writer(folder) as w:
                for ending, curve in trial.curves().items():  # with CV, one curve per fold
                    for step, value in sorted(curve.items()):
                        w.add_scalar(tag(study.metric) + ending, value, step)
                results = {f"trial/{k}": v for k, v in trial.metrics.items()}
                if trial.value is not None:
                    results["trial/objective"] = trial.value
                params = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in trial.params.items()}
                for summary in hparams({**params, "state": trial.state}, results):
                    w.file_writer.add_summary(summary)
                last = max((max(c, default=0) for c in trial.curves().values()), default=0)
                for key, value in results.items():
                    w.add_scalar(key, value, last)
        if study.finished:
            self._log_study_curve(study)

    def _log_study_curve(self, study: StudyView) -> None:
        """The study as a run of its own (STUDY/tensorboard/study), once it has ended: each trial's objective
        and the best so far at the trial's number, as MLflow's parent run holds the study. A resumed search
        writes it anew, and removes the earlier session's file (see open: no purge is relied on)."""
        best = None
        folder = self.folder(study.folder) / "study"
        old = event_files(folder)
        with writer(folder) as w:
            for trial in sorted(study.trials, key=lambda t: t.number):
                if trial.value is None:  # pruned or failed: no objective
                    continue
                best = trial.value if best is None else min(best, trial.value)
                w.add_scalar("study/objective", trial.value, trial.number)
                w.add_scalar("study/best_objective", best, trial.number)
        for path in old:
            path.unlink(missing_ok=True)

    def log_eval(self, run: RunView, figures: dict[str, float], step: int, files: list[Path]) -> None:
        """Each figure beside the training's curves (test_mse -> mse/test), at the run's last epoch, in an
        events file of the split's own (EVAL_SUFFIX): an evaluation of the split again replaces it, so that
        no figure has two points at one step."""
        folder = self.folder(run.folder)
        suffix = EVAL_SUFFIX + eval_split(figures)
        old = [p for p in event_files(folder) if p.name.endswith(suffix)]
        with writer(folder, suffix) as w:
            for key, value in figures.items():
                w.add_scalar(tag(key), value, step)
        for path in old:
            path.unlink(missing_ok=True)
        self.say(f"tensorboard: the evaluation is in {folder}")

    @staticmethod
    def log_codes(folder: Path, codes: torch.Tensor, labels: torch.Tensor | None, images: torch.Tensor,
                  names: list[str] | None = None) -> Path:
        """The codes (one row per image) for the Embedding Projector, with their labels (as class names
        when given) and a sprite of the images, into `folder`."""
        check_writable(folder, "TensorBoard's projector files", "--out elsewhere")
        n = min(codes.shape[0], SPRITE_IMAGES)
        metadata = None
        if labels is not None:
            metadata = [names[int(y)] if names and 0 <= int(y) < len(names) else str(int(y)) for y in labels[:n]]
        # torch prints "did you set global_step for add_embedding()?" where the codes of an earlier zoo latent are:
        # they are replaced, as asked, and the user has no step to set
        with writer(folder) as w, contextlib.redirect_stdout(io.StringIO()):
            w.add_embedding(codes[:n].float().cpu(), metadata=metadata, label_img=images[:n].float().cpu(),
                            tag="latent codes")
        return folder


@hookimpl
def zoo_loggers():
    return [TensorBoard]
