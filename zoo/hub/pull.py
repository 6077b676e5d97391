"""Pull and resolve by location or by catalogued name, and the catalogue of pretrained weights
([weights.NAME] tables of zoo's registry.toml, the plugins' and the user's catalogue files: zoo.catalog)."""

from __future__ import annotations

import difflib
import glob
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from zoo import registry
from zoo.caches import zoo_cache
from zoo.console import to_stderr
from zoo.errors import RunError, UnknownModelError
from zoo.hub import temps
from zoo.hub.cache import Fetched, read_json
from zoo.hub.files import (CONFIG, MODEL_FILES, PULLED_MANIFEST, WEIGHTS, check_config, check_safetensors,
                           verify_catalogued)
from zoo.hub.folder import fetch_folder, slug
from zoo.hub.hf import fetch_hf, hf_store, import_hf
from zoo.hub.locations import COMMIT_RE, HubError, Log, is_hub_source, parse
from zoo.runs.files import file_sha256


def fetch(source: str, *, log: Log = to_stderr, sha256: str | None = None) -> Fetched:
    """A verified local copy of hf://… or file://… (downloaded or copied only when needed). A folder hub that is
    not there (a shared disk not mounted, a folder moved) is stood in for by its newest intact copy pulled before
    (`sha256`: one whose weights have it, for a catalogued name), with a note; none: refused as before."""
    loc = parse(source)
    if loc.kind == "hf":
        return fetch_hf(loc, log)
    temps.wait_for_swap(loc.path)  # missing only for the moment a push swaps a new version in: not "not reachable"
    if not os.path.lexists(loc.path) and not temps.swapping(loc.path):  # else fetch_folder waits for the swap
        copy = pulled_copy(str(loc), sha256)
        if copy is not None:
            log(f"note: the folder hub {loc} is not reachable: using its copy pulled on {copy[1]}, {copy[0].folder}")
            return copy[0]
    return fetch_folder(loc, log)


def pulled_copy(location: str, sha256: str | None = None) -> tuple[Fetched, str] | None:
    """The newest copy of folder hub `location` in zoo's cache that is intact (every file as its pull recorded
    it), and with weights of `sha256` if given; with when it was pulled. None: there is none."""
    copies = []
    for folder in (zoo_cache() / "file").glob(f"{glob.escape(slug(str(parse(location).path)))}-*"):
        record = read_json(folder / PULLED_MANIFEST)
        files = record.get("files") if isinstance(record, dict) else None
        if isinstance(files, dict) and record.get("location") == location and set(MODEL_FILES) <= set(files) \
                and sha256 in (None, files[WEIGHTS]):
            copies.append((str(record.get("pulled", "")), folder, files))
    for pulled, folder, files in sorted(copies, key=lambda c: c[0], reverse=True):
        if all((folder / n).is_file() and file_sha256(folder / n) == d for n, d in files.items()):
            return Fetched(folder, location, dict(files), cached=True), pulled or "an unrecorded date"
    return None


def _local(name: str) -> tuple[Path | None, str, str]:
    """Where weights `name` lie on this machine if their entry gives a `path` (else None); how that is said,
    "bundled" (with zoo) or "local" (a plugin's or the user's entry); and what to do when they are not there."""
    file = registry.catalog_file("weights", name)
    how = "bundled" if file.bundled else "local"
    return registry.weights_folder(name), how, file.fix()


def checked(got: Fetched, catalogued: bool = False) -> dict[str, list[str]]:
    """Which fetched files were verified, and which not: from the Hugging Face Hub, every file checked against
    the hub's checksum (or, where it lists none, the one zoo records in its safetensors: Fetched.unverified, the
    others); from a folder hub (whose copy holds a pull record), those that match
    its push mark (zoo.hub.marks); and `catalogued` weights (checked against registry.toml's sha256)."""
    if catalogued:
        lists = checked(got)
        return {"verified": sorted({*lists["verified"], WEIGHTS}),
                "unverified": [n for n in lists["unverified"] if n != WEIGHTS]}
    record = read_json(got.folder / PULLED_MANIFEST)
    if not isinstance(record, dict):
        return {"verified": sorted(n for n in got.files if n not in got.unverified),
                "unverified": sorted(got.unverified)}
    lists = {k: record.get(k) for k in ("verified", "unverified")}
    if not all(isinstance(v, list) and all(n in got.files for n in v) for v in lists.values()):
        return {"verified": [], "unverified": sorted(got.files)}  # a copy made before pulls said so
    return {k: sorted(v) for k, v in lists.items()}


def pull(source: str, *, log: Log = to_stderr) -> dict[str, Any]:
    """Fetch hf://…, file://… or a catalogued name into the cache (or find it bundled), verify it, and
    say where it is: {"folder", "location", "name", "commit", "files" (sha256s), "how", "verified" and
    "unverified" (file names: what was checked against the hub's checksums or a folder hub's push mark)}."""
    if is_hub_source(source):
        got = fetch(source, log=log)
        return {"folder": str(got.folder), "location": got.location, "name": None, "commit": got.commit,
                "files": got.files, "how": "cached" if got.cached else "fetched", **checked(got)}
    entries = registry.weights()
    if source not in entries:
        close = difflib.get_close_matches(source, list(entries), n=3, cutoff=0.5)
        hint = (f"Did you mean: {', '.join(close)}? " if close else "") + \
            "`zoo pretrained` lists the catalogued names; a hub location is hf://ORG/NAME or file:///PATH."
        raise HubError(f"'{source}' is not a catalogued name or a hub location", hint)
    entry = entries[source]
    expected = entry.get("sha256")
    local, how, fix = _local(source)
    if local is not None and (local.is_dir() or not entry.get("hub")):
        weights = local / WEIGHTS
        if not weights.is_file():
            raise HubError(f"the weights of '{source}' are missing ({weights})", fix)
        digest = file_sha256(weights)
        verify_catalogued(digest, expected, source, str(local))
        check_safetensors(weights, str(local))
        if (local / CONFIG).is_file():  # (a folder without one is refused as no run when it is loaded)
            check_catalogued(source, check_config(local / CONFIG, str(local)))
        return {"folder": str(local), "location": str(local), "name": source, "commit": None,
                "files": {WEIGHTS: digest}, "how": how, "verified": [WEIGHTS] if expected else [],
                "unverified": [] if expected else [WEIGHTS]}
    if not is_hub_source(entry["hub"]):
        raise HubError(f"the catalogue gives '{source}' the hub location '{entry['hub']}', which is not one",
                       f"Use hf://ORG/NAME@REVISION or file:///PATH. {fix}")
    got = fetch(entry["hub"], log=log, sha256=expected)
    verify_catalogued(got.files[WEIGHTS], expected, source, got.location)
    check_catalogued(source, check_config(got.folder / CONFIG, got.location))
    return {"folder": str(got.folder), "location": got.location, "name": source, "commit": got.commit,
            "files": got.files, "how": "cached" if got.cached else "fetched", **checked(got, bool(expected))}


def check_catalogued(name: str, run: dict[str, Any]) -> None:
    """The model and data set a catalogue entry gives its weights, against what their config.json says they are
    (`zoo info NAME` would describe one model, and zoo.load give another): checked by every pull of a catalogued
    name, so that zoo pull, zoo compare and zoo.load refuse a wrong entry alike."""
    entry = registry.weights().get(name)
    if entry is None:
        return
    trained_on = run["data"].get("name", run["train"].get("dataset"))
    for field, said, actual in (("model", entry["model"], run["model"]), ("dataset", entry["dataset"], trained_on)):
        if said != actual and not _same_folder_set(said, actual):
            file = registry.catalog_file("weights", name)
            raise RunError(f"{file.said()} catalogues '{name}' with {field} '{said}', but its config.json says "
                           f"'{actual}'", f"The entry is wrong, not the weights. {file.fix()}")


def _same_folder_set(said: str, recorded: str) -> bool:
    """A catalogue's `folder:pics` for a run that recorded `folder:/home/alice/pics`: a folder of images is
    named by where it was, which a shared catalogue (or images moved since) cannot repeat; its name must agree."""
    prefix = "folder:"
    return said.startswith(prefix) and recorded.startswith(prefix) and \
        Path(said[len(prefix):]).name == Path(recorded[len(prefix):]).name


def resolve(source: str, *, log: Log = to_stderr) -> Path:
    """The local, verified folder of hf://…, file://… or a catalogued name (see `pull`)."""
    return Path(pull(source, log=log)["folder"])


def catalogue_info(name: str) -> dict[str, Any]:
    """What registry.toml says about pretrained weights `name`, and where they are now (no network)."""
    entries = registry.weights()
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
        raise HubError(f"no pretrained weights named '{name}'",
                       (f"Did you mean: {', '.join(close)}? " if close else "") + "`zoo pretrained` lists them.")
    entry = entries[name]
    local, how, _ = _local(name)
    cached = _cached_folder(entry.get("hub")) if entry.get("hub") else None
    if local is not None and (local / WEIGHTS).is_file():
        where = how
    elif cached is not None:
        where = "cached"
    elif entry.get("hub"):
        where = "hub"
    else:
        where = "missing"
    return {"name": name, "model": entry.get("model"), "dataset": entry.get("dataset"),
            "description": entry.get("description", ""), "metrics": dict(entry.get("metrics", {})),
            "command": entry.get("command"), "sha256": entry.get("sha256"), "hub": entry.get("hub"),
            "bundled": str(local) if local is not None else None,  # the entry's `path` (not zoo's own: "local")
            "cached": str(cached) if cached is not None else None, "available": where,
            "catalogue": registry.catalog_file("weights", name).said(),
            "extra": {k: v for k, v in entry.items() if k not in (
                "model", "dataset", "description", "metrics", "command", "sha256", "hub", "path")}}


def catalogue(model: str | None = None) -> list[dict[str, Any]]:
    """`catalogue_info` of every catalogued name (of one model's, if given: a model neither installed nor
    catalogued is refused, as a typo, not listed as one without weights)."""
    names = sorted(registry.weights(model))
    if model is not None and not names:
        if model in registry.weights():
            raise UnknownModelError(f"'{model}' is the name of catalogued weights, not of a model",
                                    f"`zoo pretrained {model}` shows them; --model takes the name of a model "
                                    f"(theirs: {registry.weights()[model].get('model')}).")
        registry.get_model_class(model)  # unknown: refused with the names close to it
    return [catalogue_info(n) for n in names]


def _cached_folder(hub: str) -> Path | None:
    """The verified local copy of a hub location, if there is one (no network, no hashing)."""
    try:
        loc = parse(hub)
    except HubError:
        return None
    if loc.kind == "file":
        copies = sorted((zoo_cache() / "file").glob(f"{slug(str(loc.path))}-*"),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        return copies[0] if copies else None
    revision = loc.revision or "main"
    store = hf_store(loc)
    commit = revision if COMMIT_RE.fullmatch(revision) else None
    ref = store / "refs" / quote(revision, safe="")
    if commit is None and ref.is_file():
        commit = ref.read_text().strip()
    manifest = read_json(store / "verified" / f"{commit}.json") if commit else None
    if not isinstance(manifest, dict):
        return None
    hf = import_hf()
    found = [hf.try_to_load_from_cache(loc.repo, n, revision=commit) for n in MODEL_FILES]
    return Path(found[0]).parent if all(isinstance(f, str) for f in found) else None
