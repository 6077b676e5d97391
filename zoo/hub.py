"""Hubs: publish a run folder, fetch one back, and the pretrained weights catalogued in registry.toml.

Everywhere a run folder is accepted, these work too (`zoo.api.resolve` sends them here):

    hf://ORG/NAME[@REVISION]   a model repository on the Hugging Face Hub; REVISION is a branch, tag or
                               commit (default main). huggingface-hub's own settings apply: HF_ENDPOINT,
                               HF_TOKEN (or `hf auth login`), HF_HUB_CACHE / HF_HOME, HF_HUB_OFFLINE,
                               HF_HUB_DOWNLOAD_TIMEOUT and HF_HUB_ETAG_TIMEOUT (seconds, default 10).
    file:///PATH               a folder hub: the same files in a folder, e.g. on a shared disk
                               (file://RELATIVE/PATH is taken relative to the working directory).
    NAME                       a name catalogued in registry.toml under [weights.NAME]: its bundled
                               folder, or its copy pulled from the hub named by its `hub` key.

A repository (or folder) holds config.json, model.safetensors, README.md (a model card with YAML
metadata: library, tags, data set, metrics, licence) and the run's pictures. `push` writes exactly that.

Trust. Only safetensors are ever read: a location that offers only pickle-based weights (.bin, .pt,
.pth, .ckpt, .pkl) is refused, and nothing but the files above is ever downloaded. File names a hub
lists are checked (no '..', no absolute path, no backslash) before anything is fetched. Every file
fetched from the Hugging Face Hub is checked against the checksum the hub lists for it (sha256 for LFS
files, the git blob id otherwise); only then does zoo record the snapshot as verified (in
$XDG_CACHE_HOME/zoo/hub), and it only ever loads verified snapshots, so an interrupted or damaged
download is never loaded (huggingface-hub itself downloads to `.incomplete` files and renames them into
place). Offline, a verified snapshot is checked against the recorded sha256s again before use. A
catalogued name is also checked against the sha256 registry.toml gives for its model.safetensors.

A folder hub is copied into zoo's cache (content-addressed, verified, renamed into place when complete)
and loaded from there, so a push that replaces the folder while it is read cannot mix two versions, and
nothing is ever written into the shared folder by loading it.

registry.toml catalogues pretrained weights as

    [weights.vae-mnist]
    model = "vae"                                # the plugin
    dataset = "mnist"
    description = "..."
    path = "weights/vae-mnist"                   # bundled folder, relative to the zoo package (optional)
    hub = "hf://zoo-models/vae-mnist@<commit>"   # where it lives on a hub (optional; hf:// or file://)
    sha256 = "..."                               # of model.safetensors
    command = "zoo train vae --preset ... --dataset mnist"   # how it was trained
    [weights.vae-mnist.metrics]                  # measured test metrics
    mse = 0.0123

This module imports neither torch nor huggingface-hub at import time.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import difflib
import hashlib
import json
import os
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from zoo import registry
from zoo.console import to_stderr
from zoo.errors import ZooError

HF_SCHEME = "hf://"
FILE_SCHEME = "file://"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
IMAGES = ("reconstructions.png", "samples.png", "loss.png")
MODEL_FILES = (CONFIG, WEIGHTS)                  # what loading needs; checked on every load
REPO_FILES = (CONFIG, WEIGHTS, CARD, *IMAGES)    # all that is ever downloaded or pushed
UNSAFE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
PULLED_MANIFEST = ".zoo-pulled.json"

_REPO_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_REVISION_RE = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._/-]{0,199}")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")

Log = Callable[[str], None]


class HubError(ZooError):
    """A hub location is malformed, unreachable, missing, or offers something zoo will not load."""


# ---------------------------------------------------------------------------------------- locations

@dataclasses.dataclass(frozen=True)
class Location:
    """A parsed hub location: kind "hf" (repo, revision) or "file" (path)."""

    kind: str
    repo: str = ""
    revision: str | None = None
    path: Path | None = None

    def __str__(self) -> str:
        if self.kind == "hf":
            return f"{HF_SCHEME}{self.repo}" + (f"@{self.revision}" if self.revision else "")
        return f"{FILE_SCHEME}{self.path}"


def is_hub_source(source: Any) -> bool:
    """True for hf://… and file://… strings."""
    return isinstance(source, str) and source.startswith((HF_SCHEME, FILE_SCHEME))


def parse(source: str) -> Location:
    """hf://ORG/NAME[@REVISION] or file:///PATH (or file://RELATIVE/PATH)."""
    if source.startswith(HF_SCHEME):
        rest = source[len(HF_SCHEME):]
        repo, _, revision = rest.partition("@")
        repo = repo.strip("/")
        if not _REPO_RE.fullmatch(repo) or ".." in repo or "--" in repo:
            raise HubError(f"'{source}' is not a Hugging Face Hub location",
                           "Write hf://ORG/NAME or hf://ORG/NAME@REVISION (a branch, tag or commit).")
        if "@" in rest and (not _REVISION_RE.fullmatch(revision) or ".." in revision or revision.endswith("/")):
            raise HubError(f"'{revision}' in '{source}' is not a revision",
                           "A revision is a branch, a tag or a 40-hex-digit commit, e.g. hf://org/name@main.")
        return Location("hf", repo=repo, revision=revision or None)
    if source.startswith(FILE_SCHEME):
        rest = source[len(FILE_SCHEME):]
        if rest.startswith("localhost/"):
            rest = rest[len("localhost"):]
        if not rest or "@" in Path(rest).name:
            raise HubError(f"'{source}' is not a folder hub location",
                           "Write file:///absolute/path/to/folder; a folder hub keeps one version, no @revision.")
        return Location("file", path=Path(os.path.expanduser(rest)).absolute())
    raise HubError(f"'{source}' is not a hub location", "Use hf://ORG/NAME[@REVISION] or file:///PATH.")


# ---------------------------------------------------------------------------------------- files

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _git_blob_sha1(path: Path) -> str:
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
    return [n for n in REPO_FILES if n in present]


def check_safetensors(path: Path, where: str) -> None:
    """A well-formed safetensors file (header and offsets), read without torch and without unpickling."""
    problem = None
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n < 2 or n > 100_000_000:
                problem = "no safetensors header"
            elif n > size - 8:
                problem = f"it is truncated: {size} bytes, its header alone needs {n + 8}"
            else:
                header = json.loads(fh.read(n))
                if not isinstance(header, dict):
                    problem = "its header is not a table"
                else:
                    end = 0
                    for key, info in header.items():
                        if key == "__metadata__":
                            continue
                        offsets = info.get("data_offsets") if isinstance(info, dict) else None
                        if not (isinstance(offsets, list) and len(offsets) == 2 and 0 <= offsets[0] <= offsets[1]):
                            problem = f"tensor {key!r} has no valid offsets"
                            break
                        end = max(end, offsets[1])
                    if problem is None and end > size - 8 - n:
                        problem = f"it is truncated ({size} bytes, the header needs {end + 8 + n})"
    except (OSError, ValueError, UnicodeDecodeError) as e:
        problem = problem or f"{type(e).__name__}: {e}"
    if problem:
        raise HubError(f"{WEIGHTS} from {where} is not a valid safetensors file ({problem}): refusing it",
                       "zoo only loads intact safetensors files; the upload or the copy is damaged.")


def check_config(path: Path, where: str) -> dict:
    try:
        run = json.loads(Path(path).read_text())
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise HubError(f"{CONFIG} from {where} is not valid JSON ({e})") from None
    if not isinstance(run, dict) or not isinstance(run.get("model"), str) or not isinstance(run.get("config"), dict):
        raise HubError(f"{CONFIG} from {where} is not a zoo run config (no 'model' and 'config')",
                       "`zoo push RUN LOCATION` publishes a run in the layout zoo loads.")
    return run


def _check_model_files(folder: Path, where: str) -> None:
    check_config(folder / CONFIG, where)
    check_safetensors(folder / WEIGHTS, where)


def _verify_catalogued(sha256: str, expected: str | None, name: str | None, where: str) -> None:
    if expected and sha256 != expected.lower():
        raise HubError(f"the weights of '{name}' from {where} do not match their catalogued sha256 "
                       f"(got {sha256[:12]}..., expected {expected[:12]}...): refusing to load them",
                       "The copy on the hub or in the cache is not the one registry.toml describes.")


# ---------------------------------------------------------------------------------------- caches

def zoo_cache() -> Path:
    """Where zoo keeps its hub records and folder-hub copies: $XDG_CACHE_HOME/zoo/hub."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zoo" / "hub"


def _hf_caches() -> list[Path]:
    """huggingface-hub's cache: as the environment says now, and as the imported library took it."""
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    roots = [Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
                  or os.path.join(home, "hub")).expanduser()]
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        roots.append(Path(constants.HF_HUB_CACHE))
    return roots


def is_managed(folder: str | Path) -> bool:
    """True for folders that zoo or huggingface-hub manage (pulled copies, the HF cache, bundled weights):
    nothing should write into them (outputs, fitted samplers)."""
    folder = Path(folder).absolute()
    roots = [zoo_cache(), *_hf_caches(), Path(registry.__file__).parent]
    return any(folder == r.absolute() or r.absolute() in folder.parents for r in roots)


def _offline() -> bool:
    flag = os.environ.get("ZOO_OFFLINE", "") not in ("", "0")
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        return flag or constants.is_offline_mode()
    return flag or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass
class Fetched:
    """A verified local copy of a location."""

    folder: Path
    location: str
    files: dict[str, str]            # name -> sha256
    commit: str | None = None
    cached: bool = False             # served from an earlier verified copy, without downloading


# ---------------------------------------------------------------------------------------- huggingface-hub

_TIMEOUTS_BOUND = False


def _hf():
    """huggingface_hub, imported on first use, with a time limit on every request.

    Some of its calls pass no time-out (timeout=None); unless the user installed their own client
    factory, zoo installs one whose requests without a limit get HF_HUB_DOWNLOAD_TIMEOUT seconds."""
    global _TIMEOUTS_BOUND
    try:
        import huggingface_hub
    except ImportError:  # pragma: no cover - a dependency
        raise HubError("hf:// locations need huggingface-hub", "pip install huggingface-hub") from None
    if not _TIMEOUTS_BOUND:
        _TIMEOUTS_BOUND = True
        try:
            _bound_timeouts(huggingface_hub)
        except Exception:  # pragma: no cover - another huggingface-hub release: keep its own client
            pass
    return huggingface_hub


def _bound_timeouts(hf) -> None:
    import httpx2
    from huggingface_hub.utils import _http

    if getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) is not getattr(_http, "default_client_factory", object()):
        return  # the user's own client: leave it alone
    seconds = _timeout()

    class BoundedTransport(httpx2.BaseTransport):
        def __init__(self, inner):
            self.inner = inner

        def handle_request(self, request):
            limits = dict(request.extensions.get("timeout") or {})
            if not limits or any(v is None for v in limits.values()):
                request.extensions = {**request.extensions, "timeout": {
                    k: (limits.get(k) if limits.get(k) is not None else seconds)
                    for k in ("connect", "read", "write", "pool")}}
            return self.inner.handle_request(request)

        def close(self):
            self.inner.close()

    def factory():
        default = _http.default_client_factory()
        hooks = default.event_hooks
        default.close()
        return httpx2.Client(event_hooks=hooks, follow_redirects=True, timeout=None,
                             transport=BoundedTransport(httpx2.HTTPTransport()))

    hf.set_client_factory(factory)


def _timeout() -> float:
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        return float(constants.HF_HUB_DOWNLOAD_TIMEOUT)
    return float(os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT") or 10)


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def _net_error_kind(e: BaseException) -> str | None:
    """'timeout', 'connect' or 'offline' for network failures (of whichever HTTP library is in use)."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(e, OfflineModeIsEnabled):
        return "offline"
    for module, timeouts, connects in (
            ("httpx2", ("TimeoutException",), ("NetworkError", "RemoteProtocolError", "ProxyError")),
            ("httpx", ("TimeoutException",), ("NetworkError", "RemoteProtocolError", "ProxyError")),
            ("requests", ("Timeout",), ("ConnectionError",))):
        mod = sys.modules.get(module)
        if mod is None:
            continue
        if isinstance(e, tuple(getattr(mod, n) for n in timeouts if hasattr(mod, n))):
            return "timeout"
        if isinstance(e, tuple(getattr(mod, n) for n in connects if hasattr(mod, n))):
            return "connect"
    if isinstance(e, (TimeoutError,)):
        return "timeout"
    if isinstance(e, ConnectionError):
        return "connect"
    return None


def _status(e: BaseException) -> int | None:
    return getattr(getattr(e, "response", None), "status_code", None)


def _unreachable(e: BaseException) -> bool:
    """Failures where a copy verified earlier may stand in: no network, time-outs, server errors."""
    status = _status(e)
    return _net_error_kind(e) is not None or (status is not None and (status >= 500 or status == 429))


def hub_error(e: BaseException, loc: Location, action: str = "fetch") -> ZooError:
    """One clear ZooError for an exception raised by huggingface-hub (or its HTTP library)."""
    if isinstance(e, ZooError):
        return e
    from huggingface_hub import errors as E

    endpoint = _endpoint()
    status = _status(e)
    kind = _net_error_kind(e)
    if isinstance(e, E.LocalEntryNotFoundError) and e.__cause__ is not None and e.__cause__ is not e:
        return hub_error(e.__cause__, loc, action)
    if isinstance(e, E.GatedRepoError):
        return HubError(f"{loc.repo} on {endpoint} is gated: accept its conditions on its page first",
                        "Then log in (`hf auth login` or HF_TOKEN) and try again.")
    if isinstance(e, E.RepositoryNotFoundError):
        return HubError(f"repository {loc.repo} not found on {endpoint}",
                        "Check the name. A private repository needs a token: `hf auth login`, or set HF_TOKEN.")
    if isinstance(e, E.RevisionNotFoundError):
        return HubError(f"revision '{loc.revision or 'main'}' not found in {loc.repo} on {endpoint}",
                        "Check the branch, tag or commit; `zoo push` prints the commit of each push.")
    if isinstance(e, E.RemoteEntryNotFoundError):
        return HubError(f"a file of {loc} is missing on {endpoint} ({_first_line(e)})")
    if kind == "offline" or isinstance(e, E.LocalEntryNotFoundError):
        return HubError(f"cannot {action} {loc}: zoo is offline (HF_HUB_OFFLINE or ZOO_OFFLINE is set) "
                        "and it is not in the local cache",
                        f"Run `zoo pull {loc}` once with the network on; after that it loads offline.")
    if status is not None and status >= 500:
        return HubError(f"cannot {action} {loc}: the hub at {endpoint} answered with a server error ({status})",
                        "The hub is having trouble; try again later.")
    if status in (401, 403):
        return HubError(f"cannot {action} {loc}: not authorised by {endpoint} ({status})",
                        "Log in with `hf auth login` or set HF_TOKEN to a token with write access.")
    if status == 429:
        return HubError(f"cannot {action} {loc}: {endpoint} is rate-limiting requests (429)", "Try again later.")
    if status is not None:
        return HubError(f"cannot {action} {loc}: {endpoint} answered {status} ({_first_line(e)})")
    if kind == "timeout":
        return HubError(f"cannot {action} {loc}: the hub at {endpoint} did not answer within {_timeout():g} s",
                        "Check the network; HF_HUB_DOWNLOAD_TIMEOUT and HF_HUB_ETAG_TIMEOUT set the limit.")
    if kind == "connect":
        return HubError(f"cannot {action} {loc}: cannot reach the hub at {endpoint} ({_first_line(e)})",
                        "Check the network and HF_ENDPOINT; a copy pulled before loads with HF_HUB_OFFLINE=1.")
    if isinstance(e, OSError) and "Consistency check failed" in str(e):
        return HubError(f"cannot {action} {loc}: a download ended early ({_first_line(e)})",
                        "Nothing incomplete was kept; try again.")
    return HubError(f"cannot {action} {loc}: {type(e).__name__}: {_first_line(e)}")


def _hf_store(loc: Location) -> Path:
    """zoo's records for one repository of one endpoint: refs/REV -> commit, verified/COMMIT.json."""
    endpoint = re.sub(r"[^A-Za-z0-9.-]+", "_", re.sub(r"^https?://", "", _endpoint())).strip("_")
    return zoo_cache() / "hf" / endpoint / loc.repo.replace("/", "--")


def _hf_cached(hf, loc: Location, commit: str, *, strict: bool) -> Fetched | None:
    """The snapshot of `commit` verified earlier, re-checked; None if there is none (or, unless `strict`,
    if it no longer checks out). Strict: a changed file is an error."""
    manifest = _read_json(_hf_store(loc) / "verified" / f"{commit}.json")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return None
    folder = None
    for name in manifest["files"]:
        if not safe_name(name):
            return None
        found = hf.try_to_load_from_cache(loc.repo, name, revision=commit)
        if not isinstance(found, str) or not os.path.isfile(found):
            if name in MODEL_FILES:
                return None
            continue
        folder = Path(found).parent
        if name in MODEL_FILES and _sha256(Path(found)) != manifest["files"][name]:
            if strict:
                raise HubError(f"the cached {name} of {loc} (commit {commit[:12]}) changed after zoo verified it: "
                               "refusing it", f"Delete {found} and pull again with the network on.")
            return None
    if folder is None:
        return None
    return Fetched(folder, str(loc), dict(manifest["files"]), commit, cached=True)


def _hf_download(hf, loc: Location, name: str, commit: str) -> Path:
    try:
        return Path(hf.hf_hub_download(loc.repo, name, revision=commit, etag_timeout=_timeout(),
                                       library_name="zoo", library_version=_zoo_version()))
    except Exception as e:
        raise hub_error(e, loc) from None


def _evict(path: Path) -> None:
    """Remove a cached file: the snapshot link and the blob it points to."""
    target = path.resolve()
    for p in (path, target):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _matches_hub(path: Path, sibling) -> bool | None:
    lfs = getattr(sibling, "lfs", None)
    sha256 = lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)
    if sha256:
        return _sha256(path) == sha256
    blob = getattr(sibling, "blob_id", None)
    if blob:
        return _git_blob_sha1(path) == blob
    return None  # the hub listed no checksum


def _fetch_hf(loc: Location, log: Log) -> Fetched:
    hf = _hf()
    revision = loc.revision or "main"
    pinned = _COMMIT_RE.fullmatch(revision) is not None
    store = _hf_store(loc)
    ref_file = store / "refs" / quote(revision, safe="")
    if pinned:  # a commit never changes: a verified copy needs no network
        cached = _hf_cached(hf, loc, revision, strict=_offline())
        if cached is not None:
            return cached
    if _offline():
        commit = revision if pinned else (ref_file.read_text().strip() if ref_file.is_file() else None)
        cached = _hf_cached(hf, loc, commit, strict=True) if commit else None
        if cached is None:
            raise HubError(f"{loc} is not in the local cache and zoo is offline (HF_HUB_OFFLINE or ZOO_OFFLINE is set)",
                           f"Run `zoo pull {loc}` once with the network on; after that it loads offline.")
        return cached
    api = hf.HfApi(library_name="zoo", library_version=_zoo_version())
    try:
        info = api.model_info(loc.repo, revision=revision, files_metadata=True, timeout=_timeout())
    except Exception as e:
        error = hub_error(e, loc)
        if _unreachable(e):
            commit = revision if pinned else (ref_file.read_text().strip() if ref_file.is_file() else None)
            cached = _hf_cached(hf, loc, commit, strict=True) if commit else None
            if cached is not None:
                log(f"note: {error.message}; using the copy verified before (commit {commit[:12]})")
                return cached
        raise error from None
    commit = info.sha
    if not isinstance(commit, str) or not _COMMIT_RE.fullmatch(commit):
        raise HubError(f"{_endpoint()} gave no commit for {loc}: it does not look like a Hugging Face Hub")
    siblings = {s.rfilename: s for s in (info.siblings or [])}
    wanted = select_files(list(siblings), str(loc))
    files: dict[str, str] = {}
    folder = None
    had = all(isinstance(hf.try_to_load_from_cache(loc.repo, n, revision=commit), str) for n in wanted)
    for name in wanted:
        path = _hf_download(hf, loc, name, commit)
        if _matches_hub(path, siblings[name]) is False:  # a damaged copy: fetch it once more
            _evict(path)
            path = _hf_download(hf, loc, name, commit)
            if _matches_hub(path, siblings[name]) is False:
                _evict(path)
                raise HubError(f"{name} of {loc} does not match the checksum the hub lists for it "
                               f"(commit {commit[:12]}): refusing it",
                               "The download was damaged or the hub is inconsistent; nothing was kept. Try again.")
        files[name] = _sha256(path)
        folder = path.parent
    assert folder is not None
    _check_model_files(folder, str(loc))
    _write_json(store / "verified" / f"{commit}.json",
                {"location": str(loc), "endpoint": _endpoint(), "repo": loc.repo, "commit": commit,
                 "files": files, "verified": _now()})
    if not pinned:
        ref_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref_file.with_name(f".{ref_file.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(commit)
        os.replace(tmp, ref_file)
    return Fetched(folder, str(loc), files, commit, cached=had)


def _zoo_version() -> str:
    import zoo

    return zoo.__version__


# ---------------------------------------------------------------------------------------- folder hubs

def _slug(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fetch_folder(loc: Location, log: Log) -> Fetched:
    src = loc.path
    assert src is not None
    if not src.is_dir():
        raise HubError(f"no folder hub at {src}" if not src.exists() else f"{src} is not a folder",
                       "file:// locations name a folder written by `zoo push RUN file:///PATH`.")
    names = sorted(p.name for p in src.iterdir() if p.is_file())
    wanted = select_files(names, str(loc))
    stat = {n: [(src / n).stat().st_size, (src / n).stat().st_mtime_ns] for n in wanted}
    base = zoo_cache() / "file"
    prefix = _slug(str(src))
    for folder in sorted(base.glob(f"{prefix}-*")):  # a copy of this very version, made before
        manifest = _read_json(folder / PULLED_MANIFEST)
        if isinstance(manifest, dict) and manifest.get("stat") == stat and all(
                (folder / n).is_file() and _sha256(folder / n) == manifest["files"].get(n) for n in MODEL_FILES):
            return Fetched(folder, str(loc), dict(manifest["files"]), cached=True)
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        files = {}
        for name in wanted:
            try:
                shutil.copyfile(src / name, tmp / name)
            except OSError as e:
                raise HubError(f"cannot read {src / name}: {e.strerror or e}") from None
            files[name] = _sha256(tmp / name)
        _check_model_files(tmp, str(loc))
        key = _slug(json.dumps(files, sort_keys=True))
        final = base / f"{prefix}-{key}"
        _write_json(tmp / PULLED_MANIFEST, {"location": str(loc), "files": files, "stat": stat, "pulled": _now()})
        if final.exists():
            _write_json(final / PULLED_MANIFEST, {"location": str(loc), "files": files, "stat": stat,
                                                   "pulled": _now()})
        else:
            try:
                os.rename(tmp, final)
            except OSError:  # another process made the same copy first
                pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for name in MODEL_FILES:
        if _sha256(final / name) != files[name]:
            raise HubError(f"the cached copy of {loc} at {final} is damaged", f"Delete {final} and try again.")
    return Fetched(final, str(loc), files)


# ---------------------------------------------------------------------------------------- pull / resolve

def fetch(source: str, *, log: Log = to_stderr) -> Fetched:
    """A verified local copy of hf://… or file://… (downloaded or copied only when needed)."""
    loc = parse(source)
    return _fetch_hf(loc, log) if loc.kind == "hf" else _fetch_folder(loc, log)


def _bundled_folder(name: str, entry: dict) -> Path | None:
    if not entry.get("path"):
        return None
    return registry.weights_folder(name)


def pull(source: str, *, log: Log = to_stderr) -> dict[str, Any]:
    """Fetch hf://…, file://… or a catalogued name into the cache (or find it bundled), verify it, and
    say where it is: {"folder", "location", "name", "commit", "files" (sha256s), "how"}."""
    if is_hub_source(source):
        got = fetch(source, log=log)
        return {"folder": str(got.folder), "location": got.location, "name": None, "commit": got.commit,
                "files": got.files, "how": "cached" if got.cached else "fetched"}
    entries = registry.weights()
    if source not in entries:
        close = difflib.get_close_matches(source, list(entries), n=3, cutoff=0.5)
        hint = (f"Did you mean: {', '.join(close)}? " if close else "") + \
            "`zoo pretrained` lists the catalogued names; a hub location is hf://ORG/NAME or file:///PATH."
        raise HubError(f"'{source}' is not a catalogued name or a hub location", hint)
    entry = entries[source]
    expected = entry.get("sha256")
    bundled = _bundled_folder(source, entry)
    if bundled is not None and (bundled.is_dir() or not entry.get("hub")):
        weights = bundled / WEIGHTS
        if not weights.is_file():
            raise HubError(f"the weights of '{source}' are missing ({weights})", "Reinstall zoo.")
        digest = _sha256(weights)
        _verify_catalogued(digest, expected, source, str(bundled))
        check_safetensors(weights, str(bundled))
        return {"folder": str(bundled), "location": str(bundled), "name": source, "commit": None,
                "files": {WEIGHTS: digest}, "how": "bundled"}
    if not entry.get("hub"):
        raise HubError(f"'{source}' has neither bundled weights nor a hub location in registry.toml",
                       "Its entry needs `path` (bundled) or `hub` (hf://ORG/NAME@REVISION or file:///PATH).")
    if not is_hub_source(entry["hub"]):
        raise HubError(f"registry.toml gives '{source}' the hub location '{entry['hub']}', which is not one",
                       "Use hf://ORG/NAME@REVISION or file:///PATH.")
    got = fetch(entry["hub"], log=log)
    _verify_catalogued(got.files[WEIGHTS], expected, source, got.location)
    return {"folder": str(got.folder), "location": got.location, "name": source, "commit": got.commit,
            "files": got.files, "how": "cached" if got.cached else "fetched"}


def resolve(source: str, *, log: Log = to_stderr) -> Path:
    """The local, verified folder of hf://…, file://… or a catalogued name (see `pull`)."""
    return Path(pull(source, log=log)["folder"])


# ---------------------------------------------------------------------------------------- catalogue

def catalogue_info(name: str) -> dict[str, Any]:
    """What registry.toml says about pretrained weights `name`, and where they are now (no network)."""
    entries = registry.weights()
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
        raise HubError(f"no pretrained weights named '{name}'",
                       (f"Did you mean: {', '.join(close)}? " if close else "") + "`zoo pretrained` lists them.")
    entry = entries[name]
    bundled = _bundled_folder(name, entry)
    cached = _cached_folder(entry.get("hub")) if entry.get("hub") else None
    if bundled is not None and (bundled / WEIGHTS).is_file():
        where = "bundled"
    elif cached is not None:
        where = "cached"
    elif entry.get("hub"):
        where = "hub"
    else:
        where = "missing"
    return {"name": name, "model": entry.get("model"), "dataset": entry.get("dataset"),
            "description": entry.get("description", ""), "metrics": dict(entry.get("metrics", {})),
            "command": entry.get("command"), "sha256": entry.get("sha256"), "hub": entry.get("hub"),
            "bundled": str(bundled) if bundled is not None else None,
            "cached": str(cached) if cached is not None else None, "available": where,
            "extra": {k: v for k, v in entry.items() if k not in (
                "model", "dataset", "description", "metrics", "command", "sha256", "hub", "path")}}


def catalogue(model: str | None = None) -> list[dict[str, Any]]:
    """`catalogue_info` of every catalogued name (of one model's, if given)."""
    return [catalogue_info(n) for n in sorted(registry.weights(model))]


def _cached_folder(hub: str) -> Path | None:
    """The verified local copy of a hub location, if there is one (no network, no hashing)."""
    try:
        loc = parse(hub)
    except HubError:
        return None
    if loc.kind == "file":
        copies = sorted((zoo_cache() / "file").glob(f"{_slug(str(loc.path))}-*"),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        return copies[0] if copies else None
    revision = loc.revision or "main"
    store = _hf_store(loc)
    commit = revision if _COMMIT_RE.fullmatch(revision) else None
    ref = store / "refs" / quote(revision, safe="")
    if commit is None and ref.is_file():
        commit = ref.read_text().strip()
    manifest = _read_json(store / "verified" / f"{commit}.json") if commit else None
    if not isinstance(manifest, dict):
        return None
    hf = _hf()
    found = [hf.try_to_load_from_cache(loc.repo, n, revision=commit) for n in MODEL_FILES]
    return Path(found[0]).parent if all(isinstance(f, str) for f in found) else None


# ---------------------------------------------------------------------------------------- push

@dataclasses.dataclass
class Pushed:
    location: str          # where it can be loaded from (pinned to the commit on the Hugging Face Hub)
    files: list[str]
    commit: str | None = None
    url: str | None = None


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
    rows = []
    try:
        for line in (run_dir / "metrics.jsonl").read_text().splitlines():
            if line.strip():
                rows.append(json.loads(line))
    except (OSError, ValueError):
        return None
    if not rows:
        return None
    best = [r for r in rows if r.get("best")]
    row = best[-1] if best else rows[-1]
    keep = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and k not in ("lr", "images_per_s", "seconds")}
    return {"best_epoch": row.get("epoch"), "epochs": rows[-1].get("epoch"), "metrics": keep}


def model_card(run_dir: Path, location: str) -> str:
    """The README.md pushed with a run: zoo's model card, addressed to `location`, plus the metrics
    measured during training (in the YAML metadata and the body)."""
    from zoo.modelcard import render_card

    run = check_config(run_dir / CONFIG, str(run_dir))
    eval_path = run_dir / "eval.json"
    eval_result = _read_json(eval_path) if eval_path.is_file() else None
    images = [p for p in IMAGES if (run_dir / p).is_file()]
    card = render_card(run, eval_result if isinstance(eval_result, dict) else None, images, location)
    summary = _training_summary(run_dir)
    plugin = run.get("plugin", {})
    plugin_text = f"{plugin.get('package', 'zoo')} {plugin.get('version', '')}".strip()
    meta = ["zoo:", f"  model: {json.dumps(run['model'])}", f"  plugin: {json.dumps(plugin_text)}",
            f"  zoo_version: {json.dumps(str(run.get('zoo_version', '')))}"]
    body = ["## Get it", "", "```", f"zoo pull {location}", f"zoo info {run['model']}", "```", ""]
    if summary:
        meta.append(f"  training: {{best_epoch: {summary['best_epoch']}, epochs: {summary['epochs']}}}")
        if summary["metrics"]:
            meta.append("  training_metrics:")
            meta += [f"    {k}: {v:.6g}" for k, v in summary["metrics"].items() if k != "epoch"]
        body += [f"## Training metrics (best epoch {summary['best_epoch']} of {summary['epochs']})", "",
                 "| metric | value |", "| --- | --- |"]
        body += [f"| {k} | {v:.5g} |" for k, v in summary["metrics"].items() if k != "epoch"]
        body.append("")
    head, sep, rest = card.partition("\n---\n")  # the closing line of the YAML front matter
    if not sep:
        return card + "\n" + "\n".join(body)
    marker = "## Training configuration"
    rest = rest.replace(marker, "\n".join(body) + "\n" + marker, 1) if marker in rest else rest + "\n".join(body)
    return head + "\n" + "\n".join(meta) + sep + rest


def _push_files(run_dir: Path, location: str) -> dict[str, Path | bytes]:
    for name in MODEL_FILES:
        if not (run_dir / name).is_file():
            raise HubError(f"{run_dir} has no {name}: nothing to push",
                           "Push a finished run folder (one written by `zoo train`).")
    check_config(run_dir / CONFIG, str(run_dir))
    check_safetensors(run_dir / WEIGHTS, str(run_dir))
    files: dict[str, Path | bytes] = {CONFIG: run_dir / CONFIG, WEIGHTS: run_dir / WEIGHTS,
                                      CARD: model_card(run_dir, location).encode()}
    for image in IMAGES:
        if (run_dir / image).is_file():
            files[image] = run_dir / image
    return files


def push(run: str | Path, destination: str, *, private: bool = False, revision: str | None = None,
         message: str | None = None, log: Log = to_stderr) -> Pushed:
    """Publish a run folder (config.json, model.safetensors, a model card, its pictures) to
    hf://ORG/NAME (a commit on `revision`, default main; the repository is created if needed, private if
    asked) or to a folder hub file:///PATH (replaced as a whole, atomically)."""
    loc = parse(destination)
    if loc.kind == "hf" and loc.revision and revision and loc.revision != revision:
        raise HubError(f"two revisions given: @{loc.revision} and --revision {revision}")
    revision = revision or loc.revision
    run_dir = _run_folder(run, log)
    if loc.kind == "file":
        if revision:
            raise HubError("a folder hub keeps one version: --revision is for hf:// locations")
        files = _push_files(run_dir, str(loc))
        _push_folder(loc.path, files)
        return Pushed(str(loc), sorted(files))
    base = f"{HF_SCHEME}{loc.repo}"
    files = _push_files(run_dir, base)
    if os.environ.get("ZOO_OFFLINE", "") not in ("", "0"):
        raise HubError(f"cannot push to {base}: zoo is offline (ZOO_OFFLINE is set)")
    hf = _hf()
    api = hf.HfApi(library_name="zoo", library_version=_zoo_version())
    branch = revision or "main"
    if _COMMIT_RE.fullmatch(branch):
        raise HubError(f"cannot push onto commit {branch}: push to a branch (--revision NAME)")
    run = check_config(run_dir / CONFIG, str(run_dir))
    summary = message or f"zoo push: {run['model']} trained on {run.get('data', {}).get('name', '?')} ({run_dir.name})"
    try:
        api.create_repo(loc.repo, private=True if private else None, exist_ok=True)
        if branch != "main":
            api.create_branch(loc.repo, branch=branch, exist_ok=True)
        operations = [hf.CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(v) if isinstance(v, Path) else v)
                      for name, v in files.items()]
        info = api.create_commit(loc.repo, operations, commit_message=summary, revision=branch)
    except Exception as e:
        raise hub_error(e, Location("hf", loc.repo, branch), action="push to") from None
    commit = getattr(info, "oid", None)
    return Pushed(f"{base}@{commit}" if commit else f"{base}@{branch}", sorted(files), commit,
                  getattr(info, "commit_url", None))


def _push_folder(dest: Path, files: dict[str, Path | bytes]) -> None:
    """Write the files into a new folder beside `dest`, then swap it in: readers see the old or the new
    version, never a mixture or a half-written file."""
    if dest.exists() and not dest.is_dir():
        raise HubError(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / CONFIG).is_file():
        raise HubError(f"{dest} is a folder that is not a zoo model: refusing to replace it",
                       "Push to a new or empty folder, or to one an earlier `zoo push` wrote.")
    parent = dest.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as e:
        raise HubError(f"cannot write to {parent}: {e.strerror or e}") from None
    try:
        for name, value in files.items():
            with open(tmp / name, "wb") as fh:
                if isinstance(value, Path):
                    with open(value, "rb") as src:
                        shutil.copyfileobj(src, fh, 1 << 20)
                else:
                    fh.write(value)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp / name, 0o644)
        os.chmod(tmp, 0o755)
        if dest.is_dir():
            old = parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(dest, old)
            try:
                os.rename(tmp, dest)
            except OSError:
                os.rename(old, dest)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dest)
    except OSError as e:
        raise HubError(f"cannot write to {dest}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
