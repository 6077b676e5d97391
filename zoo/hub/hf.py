"""The Hugging Face Hub through huggingface-hub: verified downloads of a repository's files, pinned to a
commit, with time limits, and one clear message for each way a request can fail."""

from __future__ import annotations

import contextvars
import os
import re
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

import zoo
from zoo import environment
from zoo.caches import zoo_cache
from zoo.errors import ConfigError, RunError
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
from zoo.hub.locations import (  # noqa: F401 (hub_error: zoo.hub.hf.hub_error, as before)
    COMMIT_RE, HubError, Location, Log, first_line, hub_endpoint, hub_error, timeout_seconds, unreachable)
from zoo.runs import checkpoint
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
    _check_endpoint()  # likewise
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


def _check_endpoint() -> None:
    """HF_ENDPOINT as huggingface-hub parses it on import (a port out of range, a broken IPv6 address: a traceback)."""
    value = os.environ.get("HF_ENDPOINT", "").strip()
    if not value:
        return
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port it cannot read
        problem = None if parts.scheme in ("http", "https") and parts.hostname else "not an http(s) address"
    except ValueError as e:
        problem = str(e)
    if problem:
        raise ConfigError(f"HF_ENDPOINT={value!r} is not the address of a hub ({problem})",
                          "Set it to one, e.g. HF_ENDPOINT=https://huggingface.co, or unset it.")


def _bound_timeouts(hf) -> None:
    import httpx2
    from huggingface_hub.utils import _http

    if getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) is not getattr(_http, "default_client_factory", object()):
        return  # the user's own client: leave it alone
    seconds = timeout_seconds()

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
                raise Stalled(f"{request.method} {request.url} had no answer within {seconds:g} s", request.url) from e
            except httpx2.ConnectError as e:  # a file's host (where the hub redirects: a CDN) refuses: said once
                if cap is None:  # (not tried five more times, logging each); other requests as huggingface-hub does
                    raise
                raise Unreachable(f"{request.method} {request.url}: {first_line(e)}", request.url) from e
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

    def __init__(self, message: str, url=None):
        super().__init__(message)
        self.url = url


class Unreachable(ConnectionError):
    """A file's download whose host refused the connection: said at once, naming that host (see _bound_timeouts)."""

    def __init__(self, message: str, url=None):
        super().__init__(message)
        self.url = url


def hf_store(loc: Location) -> Path:
    """zoo's records for one repository of one endpoint: refs/REV -> commit, verified/COMMIT.json."""
    endpoint = re.sub(r"[^A-Za-z0-9.-]+", "_", re.sub(r"^https?://", "", hub_endpoint())).strip("_")
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
    unverified = manifest.get("unverified")  # (older records: none; they were all checked against the hub's)
    unverified = [n for n in unverified if n in manifest["files"]] if isinstance(unverified, list) else []
    return Fetched(folder, str(loc), dict(manifest["files"]), commit, cached=True, unverified=unverified)


def _hf_download(hf, loc: Location, name: str, commit: str, cap: limits.Cap) -> Path:
    token = _DOWNLOAD_CAP.set((cap.limit, limits.too_big(name, None, cap, str(loc))))
    try:
        return Path(hf.hf_hub_download(loc.repo, name, revision=commit, etag_timeout=timeout_seconds(),
                                       library_name="zoo", library_version=zoo_version()))
    except Exception as e:
        raise hub_error(e, loc) from None
    finally:
        _DOWNLOAD_CAP.reset(token)


def download(hf, loc: Location, name: str, commit: str) -> Path:
    """One file of `commit` into huggingface-hub's cache, within its cap (zoo.hub.limits), not checked."""
    return _hf_download(hf, loc, name, commit, limits.cap(name))


def _download_checked(hf, loc: Location, name: str, commit: str, sibling, cap: limits.Cap) -> tuple[Path, bool, bool]:
    """One file of `commit`, within its cap, matching the checksum the hub lists, or where it lists none, the one
    zoo records in the safetensors it writes (fetched once more if not); with whether it was checked against one,
    and whether it was fetched again (a damaged copy in the cache, or a damaged download)."""
    path = _hf_download(hf, loc, name, commit, cap)
    matches = _matches(path, sibling)
    if matches is False:  # a damaged copy: fetch it once more
        _evict(path)
        path = _hf_download(hf, loc, name, commit, cap)
        matches = _matches(path, sibling)
        if matches is False:
            _evict(path)
            what = ("is not intact (truncated, or not the tensors whose checksum zoo recorded in it; the hub "
                    "lists none)" if _listed(sibling) is None else "does not match the checksum the hub lists for it")
            raise HubError(f"{name} of {loc} {what} (commit {commit[:12]}): refusing it",
                           "The download was damaged or the hub is inconsistent; nothing was kept. Try again.")
        return path, True, True
    return path, matches is True, False


def _evict(path: Path) -> None:
    """Remove a cached file: the snapshot link and the blob it points to."""
    target = path.resolve()
    for p in (path, target):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _listed(sibling) -> tuple[str, str] | None:
    """The checksum the hub lists for a file: ("sha256", …) for LFS files, ("blob", git blob id), or None."""
    lfs = getattr(sibling, "lfs", None)
    sha256 = lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)
    if sha256:
        return "sha256", sha256
    blob = getattr(sibling, "blob_id", None)
    return ("blob", blob) if blob else None


def _matches(path: Path, sibling) -> bool | None:
    """Whether the file matches the checksum the hub lists for it, or (a hub that lists none: a mirror, a proxy)
    the one zoo records in every safetensors it writes; None where there is neither (it was not checked)."""
    listed = _listed(sibling)
    if listed is not None:
        return (file_sha256(path) if listed[0] == "sha256" else git_blob_sha1(path)) == listed[1]
    if not path.name.endswith(".safetensors"):
        return None
    try:
        _, meta = checkpoint.load_tensors(path)
    except RunError:  # truncated, or not the tensors its recorded checksum says
        return False
    return True if meta.get(checkpoint.DIGEST_KEY) else None


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
        info = api.model_info(loc.repo, revision=revision, files_metadata=True, timeout=timeout_seconds())
    except Exception as e:
        error = hub_error(e, loc)
        if unreachable(e):
            commit = revision if pinned else (ref_file.read_text().strip() if ref_file.is_file() else None)
            cached = _hf_cached(hf, loc, commit, strict=True) if commit else None
            if cached is not None:
                log(f"note: {error.message}; using the copy verified before (commit {commit[:12]})")
                return cached
        raise error from None
    commit = info.sha
    if not isinstance(commit, str) or not COMMIT_RE.fullmatch(commit):
        raise HubError(f"{hub_endpoint()} gave no commit for {loc}: it does not look like a Hugging Face Hub")
    siblings = {s.rfilename: s for s in (info.siblings or [])}
    wanted = select_files(list(siblings), str(loc))
    assert wanted[0] == CONFIG  # fetched first: the model it describes sizes the weights' cap
    before = {n: isinstance(hf.try_to_load_from_cache(loc.repo, n, revision=commit), str) for n in wanted}
    files: dict[str, str] = {}
    unchecked: list[str] = []  # where the hub lists no checksum (a mirror, a proxy), and the file records none
    folder = None
    run = None
    for name in wanted:
        cap = limits.cap(name, run)
        if not limits.admit(name, getattr(siblings[name], "size", None), cap, str(loc), log):
            continue  # over its listed size: never requested
        try:
            path, checked, again = _download_checked(hf, loc, name, commit, siblings[name], cap)
        except limits.TooBig as e:  # larger than it was listed: stopped at its cap
            limits.skip(name, e, log)
            continue
        before[name] = before[name] and not again
        if not checked:
            unchecked.append(name)
        files[name] = file_sha256(path)
        folder = path.parent
        if name == CONFIG:
            run = check_config(path, str(loc))
    assert folder is not None
    check_model_files(folder, str(loc))
    if unchecked:
        log(f"note: {hub_endpoint()} lists no checksums for the files of {loc}: {', '.join(sorted(unchecked))} "
            f"{'was' if len(unchecked) == 1 else 'were'} not verified (the Hugging Face Hub lists one for each file; "
            "check HF_ENDPOINT, or pull from a hub that does)")
    try:
        _record(store, loc, commit, files, unchecked, None if pinned else ref_file)
    except OSError as e:
        raise cache_error(e, store) from None
    return Fetched(folder, str(loc), files, commit, cached=all(before[n] for n in files), unverified=unchecked)


def _record(store: Path, loc: Location, commit: str, files: dict[str, str], unverified: list[str],
            ref_file: Path | None) -> None:
    """Record `commit` as fetched (with its files' sha256s, and which of them nothing was checked against), and
    where a branch or tag points now."""
    write_json(store / "verified" / f"{commit}.json",
               {"location": str(loc), "endpoint": hub_endpoint(), "repo": loc.repo, "commit": commit,
                "files": files, "unverified": unverified, "verified": now()})
    if ref_file is not None:
        ref_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref_file.with_name(f".{ref_file.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(commit)
        os.replace(tmp, ref_file)


def zoo_version() -> str:
    return zoo.__version__
