"""Hub locations: hf://ORG/NAME[@REVISION] and file:///PATH, parsed; the hub's error type."""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
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
