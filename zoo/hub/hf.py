"""The Hugging Face Hub through huggingface-hub: verified downloads of a repository's files, pinned to a
commit, with time limits, and one clear message for each way a request can fail."""

from __future__ import annotations

import contextvars
import os
import re
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import zoo
from zoo import environment
from zoo.caches import zoo_cache
from zoo.errors import ZooError
from zoo.hub import limits, temps
from zoo.hub.cache import Fetched, cache_error, now, offline, read_json, write_json
from zoo.hub.files import (
    CONFIG,
    MODEL_FILES,
    check_config,
    check_model_files,
    git_blob_sha1,
    safe_name,
    select_files,
)
from zoo.hub.locations import COMMIT_RE, HubError, Location, Log
from zoo.runs.files import file_sha256

_TIMEOUTS_BOUND = False
# While zoo downloads one file: (the most bytes it may take, the HubError to raise past that).
_DOWNLOAD_CAP: contextvars.ContextVar[tuple[int, HubError] | None] = contextvars.ContextVar(
    "zoo_download_cap", default=None)


def import_hf():
    """huggingface_hub, imported on first use, with a time limit on every request and a cap on the
    bytes of every download.

    Some of its calls pass no time-out (timeout=None); unless the user installed their own client
    factory, zoo installs one whose requests without a limit get HF_HUB_DOWNLOAD_TIMEOUT seconds, and
    whose downloads stop at the file's cap (zoo.hub.limits) whatever size the server announced."""
    global _TIMEOUTS_BOUND
    environment.check_hf_timeouts()  # read on its import, where a value it cannot read fails with a traceback
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
            # Every wait at most the limit: huggingface-hub retries a metadata request that timed out with 60 s
            # (and five more tries), which a hub that stalls mid-pull would hold for minutes.
            given = dict(request.extensions.get("timeout") or {})
            request.extensions = {**request.extensions, "timeout": {
                k: min(given[k], seconds) if given.get(k) is not None else seconds
                for k in ("connect", "read", "write", "pool")}}
            cap = _DOWNLOAD_CAP.get() if request.method == "GET" else None
            if cap is not None:
                request.headers["Accept-Encoding"] = "identity"  # the bytes counted are the bytes kept
            try:
                response = self.inner.handle_request(request)
            except httpx2.TimeoutException as e:  # ended here, not tried again (it retries its own errors)
                raise Stalled(f"{request.method} {request.url} had no answer within {seconds:g} s") from e
            if cap is not None:
                response.stream = CappedStream(response, *cap)
            return response

        def close(self):
            self.inner.close()

    class CappedStream(httpx2.SyncByteStream):
        """A response body that raises its HubError past `limit` bytes, before reading any further."""

        def __init__(self, response, limit, error):
            self.inner, self.limit, self.error = response.stream, limit, error
            length = response.headers.get("Content-Length", "")
            encoding = response.headers.get("Content-Encoding", "identity").lower()
            self.refuse = (length.isdigit() and int(length) > limit) or encoding not in ("", "identity")

        def __iter__(self):
            if self.refuse:  # announced too large, or compressed (its size on disk unknown)
                raise self.error
            total = 0
            for chunk in self.inner:
                total += len(chunk)
                if total > self.limit:
                    raise self.error
                yield chunk

        def close(self):
            self.inner.close()

    def factory():
        default = _http.default_client_factory()
        hooks = default.event_hooks
        default.close()
        return httpx2.Client(event_hooks=hooks, follow_redirects=True, timeout=None,
                             transport=BoundedTransport(httpx2.HTTPTransport()))

    hf.set_client_factory(factory)


class Stalled(TimeoutError):
    """A request to the hub that timed out: said at once as a time-out (see _bound_timeouts)."""


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
        return HubError(f"cannot {action} {loc}: zoo is offline (HF_HUB_OFFLINE or ZOO_OFFLINE is on) "
                        "and it is not in the local cache",
                        f"Unset ZOO_OFFLINE and HF_HUB_OFFLINE and run `zoo pull {loc}` once with the network "
                        "on; after that it loads offline.")
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


def hf_store(loc: Location) -> Path:
    """zoo's records for one repository of one endpoint: refs/REV -> commit, verified/COMMIT.json."""
    endpoint = re.sub(r"[^A-Za-z0-9.-]+", "_", re.sub(r"^https?://", "", _endpoint())).strip("_")
    return zoo_cache() / "hf" / endpoint / loc.repo.replace("/", "--")


def _hf_cached(hf, loc: Location, commit: str, *, strict: bool) -> Fetched | None:
    """The snapshot of `commit` verified earlier, re-checked; None if there is none (or, unless `strict`,
    if it no longer checks out). Strict: a changed file is an error."""
    manifest = read_json(hf_store(loc) / "verified" / f"{commit}.json")
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
        if name in MODEL_FILES and file_sha256(Path(found)) != manifest["files"][name]:
            if strict:
                raise HubError(f"the cached {name} of {loc} (commit {commit[:12]}) changed after zoo verified it: "
                               "refusing it", f"Delete {found} and pull again with the network on.")
            return None
    if folder is None:
        return None
    return Fetched(folder, str(loc), dict(manifest["files"]), commit, cached=True)


def _hf_download(hf, loc: Location, name: str, commit: str, cap: limits.Cap) -> Path:
    token = _DOWNLOAD_CAP.set((cap.limit, limits.too_big(name, None, cap, str(loc))))
    try:
        return Path(hf.hf_hub_download(loc.repo, name, revision=commit, etag_timeout=_timeout(),
                                       library_name="zoo", library_version=zoo_version()))
    except Exception as e:
        raise hub_error(e, loc) from None
    finally:
        _DOWNLOAD_CAP.reset(token)


def _download_checked(hf, loc: Location, name: str, commit: str, sibling, cap: limits.Cap) -> Path:
    """One file of `commit`, within its cap, matching the checksum the hub lists (fetched once more if not)."""
    path = _hf_download(hf, loc, name, commit, cap)
    if _matches_hub(path, sibling) is False:  # a damaged copy: fetch it once more
        _evict(path)
        path = _hf_download(hf, loc, name, commit, cap)
        if _matches_hub(path, sibling) is False:
            _evict(path)
            raise HubError(f"{name} of {loc} does not match the checksum the hub lists for it "
                           f"(commit {commit[:12]}): refusing it",
                           "The download was damaged or the hub is inconsistent; nothing was kept. Try again.")
    return path


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
        return file_sha256(path) == sha256
    blob = getattr(sibling, "blob_id", None)
    if blob:
        return git_blob_sha1(path) == blob
    return None  # the hub listed no checksum


def fetch_hf(loc: Location, log: Log) -> Fetched:
    hf = import_hf()
    revision = loc.revision or "main"
    pinned = COMMIT_RE.fullmatch(revision) is not None
    store = hf_store(loc)
    ref_file = store / "refs" / quote(revision, safe="")
    for records in ("refs", "verified"):
        temps.sweep(store / records, ".*.tmp")  # left by a process killed while writing a record
    if pinned:  # a commit never changes: a verified copy needs no network
        cached = _hf_cached(hf, loc, revision, strict=offline())
        if cached is not None:
            return cached
    if offline():
        commit = revision if pinned else (ref_file.read_text().strip() if ref_file.is_file() else None)
        cached = _hf_cached(hf, loc, commit, strict=True) if commit else None
        if cached is None:
            raise HubError(f"{loc} is not in the local cache and zoo is offline (HF_HUB_OFFLINE or ZOO_OFFLINE is on)",
                           f"Unset ZOO_OFFLINE and HF_HUB_OFFLINE and run `zoo pull {loc}` once with the network "
                        "on; after that it loads offline.")
        return cached
    api = hf.HfApi(library_name="zoo", library_version=zoo_version())
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
    if not isinstance(commit, str) or not COMMIT_RE.fullmatch(commit):
        raise HubError(f"{_endpoint()} gave no commit for {loc}: it does not look like a Hugging Face Hub")
    siblings = {s.rfilename: s for s in (info.siblings or [])}
    wanted = select_files(list(siblings), str(loc))
    assert wanted[0] == CONFIG  # fetched first: the model it describes sizes the weights' cap
    before = {n: isinstance(hf.try_to_load_from_cache(loc.repo, n, revision=commit), str) for n in wanted}
    files: dict[str, str] = {}
    folder = None
    run = None
    for name in wanted:
        cap = limits.cap(name, run)
        if not limits.admit(name, getattr(siblings[name], "size", None), cap, str(loc), log):
            continue  # over its listed size: never requested
        try:
            path = _download_checked(hf, loc, name, commit, siblings[name], cap)
        except limits.TooBig as e:  # larger than it was listed: stopped at its cap
            limits.skip(name, e, log)
            continue
        files[name] = file_sha256(path)
        folder = path.parent
        if name == CONFIG:
            run = check_config(path, str(loc))
    assert folder is not None
    check_model_files(folder, str(loc))
    try:
        _record(store, loc, commit, files, None if pinned else ref_file)
    except OSError as e:
        raise cache_error(e, store) from None
    return Fetched(folder, str(loc), files, commit, cached=all(before[n] for n in files))


def _record(store: Path, loc: Location, commit: str, files: dict[str, str], ref_file: Path | None) -> None:
    """Record `commit` as verified (with its files' sha256s), and where a branch or tag points now."""
    write_json(store / "verified" / f"{commit}.json",
               {"location": str(loc), "endpoint": _endpoint(), "repo": loc.repo, "commit": commit,
                "files": files, "verified": now()})
    if ref_file is not None:
        ref_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref_file.with_name(f".{ref_file.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(commit)
        os.replace(tmp, ref_file)


def zoo_version() -> str:
    return zoo.__version__
