"""Hub locations: hf://ORG/NAME[@REVISION] and file:///PATH, parsed; the hub's error type, and one clear message for
each way a request to the Hugging Face Hub can fail (hub_error)."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import urllib.parse
from urllib.parse import urlsplit
from pathlib import Path
from typing import Any, Callable

from zoo.errors import ZooError

HF_SCHEME = "hf://"
FILE_SCHEME = "file://"

_REPO_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_REVISION_RE = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._/-]{0,199}")
COMMIT_RE = re.compile(r"[0-9a-f]{40}")

Log = Callable[[str], None]


class HubError(ZooError):
    """A hub location is malformed, unreachable, missing, or offers something zoo will not load."""


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
        return self.path.as_uri()  # percent-encoded as parse() decodes it: a "%" or "@" in a name round-trips


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
        # A file URI percent-encodes (Path.as_uri(), a browser's address bar): file:///a%20b is the folder "a b"
        rest = urllib.parse.unquote(rest)
        if "\x00" in rest:
            raise HubError(f"'{source}' names a folder with a NUL character in it, which no file system allows")
        # normalised (a/../b: b), so that one folder is one cached copy and one outputs folder however it is spelled
        return Location("file", path=Path(os.path.abspath(os.path.expanduser(rest))))
    raise HubError(f"'{source}' is not a hub location", "Use hf://ORG/NAME[@REVISION] or file:///PATH.")


# ------------------------------------------------------------------ the Hugging Face Hub's failures

def timeout_seconds() -> float:
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        return float(constants.HF_HUB_DOWNLOAD_TIMEOUT)
    return float(os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT") or 10)


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def first_line(e: BaseException) -> str:
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


def unreachable(e: BaseException) -> bool:
    """Failures where a copy verified earlier may stand in: no network, time-outs, server errors."""
    status = _status(e)
    return _net_error_kind(e) is not None or (status is not None and (status >= 500 or status == 429))


def hub_error(e: BaseException, loc: Location, action: str = "fetch") -> ZooError:
    """One clear ZooError for an exception raised by huggingface-hub (or its HTTP library)."""
    if isinstance(e, ZooError):
        return e
    from huggingface_hub import errors as E

    endpoint = hub_endpoint()
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
        return HubError(f"a file of {loc} is missing on {endpoint} ({first_line(e)})")
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
                        "Log in with `hf auth login` or set HF_TOKEN to a token with "
                        + ("write access." if action == "push to" else "read access to it."))
    if status == 429:
        return HubError(f"cannot {action} {loc}: {endpoint} is rate-limiting requests (429)", "Try again later.")
    if status is not None:  # a 404 the hub did not explain (no X-Error-Code): a proxy's, or a wrong address
        return HubError(f"cannot {action} {loc}: {endpoint} answered {status} ({first_line(e)})",
                        "Check HF_ENDPOINT (the hub's address) and the repository's name." if status == 404 else None)
    host = _failed_host(e)
    if kind in ("timeout", "connect") and host not in (None, urlsplit(endpoint).netloc):  # where it redirected
        what = (f"did not answer within {timeout_seconds():g} s" if kind == "timeout"
                else f"cannot be reached ({first_line(e)})")
        return HubError(f"cannot {action} {loc}: {host}, where the hub at {endpoint} sends its downloads, {what}",
                        f"The hub answered, but this machine cannot download from {host}: check the network (a "
                        "firewall or proxy may block it); a copy pulled before loads with HF_HUB_OFFLINE=1.")
    if kind == "timeout":
        return HubError(f"cannot {action} {loc}: the hub at {endpoint} did not answer within {timeout_seconds():g} s",
                        "Check the network; HF_HUB_DOWNLOAD_TIMEOUT and HF_HUB_ETAG_TIMEOUT set the limit.")
    if kind == "connect":
        return HubError(f"cannot {action} {loc}: cannot reach the hub at {endpoint} ({first_line(e)})",
                        "Check the network and HF_ENDPOINT; a copy pulled before loads with HF_HUB_OFFLINE=1.")
    if isinstance(e, OSError) and "Consistency check failed" in str(e):
        return HubError(f"cannot {action} {loc}: a download ended early ({first_line(e)})",
                        "Nothing incomplete was kept; try again.")
    return HubError(f"cannot {action} {loc}: {type(e).__name__}: {first_line(e)}")


def _failed_host(e: BaseException | None) -> str | None:
    """The host (host:port) of the request that failed, from the exception or one it was raised from."""
    for _ in range(8):
        if e is None:
            return None
        try:
            url = getattr(e, "url", None) or e.request.url  # (httpx's raises RuntimeError where it has none)
        except (AttributeError, RuntimeError):
            url = None
        if url is not None:
            return urlsplit(str(url)).netloc or None
        e = e.__cause__ or e.__context__
    return None
