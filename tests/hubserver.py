"""A small Hugging Face Hub-compatible server for tests, on 127.0.0.1 at a free port, in a thread.

It answers the requests huggingface-hub's real client makes for `create_repo`, `create_branch`,
`create_commit` / `upload_folder` (every file is uploaded "regular": base64 in the NDJSON commit, no
LFS), `model_info` / `repo_info` (with files metadata), `list_repo_tree`, and `hf_hub_download` /
`snapshot_download` (HEAD and GET on /resolve/ with X-Repo-Commit, ETag and Content-Length), with the
error codes the client maps to its exceptions (X-Error-Code: RepoNotFound, RevisionNotFound,
EntryNotFound). Every commit gets a sha, so a pinned revision keeps returning what it held.

Failure modes for tests: `mode = "error500"` (every request answers 500), `mode = "hang"` (every
request waits until the server stops; `"hang-files"`: only the files', under /resolve/),
`short_get = {"model.safetensors"}` (a download ends early: GET sends half the file while HEAD announced all
of it), `listed_sizes = {"samples.png": 10}` (the
file listing claims a size the download does not keep to), `no_checksum = True` (the listing gives no blobId, as a
mirror or a proxy may), `corrupt_get = {"model.safetensors"}` (GET flips a byte in the middle of the file),
`redirect_files = URL` (GET under /resolve/ answers 302 to URL + path, as the Hub sends files to its CDN), and
`seed()` commits any files directly
(pickle-only repositories, unsafe names, corrupt weights). `requests` logs every (method, path).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    sha: str
    files: dict[str, bytes]
    parent: str | None
    message: str
    date: str


@dataclass
class Repo:
    repo_id: str
    private: bool = False
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        sha = self.branches.get(revision, revision)
        return self.commits.get(sha)


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.commit = status, message, code, commit


class HubServer:
    """`with HubServer() as hub:` ... `hub.url` is the HF_ENDPOINT."""

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.mode = "ok"
        self.short_get: set[str] = set()
        self.listed_sizes: dict[str, int] = {}
        self.no_checksum = False
        self.corrupt_get: set[str] = set()
        self.redirect_files: str | None = None
        self.requests: list[tuple[str, str]] = []
        self.authorizations: list[str | None] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        self._counter = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "HubServer":
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ content
    def create(self, repo_id: str, private: bool = False) -> Repo:
        with self.lock:
            repo = Repo(repo_id, private)
            self.repos[repo_id] = repo
            self._commit(repo, "main", {".gitattributes": GITATTRIBUTES}, "initial commit", base=None)
            return repo

    def seed(self, repo_id: str, files: dict[str, bytes], branch: str = "main", message: str = "seed") -> str:
        """Commit `files` (replacing everything but .gitattributes) straight into a repository."""
        repo = self.repos.get(repo_id) or self.create(repo_id)
        with self.lock:
            return self._commit(repo, branch, {".gitattributes": GITATTRIBUTES, **files}, message, base=None).sha

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        return dict(self.repos[repo_id].resolve(revision).files)

    def requested(self, filename: str) -> list[tuple[str, str]]:
        """The requests (HEAD or GET) that asked for `filename` of any repository."""
        with self.lock:
            return [(m, p) for m, p in self.requests if "/resolve/" in p and p.split("?")[0].endswith("/" + filename)]

    def _commit(self, repo: Repo, branch: str, files: dict[str, bytes], message: str, base: str | None) -> Commit:
        self._counter += 1
        parent = repo.branches.get(branch)
        listing = sorted((p, git_blob_sha1(d)) for p, d in files.items())
        sha = hashlib.sha1(json.dumps([parent, listing, message, self._counter]).encode()).hexdigest()
        commit = Commit(sha, dict(files), parent, message,
                        _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"))
        repo.commits[sha] = commit
        repo.branches[branch] = sha
        return commit

    # ------------------------------------------------------------------ lookups
    def _repo(self, repo_id: str, auth: str | None) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and not auth):
            raise HubError(404 if repo is None else 401, "Repository not found", "RepoNotFound")
        return repo

    def _revision(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    # ------------------------------------------------------------------ endpoints
    def handle(self, method: str, path: str, query: dict, body: bytes, auth: str | None):
        """(status, headers, body bytes) for one request."""
        seg = [unquote(s) for s in path.split("/")[1:]]
        if method == "POST" and seg == ["api", "repos", "create"]:
            return self.api_create(json.loads(body or b"{}"))
        if method == "POST" and seg == ["api", "validate-yaml"]:
            return self.api_validate_yaml(json.loads(body or b"{}"))
        if len(seg) >= 4 and seg[:2] == ["api", "models"]:
            repo_id, rest = f"{seg[2]}/{seg[3]}", seg[4:]
            with self.lock:
                repo = self._repo(repo_id, auth)
                if method == "GET" and not rest:
                    return self.api_info(repo, repo.branches["main"], query)
                if method == "GET" and len(rest) == 2 and rest[0] == "revision":
                    return self.api_info(repo, rest[1], query)
                if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                    return self.api_tree(repo, rest[1], "/".join(rest[2:]))
                if method == "POST" and len(rest) == 2 and rest[0] == "preupload":
                    return self.api_preupload(repo, rest[1], json.loads(body))
                if method == "POST" and len(rest) == 2 and rest[0] == "commit":
                    return self.api_commit(repo, rest[1], body)
                if method == "POST" and len(rest) == 2 and rest[0] == "branch":
                    return self.api_branch(repo, rest[1], json.loads(body or b"{}"))
        if method in ("GET", "HEAD") and len(seg) >= 5 and seg[2] == "resolve":
            with self.lock:
                repo = self._repo(f"{seg[0]}/{seg[1]}", auth)
                commit = self._revision(repo, seg[3])
                filename = "/".join(seg[4:])
                if filename not in commit.files:
                    raise HubError(404, "Entry not found", "EntryNotFound", commit=commit.sha)
                data = commit.files[filename]
            headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{git_blob_sha1(data)}"',
                       "Content-Type": "application/octet-stream"}
            if method == "GET" and filename in self.short_get:
                data = data[:len(data) // 2]
            if method == "GET" and filename in self.corrupt_get:
                data = data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1:]
            return 200, headers, data
        raise HubError(404, f"no route for {method} {path}")

    def api_create(self, payload: dict):
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        with self.lock:
            exists = repo_id in self.repos
        if exists:
            return 409, {}, json.dumps({"error": "You already created this model repo",
                                        "url": f"{self.url}/{repo_id}"}).encode()
        self.create(repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")))
        return 200, {}, json.dumps({"url": f"{self.url}/{repo_id}", "name": repo_id, "id": repo_id}).encode()

    def api_validate_yaml(self, payload: dict):
        import yaml

        content = payload.get("content", "")
        errors = []
        if content.startswith("---\n"):
            front = content[4:].split("\n---\n", 1)[0]
            try:
                meta = yaml.safe_load(front)
                if not isinstance(meta, dict):
                    errors.append("metadata is not a table")
            except yaml.YAMLError as e:
                errors.append(f"invalid YAML: {e}")
        status = 400 if errors else 200
        return status, {}, json.dumps({"errors": [{"message": m} for m in errors], "warnings": []}).encode()

    def api_info(self, repo: Repo, revision: str, query: dict):
        commit = self._revision(repo, revision)
        blobs = query.get("blobs", ["false"])[0].lower() in ("true", "1")
        siblings = []
        for p, d in sorted(commit.files.items()):
            size = self.listed_sizes.get(p, len(d))
            meta = {"size": size, **({} if self.no_checksum else {"blobId": git_blob_sha1(d)})} if blobs else {}
            siblings.append({"rfilename": p, **meta})
        body = {"_id": repo.repo_id, "id": repo.repo_id, "modelId": repo.repo_id, "sha": commit.sha,
                "private": repo.private, "lastModified": commit.date, "createdAt": commit.date, "tags": [],
                "library_name": "zoo", "disabled": False, "gated": False, "siblings": siblings}
        return 200, {}, json.dumps(body).encode()

    def api_tree(self, repo: Repo, revision: str, prefix: str):
        commit = self._revision(repo, revision)
        items = [{"type": "file", "oid": git_blob_sha1(d), "size": len(d), "path": p}
                 for p, d in sorted(commit.files.items()) if not prefix or p.startswith(prefix.rstrip("/") + "/")]
        return 200, {}, json.dumps(items).encode()

    def api_preupload(self, repo: Repo, revision: str, payload: dict):
        commit = repo.resolve(revision)
        current = commit.files if commit is not None else {}
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                  "oid": git_blob_sha1(current[f["path"]]) if f["path"] in current else None}
                 for f in payload.get("files", [])]
        return 200, {}, json.dumps({"files": files, "commitOid": commit.sha if commit else None}).encode()

    def api_commit(self, repo: Repo, revision: str, body: bytes):
        if revision not in repo.branches:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        files = dict(repo.commits[repo.branches[revision]].files)
        message = "commit"
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                message = value.get("summary") or message
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, "only base64 file content")
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                files = {p: d for p, d in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            else:
                raise HubError(400, f"the test hub does not take '{key}' operations (no LFS)")
        commit = self._commit(repo, revision, files, message, base=None)
        return 200, {}, json.dumps({"commitUrl": f"{self.url}/{repo.repo_id}/commit/{commit.sha}",
                                    "commitOid": commit.sha, "pullRequestUrl": None}).encode()

    def api_branch(self, repo: Repo, branch: str, payload: dict):
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        start = self._revision(repo, payload.get("startingPoint") or "main")
        repo.branches[branch] = start.sha
        return 200, {}, b"{}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: HubServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _serve(self, method: str) -> None:
        hub = self.hub
        body = self._body() if method == "POST" else b""
        parts = urlsplit(self.path)
        auth = self.headers.get("Authorization")
        with hub.lock:
            hub.requests.append((method, self.path))
            hub.authorizations.append(auth)
        try:
            if parts.path == "/api/agent-harnesses":  # huggingface-hub's own look-up, not under test
                status, headers = 200, {}
                data = json.dumps({"standardEnvVars": [], "harnesses": {}}).encode()
            elif hub.mode == "hang" or (hub.mode == "hang-files" and "/resolve/" in parts.path):
                hub.released.wait(60)
                raise HubError(503, "hung")
            elif hub.mode == "error500":
                raise HubError(500, "Internal Server Error")
            elif hub.redirect_files and method == "GET" and "/resolve/" in parts.path:
                status, headers, data = 302, {"Location": hub.redirect_files + self.path}, b""
            else:
                status, headers, data = hub.handle(method, parts.path, parse_qs(parts.query), body, auth)
        except HubError as e:
            status, data = e.status, json.dumps({"error": e.message}).encode()
            headers = {"Content-Type": "application/json", "X-Error-Message": e.message}
            if e.code:
                headers["X-Error-Code"] = e.code
            if e.commit:
                headers["X-Repo-Commit"] = e.commit
        except Exception as e:  # a bug in the test server: say so
            status, data = 500, json.dumps({"error": f"test hub: {type(e).__name__}: {e}"}).encode()
            headers = {"Content-Type": "application/json"}
        try:
            self.send_response(status)
            headers.setdefault("Content-Type", "application/json")
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")
