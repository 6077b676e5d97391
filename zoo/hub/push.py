"""Publish a run folder: its config, weights, a model card (with the user's notes of the run's own card),
its training log (metrics.jsonl), its test metrics (eval.json, when they measured these weights), its
samples' quality figures (quality.json, likewise), its pictures and the latent samplers fitted on these
weights, to the Hugging Face Hub or a folder hub."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from zoo import registry
from zoo.caches import is_managed
from zoo.console import to_stderr
from zoo.arguments import home
from zoo.errors import Interrupted, RunError
from zoo.hub.files import (
    CARD,
    CONFIG,
    MODEL_FILES,
    WEIGHTS,
    check_config,
    check_model_files,
    is_sampler_file,
)
from zoo.hub import cache
from zoo.hub.cache import offline
from zoo.hub.folder import check_destination, push_folder
from zoo.hub.hf_push import push_hf
from zoo.hub.locations import HF_SCHEME, HubError, Location, Log, is_hub_source, parse
from zoo.hub.marks import another_run
from zoo.hub.pull import fetch, pull
from zoo.runs import checkpoint, eval_images
from zoo.runs.checkpoint import EVAL, METRICS, read_json, read_metrics, run_identity
from zoo.runs.files import file_sha256, open_regular, sampler_name
from zoo.runs.lock import writer_of
from zoo.runs.metrics_log import is_metric
from zoo.runs.training_state import recorded_trainer, untrained
from zoo.runs.modelcard import (QUALITY, current_pictures, current_quality, kept_training, read_notes, render_card,
                                shell_address, with_notes)


@dataclasses.dataclass
class Pushed:
    location: str          # where it can be loaded from (pinned to the commit on the Hugging Face Hub)
    files: list[str]
    commit: str | None = None
    url: str | None = None
    branch: str | None = None  # the Hugging Face Hub's branch it was committed to


def _run_folder(run: str | Path, log: Log) -> Path:
    if is_hub_source(run):
        return fetch(run, log=log).folder
    path = Path(run)
    if not path.exists() and isinstance(run, str) and "/" not in run and run in registry.weights():
        return Path(pull(run, log=log)["folder"])
    if not path.is_dir():
        raise HubError(f"{path} is not a run folder" if path.exists() else f"{path} does not exist",
                       "Pass a folder written by `zoo train`.")
    return path


def _training_summary(run_dir: Path) -> dict[str, Any] | None:
    """The kept epoch, the epochs trained and the kept epoch's training metrics (kept_training: the checkpoint's
    counters where a damaged line of metrics.jsonl hid them), and `note`: what the log lacks, or None."""
    try:
        rows, dropped = read_metrics(run_dir / METRICS)
    except (OSError, RunError):  # none, or not a file (_training_log refuses to push that)
        return None
    if not rows:
        return None
    row, best, epochs, note = kept_training(run_dir, rows, dropped)
    keep = {k: v for k, v in (row or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and (is_metric(k) or k == "epoch")}  # (not the learning rates, a GAN's lr_d and lr_g too)
    return {"best_epoch": best, "epochs": epochs, "metrics": keep, "note": note}


def _stopped_before_its_end(run_dir: Path) -> bool:
    """Whether the run's training was stopped before it ended (Ctrl-C, a kill): fewer epochs than asked for,
    by its checkpoint, which no early stop or divergence ended. Published weights carry none: False."""
    trainer = recorded_trainer(run_dir)
    if trainer is None:
        return False
    try:
        train = read_json(run_dir / CONFIG)["train"]
        rows, _ = read_metrics(run_dir / METRICS)
        done, patience = int(trainer["epoch"]), int(train.get("patience") or 0)
        return (done < int(train["epochs"]) and not (patience and int(trainer["bad_epochs"]) >= patience)
                and not any(r.get("diverged") for r in rows))
    except (OSError, RunError, ValueError, KeyError, TypeError):
        return False


# Where this machine keeps things: private paths and addresses, and no use elsewhere (a puller's data are found by
# the data set's name; their evaluations logged to their own MLflow store or TensorBoard folder, not the publisher's).
LOCAL_KEYS = ("data_dir", "mlflow_uri", "tensorboard_dir")


def published(record: dict) -> dict:
    """A run's config.json as a push publishes it: without the LOCAL_KEYS' values, and a fine-tuned head's
    encoder source (init_from) by its folder's name where it is a path here (public_name)."""
    train, config = record.get("train"), record.get("config")
    if isinstance(train, dict) and any(train.get(k) for k in LOCAL_KEYS):
        record = {**record, "train": {**train, **{k: "" for k in LOCAL_KEYS if train.get(k)}}}
    if isinstance(config, dict) and public_name(config.get("init_from")) != config.get("init_from"):
        record = {**record, "config": {**config, "init_from": public_name(config["init_from"])}}
    return record


def public_name(where: object) -> object:
    """A run named by its absolute path on this machine (private, and no use elsewhere) as ./ and its folder's
    name: a relative path, which no catalogued name or hub location reads as (a bare "vampprior" would name the
    catalogued vampprior weights); a catalogued name, a hub location or anything else as it is. Its weights'
    digest still identifies it."""
    if isinstance(where, str) and os.path.isabs(where) and not is_hub_source(where):
        return f"./{Path(where).name}" if Path(where).name else where
    return where


def model_card(run_dir: Path, location: str, samplers=()) -> str:
    """The README.md pushed with a run: zoo's model card, addressed to `location`, plus the metrics
    measured during training (in the YAML metadata and the body). `samplers`: the names of those pushed."""
    run = published(check_config(run_dir / CONFIG, str(run_dir)))
    eval_result, _ = eval_images.current_eval(run_dir)  # None unless it measured these weights (as zoo eval wrote it)
    # bundled weights: the catalogue's figures too (a GAN's FID is in no eval.json), as their own card shows them
    catalogued = registry.catalogued_metrics(registry.bundled_name(run_dir))
    images = current_pictures(run_dir)
    card = render_card(run, eval_result, images, location, samplers, catalogued=catalogued,
                       quality=published_quality(run_dir))
    summary = _training_summary(run_dir)
    plugin = run.get("plugin", {})
    plugin_text = f"{plugin.get('package', 'zoo')} {plugin.get('version', '')}".strip()
    meta = ["zoo:", f"  model: {json.dumps(run['model'])}", f"  plugin: {json.dumps(plugin_text)}",
            f"  zoo_version: {json.dumps(str(run.get('zoo_version', '')))}"]
    body = ["## Get it", "", "```", f"zoo pull {location}", f"zoo info {shell_address(location)}", "```", ""]
    if summary:
        asked = run.get("train", {}).get("epochs")
        unfinished = _stopped_before_its_end(run_dir)
        meta.append(f"  training: {{best_epoch: {summary['best_epoch']}, epochs: {summary['epochs']}"
                    + (f", of: {asked}, stopped_before_its_end: true" if unfinished else "") + "}")
        if summary["metrics"]:
            meta.append("  training_metrics:")
            meta += [f"    {k}: {v:.6g}" for k, v in summary["metrics"].items() if k != "epoch"]
        cls = registry.get_model_class(run["model"]) if run["model"] in registry.list_models() else None
        # a model that monitors no validation figure keeps its last epoch: none is "best"
        kept = f"best epoch {summary['best_epoch']} of {summary['epochs']}" if cls is None or cls.monitor is not None \
            else f"last epoch {summary['best_epoch']} of {summary['epochs']} kept"
        if summary["best_epoch"] == 0:  # no epoch kept: its training diverged
            body += ["## Training", "", "Its training diverged in its first epoch: these are the "
                     "weights it started with, not trained ones.", ""]
        else:
            body += [f"## Training metrics ({kept}"
                     + (f"; stopped after {summary['epochs']} of its {asked} epochs, before its end"
                        if unfinished else "") + ")", ""]
            if summary["note"]:
                body += [f"Note: {summary['note']}.", ""]
            if summary["metrics"]:
                body += ["| metric | value |", "| --- | --- |"]
                body += [f"| {k} | {v:.5g} |" for k, v in summary["metrics"].items() if k != "epoch"]
                body.append("")
    elif untrained(run_dir):  # a run stopped in its first epoch
        meta.append(f"  training: {{best_epoch: 0, epochs: 0, of: {run.get('train', {}).get('epochs')}}}")
        body += ["## Training", "", "It was stopped before it finished an epoch: these are the weights it started "
                 "with, not trained ones.", ""]
    notes, _ = read_notes(run_dir / CARD)  # the user's own text in the run's card, published with it
    head, sep, rest = card.partition("\n---\n")  # the closing line of the YAML front matter
    if not sep:
        return with_notes(card + "\n" + "\n".join(body), notes)
    marker = "## Training configuration"
    rest = rest.replace(marker, "\n".join(body) + "\n" + marker, 1) if marker in rest else rest + "\n".join(body)
    return with_notes(head + "\n" + "\n".join(meta) + sep + rest, notes)


def published_quality(run_dir: Path) -> dict | None:
    """The run's current quality.json (of these weights) as a push publishes it: its feature network, where a
    run named by its path here, by its folder's name (its digest still identifies it)."""
    quality = current_quality(run_dir)
    if quality is not None and public_name(quality.get("feature_network")) != quality.get("feature_network"):
        quality = {**quality, "feature_network": public_name(quality["feature_network"])}
    return quality


def _as_read(run_dir: Path) -> tuple[bytes, str]:
    """What a push reads a run as: its config.json's bytes and its weights' sha256 (OSError if either is gone)."""
    return (run_dir / CONFIG).read_bytes(), file_sha256(run_dir / WEIGHTS)


def _still_as_read(run_dir: Path, before: tuple[bytes, str], published_sha: str | None) -> None:
    """Refuse to publish a run that changed while the push read it (a training resumed meanwhile rewrote its
    config.json or its weights): its card and figures would describe other weights than it publishes. Checked
    last, just before the folder hub's swap or the upload's commit."""
    writer = writer_of(run_dir)
    try:
        now = _as_read(run_dir)
    except OSError:
        now = None
    why = ("a zoo process began training it" if writer is not None else
           "its weights or config.json were replaced" if now != before or published_sha not in (None, before[1])
           else None)
    if why:
        raise HubError(f"{run_dir} changed while it was being pushed ({why}): nothing was published",
                       "Push it again when its training has ended.")


def _push_files(run_dir: Path, location: str, log: Log) -> tuple[dict[str, Path | bytes], tuple[bytes, str]]:
    """What a push publishes, after refusing a run that is incomplete or damaged: a config.json whose
    fields are not all there and typed, weights whose header does not fit it, or whose contents do not
    match the checksum recorded when they were written, or a training log that is not a file. Test
    metrics go only where they measured these weights (see read_eval). Nothing is written or uploaded
    before this. Returned with what the run was read as (_as_read), for the check before publishing."""
    writer = writer_of(run_dir)
    if writer is not None:
        raise HubError(f"{run_dir} is being trained by another zoo process{f' (pid {writer})' if writer else ''}: "
                       "a push now would publish it between two epochs",
                       "Push it when the training has ended (Ctrl-C on it keeps every finished epoch).")
    for name in MODEL_FILES:
        if (run_dir / name).exists() and not (run_dir / name).is_file():
            open_regular(run_dir / name).close()  # says what stands there instead (a FIFO, a folder, ...)
        if not (run_dir / name).is_file():
            raise HubError(f"{run_dir} has no {name}: nothing to push",
                           "Push a finished run folder (one written by `zoo train`).")
    check_model_files(run_dir, str(run_dir), "the run's own file is damaged: restore it (or train the run again) "
                      "before pushing")  # first: it says a file that cannot be read as it is
    try:
        before = _as_read(run_dir)  # what is published must still be this at the end (_still_as_read)
    except OSError as e:  # a file this user may not read: said, as check_config says it of config.json
        raise HubError(f"cannot read {run_dir}: {e.strerror or e}",
                       "Push a run folder you can read (its config.json and model.safetensors).") from None
    _verify_weights(run_dir / WEIGHTS)
    training_log = _training_log(run_dir)
    summary = _training_summary(run_dir)
    if summary and summary["note"]:  # the card says it too
        log(f"note: {summary['note']}")
    if untrained(run_dir):
        log(f"note: {run_dir} has not finished an epoch: the push publishes its initial, untrained weights")
    elif _stopped_before_its_end(run_dir):
        log(f"note: {run_dir}'s training was stopped before its end: the push publishes its best epoch so far "
            "(its card says so); `zoo train --resume` goes on")
    evaluated, note = eval_images.current_eval(run_dir)
    if note:
        log(f"note: {note}; no test metrics are pushed")
    samplers = _samplers(run_dir, log)
    names = [sampler_name(n) for n in samplers]
    record = read_json(run_dir / CONFIG)
    dataset = str(record.get("train", {}).get("dataset", ""))
    if dataset.startswith("folder:"):  # its name is its path here, unlike data_dir not left out: say it goes out
        log(f"note: the data set is named by its path on this machine, {dataset}: config.json and the card publish "
            "it; whoever loads the weights points at their copy of the images with --data-dir (data_dir=)")
    source = record.get("config", {}).get("init_from")
    if public_name(source) != source:
        log(f"note: the encoder's source is named by its path on this machine, {source}: config.json and the card "
            f"publish its folder's name, {public_name(source)} (init_digest still identifies its weights)")
    if not is_managed(run_dir) and not registry.shipped_by_plugin(run_dir):  # the user's card (not published weights')
        _, dropped = read_notes(run_dir / CARD)
        if dropped and (run_dir / CARD).is_file():
            log(f"note: {dropped}; the pushed card is generated (with your notes below its notes line)")
    config = run_dir / CONFIG if record == published(record) else \
        (json.dumps(published(record), indent=2) + "\n").encode()
    files: dict[str, Path | bytes] = {CONFIG: config, WEIGHTS: run_dir / WEIGHTS,
                                      CARD: model_card(run_dir, location, names).encode()}
    if training_log is not None:
        files[METRICS] = training_log
    if evaluated is not None:
        files[EVAL] = (json.dumps(evaluated, indent=2) + "\n").encode()  # as read and checked
        images, note = _checked_images(run_dir, evaluated)  # each image's, for pairs with the user's runs
        if images is not None:
            files[eval_images.IMAGES_FILE] = images
        elif note:
            log(f"note: {note}; it is not pushed")
    quality = published_quality(run_dir)
    if quality is not None:  # a GAN's only test figure; its digests make it checkable against the weights
        files[QUALITY] = (json.dumps(quality, indent=2) + "\n").encode()
    for image in current_pictures(run_dir, log):
        files[image] = run_dir / image
    files.update(samplers)
    return files, before



def _checked_images(run_dir: Path, evaluated: dict) -> tuple[bytes | None, str | None]:
    """RUN/eval-images.safetensors as bytes, checked to be of the evaluation `evaluated` (eval_images.read);
    the bytes checked are those pushed: an evaluation ending meanwhile rewrites the file, not the push's copy."""
    path = run_dir / eval_images.IMAGES_FILE
    if not path.is_file():
        return None, None
    try:
        with open_regular(path) as fh:
            data = fh.read()
    except (RunError, OSError) as e:
        return None, f"{path.name} cannot be read ({getattr(e, 'message', None) or e}): ignored"
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
        (Path(tmp) / eval_images.IMAGES_FILE).write_bytes(data)
        values, note = eval_images.read(Path(tmp), evaluated)
    return (data if values else None), note


def _samplers(run_dir: Path, log: Log) -> dict[str, Path]:
    """The run's latent samplers fitted on these weights (RUN/sampler-NAME.safetensors, intact): they go
    with them, so that a pulled copy samples with no training images. A stale or damaged one stays, said."""
    digest = file_sha256(run_dir / WEIGHTS)
    identity = run_identity(read_json(run_dir / CONFIG))
    found = {}
    for path in sorted(run_dir.glob("sampler-*.safetensors")):
        if not is_sampler_file(path.name) or not path.is_file():
            continue
        try:
            _, meta = checkpoint.load_tensors(path)
        except (RunError, OSError) as e:  # damaged, or unreadable: the run is pushed without it
            log(f"note: {path.name} is not pushed: {e.message if isinstance(e, RunError) else e.strerror or e}")
            continue
        if meta.get("weights_sha256") != digest:
            fitted = meta.get("run")  # the run whose codes it was fitted on (older samplers: not recorded)
            why = (f"it was fitted on another run's codes ({fitted})" if fitted and identity and fitted != identity
                   else "it was fitted on other weights of this run (before it trained on)")
            log(f"note: {path.name} is not pushed: {why}")
            continue
        found[path.name] = path
    return found


def _training_log(run_dir: Path) -> bytes | None:
    """metrics.jsonl's bytes (None without one); one that is not a regular file (a FIFO) refuses the push."""
    path = run_dir / METRICS
    if not path.exists():
        return None
    try:
        with open_regular(path) as fh:
            return fh.read()
    except RunError as e:
        raise HubError(f"refusing to push {run_dir}: {e.message}", e.hint) from None
    except OSError as e:
        raise HubError(f"cannot read {path}: {e.strerror or e}") from None


def _verify_weights(path: Path) -> None:

    try:
        checkpoint.verify_file(path)
    except RunError as e:
        raise HubError(f"refusing to push a damaged run: {e.message}", e.hint) from None


def push(run: str | Path, destination: str, *, private: bool = False, revision: str | None = None,
         message: str | None = None, log: Log = to_stderr) -> Pushed:
    """Publish a run folder (config.json, model.safetensors, a model card, metrics.jsonl, a current
    eval.json, its pictures, its samplers fitted on these weights) to hf://ORG/NAME (a commit on
    `revision`, default main; the repository is created if needed, private if asked) or to a folder hub
    file:///PATH (created, or replaced as a whole, atomically, only if an earlier push made it: see
    zoo.hub.folder). A damaged run is refused before anything is written or uploaded. `run` may also be what
    zoo.train returned, or a Run: their folder."""
    run = getattr(run, "run_dir", None) or getattr(run, "folder", None) or run
    if not isinstance(run, (str, os.PathLike)):
        raise RunError(f"zoo.push takes a run folder, not {run!r:.60}", "For example zoo.push('runs/ae6', DEST).")
    loc = parse(destination)
    try:
        return _push(home(run), loc, private=private, revision=revision, message=message, log=log)
    except Interrupted:
        raise
    except KeyboardInterrupt:  # said, not left as a bare "Interrupted."
        how = ("a commit is made whole or not at all" if loc.kind == "hf" else
               "the entry holds its earlier version or this push, whole, never a mixture of the two")
        raise Interrupted(f"push to {loc} interrupted; {how}", "Run the same command again to publish the run.") \
            from None


def _push(run: Path, loc: Location, *, private: bool, revision: str | None, message: str | None, log: Log) -> Pushed:
    """push() of `run` (~ expanded: the user's home, as everywhere, zoo.arguments.home) to the parsed location."""
    if loc.kind == "hf" and loc.revision and revision and loc.revision != revision:
        raise HubError(f"two revisions given: @{loc.revision} and --revision {revision}")
    revision = revision or loc.revision
    run_dir = _run_folder(run, log)
    if loc.kind == "file":
        if revision:
            raise HubError("a folder hub keeps one version: --revision is for hf:// locations")
        check_destination(loc.path, run_dir)  # before the run is even read
        files, before = _push_files(run_dir, str(loc), log)
        earlier = another_run(cache.read_json(loc.path / CONFIG), cache.read_json(run_dir / CONFIG))
        push_folder(loc.path, files, run_dir, check=lambda written: _still_as_read(run_dir, before, written[WEIGHTS]))
        if earlier:
            log(f"note: {loc} held a push of another run ({earlier}): replaced")
        return Pushed(str(loc), sorted(files))
    base, branch = f"{HF_SCHEME}{loc.repo}", revision or "main"
    # the card's commands load what it describes: this branch's weights, not main's
    files, before = _push_files(run_dir, base if branch == "main" else f"{base}@{branch}", log)
    if offline():  # a push needs the network: no cached copy stands in for it
        raise HubError(f"cannot push to {base}: zoo is offline (ZOO_OFFLINE or HF_HUB_OFFLINE is on)",
                       "Unset them (with the network on) to push; `zoo push RUN file:///PATH` publishes to a folder "
                       "hub offline.")
    run = check_config(run_dir / CONFIG, str(run_dir))
    summary = message or f"zoo push: {run['model']} trained on {run.get('data', {}).get('name', '?')} ({run_dir.name})"
    commit, url = push_hf(loc.repo, branch, files, run, private=private, summary=summary, log=log,
                          check=lambda sha: _still_as_read(run_dir, before, sha))
    if branch != "main" and not loc.revision:
        log(f"note: committed to branch {branch} of {base} (its main branch is unchanged)")
    return Pushed(f"{base}@{commit}" if commit else f"{base}@{branch}", sorted(files), commit, url, branch)
