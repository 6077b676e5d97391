"""A push to the Hugging Face Hub: one commit of a run's files to a branch of hf://ORG/NAME (created if needed).

A push replaces only what zoo published. It commits onto a branch that holds no model (a new repository's
.gitattributes, a README.md) or holds an earlier zoo push (its config.json is a zoo run's), a new branch judged
by main, the files it starts from; a
repository that holds another library's model, or files of someone's without a config.json, is refused before
anything is written. Only there do the files an earlier push left and this one does not hold (results of
earlier weights, another run's pictures) go; the repository's other files stay. --private never ends in a
public upload: an existing public repository is refused (a push does not change its visibility)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from zoo.hub import limits
from zoo.hub.cache import read_json
from zoo.hub.files import CARD, CONFIG, WEIGHTS, is_run_file
from zoo.hub.hf import download, import_hf, zoo_version
from zoo.hub.locations import COMMIT_RE, HF_SCHEME, HubError, Location, Log, hub_error
from zoo.hub.marks import another_run

NO_MODEL = (".gitattributes", CARD)  # what a repository the Hub just made holds (a README.md: one made on its page)


def push_hf(repo: str, branch: str, files: dict[str, Path | bytes], run: dict, *, private: bool, summary: str,
            check: Callable[[str | None], None], log: Log) -> tuple[str | None, str | None]:
    """Commit `files` (the config.json of the run is `run`) to `branch` of hf://`repo`, after `check(sha256)`
    (of the weights as uploaded: the run must not have changed meanwhile); the commit and its URL."""
    hf = import_hf()
    if COMMIT_RE.fullmatch(branch):
        raise HubError(f"cannot push onto commit {branch}: push to a branch (--revision NAME)")
    api = hf.HfApi(library_name="zoo", library_version=zoo_version())
    try:
        api.create_repo(repo, private=True if private else None, exist_ok=True)
        info, exists = _branch_info(api, repo, branch)  # a new branch: the main branch it starts from
        # a new branch starts as a copy of main: judged by main's files, which the push would replace on it
        where = f"{HF_SCHEME}{repo}@{branch}" + ("" if exists else " (a new branch: it starts from main, and main)")
        if private and not info.private:  # create_repo(exist_ok=True) leaves an existing one as it is
            raise HubError(f"hf://{repo} exists and is public: --private cannot make it private, and nothing was "
                           "pushed", "Make it private on its settings page on the Hub (or with huggingface-hub's "
                           f"HfApi().update_repo_settings('{repo}', private=True)) and push again, or push to a "
                           "new name.")
        names = [s.rfilename for s in info.siblings or []]
        earlier = _earlier_push(hf, repo, info.sha, names, where)
        if not exists:
            api.create_branch(repo, branch=branch, exist_ok=True)
        operations = [hf.CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(v) if isinstance(v, Path) else v)
                      for name, v in files.items()]
        # What an earlier zoo push left that this one leaves out goes, as a folder hub's entry is replaced whole;
        # the repository's other files stay (and where no zoo push was, nothing is there to go).
        left = [name for name in names if name not in files and is_run_file(name)] if earlier is not None else []
        operations += [hf.CommitOperationDelete(path_in_repo=name) for name in left]
        # the sha256 huggingface-hub uploads the weights under (the hub checks the bytes it gets against it)
        upload = next((getattr(op, "upload_info", None) for op in operations if op.path_in_repo == WEIGHTS), None)
        check(upload.sha256.hex() if upload is not None else None)
        # onto the commit checked above: one pushed meanwhile (by someone else) fails the commit, not replaced
        info = api.create_commit(repo, operations, commit_message=summary, revision=branch, parent_commit=info.sha)
    except Exception as e:
        raise hub_error(e, Location("hf", repo, branch), action="push to") from None
    if left:
        log(f"note: removed from {HF_SCHEME}{repo}@{branch} what an earlier push left and this one does not hold: "
            f"{', '.join(sorted(left))}")
    other = another_run(earlier, run)
    if other:
        log(f"note: {HF_SCHEME}{repo}@{branch} held a push of another run ({other}): replaced")
    return getattr(info, "oid", None), getattr(info, "commit_url", None)


def _branch_info(api, repo: str, branch: str) -> tuple[Any, bool]:
    """The branch's model info (its commit, files, visibility) and whether it exists; a branch that does not
    exist yet: its starting point's, main's."""
    from huggingface_hub.errors import RevisionNotFoundError

    try:
        return api.model_info(repo, revision=branch), True
    except RevisionNotFoundError:
        if branch == "main":
            raise
    return api.model_info(repo, revision="main"), False


def _earlier_push(hf, repo: str, commit: str, names: list[str], where: str) -> dict | None:
    """The config.json of the zoo run that commit `commit` (holding files `names`) holds; None where it holds
    no model. Anything else is refused: a push must not replace a model zoo did not push, nor files of someone's."""
    others = sorted(n for n in names if n not in NO_MODEL)
    if not others:
        return None
    old = None
    if CONFIG in names:
        try:
            old = read_json(download(hf, Location("hf", repo, commit), CONFIG, commit))
        except limits.TooBig:  # larger than any run's config.json
            old = None
    if isinstance(old, dict) and isinstance(old.get("model"), str) and "zoo_version" in old \
            and isinstance(old.get("config"), dict):  # what zoo writes in every run's config.json
        return old
    held = ", ".join(others[:4]) + (f" and {len(others) - 4} more" if len(others) > 4 else "")
    why = "its config.json is not a zoo run's" if CONFIG in names else "no zoo push made them"
    raise HubError(f"{where} holds files zoo did not push ({held}; {why}): refusing to replace them",
                   "Push to a repository of its own (hf://ORG/ANOTHER-NAME): a push replaces only what an earlier "
                   "`zoo push` published.")
