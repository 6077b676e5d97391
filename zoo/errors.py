"""Errors a user can cause. The CLI prints their message (and hint) and exits non-zero."""


class ZooError(Exception):
    """A mistake or missing resource the user can fix; `hint` says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, SIGHUP: zoo's commands take them as Ctrl-C) stopped work of which zoo kept what it
    could: the message says what was kept and how to go on. A KeyboardInterrupt, not a ZooError, so that a
    caller's `except zoo.ZooError` (around configurations zoo may refuse) does not swallow the user's stop."""

    exit_code = 130

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    __str__ = ZooError.__str__


class UnknownModelError(ZooError):
    """No installed plugin has that name."""


class ConfigError(ZooError):
    """A configuration key is unknown, ill-typed, out of range, or the model cannot be built."""

    exit_code = 2


class DataNotFoundError(ZooError):
    """A data set could not be found locally and could not be downloaded."""


class RunError(ZooError):
    """A folder is not a zoo run, or its files are missing, corrupt or foreign."""


class TrainingDiverged(ZooError):
    """The loss became NaN or infinite; the best checkpoint was kept."""


class CapabilityError(ZooError):
    """The model cannot do what was asked (e.g. sample from a plain autoencoder)."""


class PluginError(CapabilityError):
    """A plugin broke its contract (docs/plugins.md): its model raised, or handed back what zoo cannot use (a
    tuple of codes, images of another shape or outside [0, 1]). A bug for the plugin's author, not the user's."""


class StorageError(ZooError):
    """The operating system refused a read or a write: a full disk, a file-size limit, a read-only or
    foreign folder. What was complete before is kept (zoo writes every file atomically)."""

    exit_code = 74  # EX_IOERR


class OutOfMemory(ZooError):
    """An allocation failed: the CPU's memory (or an address-space limit) or the GPU's was used up."""


def out_of_memory(e: BaseException, device: str = "", kept: str = "") -> OutOfMemory | None:
    """One clear OutOfMemory for an allocation that failed (Python's MemoryError, torch's CPU allocator,
    CUDA's out-of-memory error), saying how much was asked where it is known; None for any other error."""
    import re as _re

    import errno as _errno

    text = str(e)
    if not (isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"
            or (isinstance(e, OSError) and e.errno == _errno.ENOMEM)  # the kernel's: mmap, a thread, a pipe
            or "can't allocate memory" in text or "out of memory" in text.lower()):
        return None
    size = _re.search(r"allocate (\d+) bytes", text)
    asked = _re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]i?B)", text)
    tried = f"{int(size[1]) / 2**30:.1f} GiB" if size else (asked[1] if asked else "")
    message = f"out of memory{f' on {device}' if device else ''}" + (f" (one allocation of {tried} failed)"
                                                                     if tried else "")
    if kept:
        message += f". {kept}"
    return OutOfMemory(message, "Ask for less at once (a smaller --batch-size or --n, where the command has them) or "
                                "use a smaller model (channels, hidden), or free memory used by other programs, then "
                                "try again.")


_OS_HINTS = {
    "ENOSPC": "Free some space on that disk (or write elsewhere), then try again.",
    "EDQUOT": "Your disk quota is used up: free some space (or write elsewhere), then try again.",
    "EFBIG": "A file-size limit stopped the write (`ulimit -f`): raise it, then try again.",
    "EROFS": "That file system is read-only: choose a writable place ({option}).",
    "EACCES": "You may not write there: choose a folder you own ({option}) or fix its permissions.",
    "EPERM": "You may not write there: choose a folder you own ({option}) or fix its permissions.",
    "ENOTDIR": "A part of that path is a file, not a folder: choose another path.",
    "EEXIST": "A part of that path is a file, not a folder: choose another path.",
}


def storage_error(e: OSError, doing: str = "", kept: str = "", path=None,
                  option: str = "--out, -o, XDG_CACHE_HOME", *, at=None,
                  place_hint: str | None = None) -> StorageError | OutOfMemory:
    """One clear StorageError for an OSError: what could not be done, on which path (`at`; else the error's
    own, or `path`), why, and what to do. `kept` says what is safe (e.g. which epoch of a run is saved); `option`
    names what chooses another place. `at` names the place the user gave where the error names a file zoo
    made in it (a lock, a temporary); `place_hint` replaces the hint to choose another place (a read-only
    or foreign one) where no other place can do (a resume writes into its own run folder)."""
    import errno as _errno
    import os as _os

    if e.errno == _errno.ENOMEM:  # memory, not the path it was using (a read, a mapped file): said as such
        return out_of_memory(e, kept=kept)
    name = _errno.errorcode.get(e.errno or 0, "")
    why = (e.strerror or _os.strerror(e.errno) if e.errno else str(e) or type(e).__name__).lower()
    path = next((p for p in (at, e.filename, path) if p is not None), "")
    what = f"{doing} {path}".strip() if doing else (f"cannot use {path}" if path else "an operating-system error")
    message = f"{what}: {why}" + (f" ({name})" if name else "")
    if kept:
        message += f". {kept}"
    hint = _OS_HINTS.get(name, "Check the path, the disk and its permissions, then try again.")
    if place_hint is not None and "{option}" in hint:
        return StorageError(message, place_hint)
    return StorageError(message, hint.format(option=option))
