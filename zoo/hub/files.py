"""What a hub location holds and how zoo checks it before loading anything: file names, safetensors
headers, run configs, checksums."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from zoo import registry
from zoo.console import with_article
from zoo.errors import RunError, ZooError
from zoo.hub.locations import HubError
from zoo.runs import config as cfgmod
from zoo.runs.eval_images import IMAGES_FILE
from zoo.runs.modelcard import PICTURES, QUALITY, is_picture  # noqa: F401 (hub.files.QUALITY)
from zoo.runs.files import (  # noqa: F401 (hub.files.PUSHED_MANIFEST)
    PUSHED_MANIFEST,
    check_run_config,
    check_weights_fit,
    read_header,
    run_classes,
    run_shape,
    sampler_name,
    skeleton,
    state_spec,
)
from zoo.runs.plugin_uses import missing_use

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
METRICS = "metrics.jsonl"                        # the training log
EVAL = "eval.json"                               # test metrics, pushed only when they measured these weights
IMAGES = PICTURES                                # a run's pictures (zoo.runs.modelcard)
MODEL_FILES = (CONFIG, WEIGHTS)                  # what loading needs; checked on every load
EVAL_IMAGES = IMAGES_FILE                         # each test image's metrics, pushed with the eval.json they match
# zoo eval --fid's figures of the samples (a GAN's only test figures), pushed when they measured these weights
# All that is downloaded or pushed, with samplers.
REPO_FILES = (CONFIG, WEIGHTS, CARD, METRICS, EVAL, EVAL_IMAGES, QUALITY, *IMAGES)
UNSAFE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
PULLED_MANIFEST = ".zoo-pulled.json"   # in a cached copy of a folder hub: where it came from, its sha256s


def git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1()
    h.update(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_name(name: Any) -> bool:
    """A file name a hub may list: relative, '/'-separated, no '..', no backslash, no control character."""
    return (isinstance(name, str) and bool(name) and ".." not in name and "\\" not in name
            and not name.startswith("/") and not re.match(r"^[A-Za-z]:", name)
            and not any(ord(c) < 32 for c in name))


def select_files(names: list[str], where: str) -> list[str]:
    """The files zoo will fetch from a location listing `names`; refuse unsafe names and pickle-only repos."""
    bad = [n for n in names if not safe_name(n)]
    if bad:
        raise HubError(f"{where} lists unsafe file names ({', '.join(repr(n) for n in bad[:3])}): refusing it",
                       "A hub file name may not contain '..', start with '/' or hold a backslash; "
                       "zoo never writes outside its cache.")
    present = set(names)
    if WEIGHTS not in present:
        pickles = sorted(n for n in names if n.lower().endswith(UNSAFE_SUFFIXES))
        if pickles:
            raise HubError(f"{where} offers only pickle-based weights ({', '.join(pickles[:3])}): "
                           "zoo only loads safetensors",
                           "zoo never unpickles a file; ask for a model.safetensors (`zoo push` writes one).")
        raise HubError(f"{where} has no {WEIGHTS}: it is not a zoo model",
                       "`zoo push RUN LOCATION` publishes a run in the layout zoo loads.")
    if CONFIG not in present:
        raise HubError(f"{where} has no {CONFIG}: it is not a zoo model",
                       "`zoo push RUN LOCATION` publishes a run in the layout zoo loads.")
    # Latent samplers fitted on the run's training codes travel with the weights, so that a pulled copy
    # samples its latent space with no training images at hand; so do zoo generate's other grids.
    others = sorted(n for n in present if is_run_file(n) and n not in REPO_FILES)
    return [n for n in REPO_FILES if n in present] + others


def is_sampler_file(name: str) -> bool:
    return sampler_name(name) is not None


def is_run_file(name: str) -> bool:
    """A file zoo publishes and fetches with a run: REPO_FILES, fitted samplers, zoo generate's other grids."""
    return name in REPO_FILES or is_sampler_file(name) or is_picture(name)


FETCHED = "the upload or the copy is damaged"


def check_safetensors(path: Path, where: str, damaged: str = FETCHED) -> dict[str, tuple[tuple[int, ...], str]]:
    """The tensors a safetensors file declares (name -> (shape, dtype)), from its header alone: a file
    whose header is malformed or declares more than the file holds is refused, saying what `damaged` it
    (a fetched copy's upload or copy; a run's own file, for a push). Nothing is loaded."""

    try:
        declared, _ = read_header(Path(path))
    except RunError as e:
        problem = e.message.replace(f"{path} ", "it ")  # the cache path means nothing to the user
    except RecursionError:
        problem = "its header is nested too deeply"
    except OSError as e:
        raise HubError(f"cannot read {WEIGHTS} from {where}: {e.strerror or e}") from None
    else:
        return declared
    raise HubError(f"{WEIGHTS} from {where} is not a valid safetensors file ({problem}): refusing it",
                   f"zoo only loads intact safetensors files; {damaged}.")


def check_config(path: Path, where: str) -> dict:
    """The run config a location offers, with every field zoo reads checked (runfiles.check_run_config):
    a hostile or damaged config.json ends in one message, never a traceback later."""

    try:
        run = json.loads(Path(path).read_bytes())
    except OSError as e:
        raise HubError(f"cannot read {CONFIG} from {where}: {e.strerror or e}") from None
    except (ValueError, RecursionError) as e:
        raise HubError(f"{CONFIG} from {where} is not valid JSON ({_json_problem(e)})",
                       "`zoo push RUN LOCATION` publishes a run in the layout zoo loads.") from None
    try:
        return check_run_config(run, f"{CONFIG} from {where}")
    except RunError as e:
        raise HubError(e.message, e.hint) from None


def _json_problem(e: Exception) -> str:
    if isinstance(e, UnicodeDecodeError):
        return "it is not UTF-8 text"
    if isinstance(e, RecursionError):  # '[[[[...': nested past Python's limit
        return "it is nested too deeply"
    return str(e).splitlines()[0][:200] if str(e) else "it cannot be parsed"


def model_spec(run: dict, where: str | None = None) -> dict | None:
    """The weights (name -> (shape, dtype)) of the model `run` describes, built on the meta device (no
    memory); None where its plugin is not installed or its config does not build here (loading says why).
    With `where` (the copy's name), a config its installed plugin refuses is a HubError instead: a config.json
    edited, or another model's, is neither published nor called verified."""
    try:
        cls = registry.get_entry(run["model"]).cls
    except Exception:  # noqa: BLE001 - not installed here: loading says so
        return None
    try:
        meta = skeleton(cls, cfgmod.build(cls.Config, dict(run["config"]), where=CONFIG), run_shape(run),
                        run_classes(run))
    except ZooError as e:
        if where is None:
            return None  # a best-effort size: `load` explains
        missing = missing_use(run, where)  # built with a class of a package not installed here: not an edit
        if missing is not None:
            raise missing from None
        raise HubError(f"{CONFIG} of {where} does not describe {with_article(run['model'])} that zoo builds "
                       f"({e.message}): refusing it", "The file was edited, or is another model's (or another "
                       "version's of its plugin): restore the run's own config.json.") from None
    except Exception:  # noqa: BLE001 - a plugin that cannot be built on the meta device: not checked here
        return None
    return None if meta is None else state_spec(meta)


def check_model_files(folder: Path, where: str, damaged: str = FETCHED) -> dict:
    """config.json and model.safetensors of a copy checked before it is used or recorded as verified:
    the config's fields, the weights' header, and (where the plugin is installed) that the header
    declares exactly the tensors the config's model has, so nothing is allocated for a mismatch."""

    run = check_config(folder / CONFIG, where)
    declared = check_safetensors(folder / WEIGHTS, where, damaged)
    spec = model_spec(run, where)
    if spec is not None:
        try:
            check_weights_fit(spec, declared, f"{WEIGHTS} from {where}")
        except RunError as e:
            raise HubError(f"{e.message}: refusing it", e.hint) from None
    return run


def verify_catalogued(sha256: str, expected: str | None, name: str | None, where: str) -> None:
    if expected and sha256 != expected.lower():
        raise HubError(f"the weights of '{name}' from {where} do not match their catalogued sha256 "
                       f"(got {sha256[:12]}..., expected {expected[:12]}...): refusing to load them",
                       "The copy on the hub, in the cache or in its folder is not the one the catalogue describes.")
