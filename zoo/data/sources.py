"""Finding the files of the torchvision data sets: local folders first, then a download."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from zoo import environment
from zoo.errors import DataNotFoundError

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class TorchvisionSet:
    name: str           # zoo's name, also the Debian /usr/share/datasets/<name> folder
    tv_class: str       # torchvision class name, also its <root>/<Class>/raw folder
    classes: tuple[str, ...]


SETS = {
    s.name: s
    for s in (
        TorchvisionSet("mnist", "MNIST", tuple(str(i) for i in range(10))),
        TorchvisionSet("fashion-mnist", "FashionMNIST", (
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")),
        TorchvisionSet("kmnist", "KMNIST", ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
    )
}


def cache_dir() -> Path:
    return environment.cache_home() / "zoo" / "datasets"


def search_roots(data_dir: str | None) -> list[tuple[str, Path]]:
    """The places looked in, in order, each with where it came from."""
    roots = []
    if data_dir:
        roots.append(("--data-dir", Path(data_dir).expanduser()))
    env = os.environ.get("ZOO_DATA_DIR")
    if env:
        roots.append(("$ZOO_DATA_DIR", Path(env).expanduser()))
    roots.append(("user cache", cache_dir()))
    return roots


def candidate_dirs(spec: TorchvisionSet, data_dir: str | None) -> list[Path]:
    dirs = []
    for origin, root in search_roots(data_dir):
        dirs += _set_dirs(spec, root, origin == "--data-dir")
    dirs.append(Path("/usr/share/datasets") / spec.name)
    return dirs


def _set_dirs(spec: TorchvisionSet, root: Path, own: bool) -> list[Path]:
    """The folders under `root` a set's files are looked for in; `own` (--data-dir): `root` itself too (every set
    has the same file names: a shared root such as $ZOO_DATA_DIR would mix them up)."""
    return [root / spec.name, root / spec.tv_class / "raw", root / spec.tv_class] + ([root] if own else [])


def find_in(directory: Path) -> dict[str, Path] | None:
    """The four IDX files in `directory`, gzipped or not, or None if any is missing."""
    found = {}
    for key, stem in FILES.items():
        for name in (stem, stem + ".gz"):
            if (directory / name).is_file():
                found[key] = directory / name
                break
        else:
            return None
    return found


def partial_set(directory: Path) -> str:
    """Empty unless `directory` holds some of the four IDX files but not all: then how many it holds and which are
    missing, with the files there that may be a missing one misnamed (t10k-labels.idx1-ubyte)."""
    present = {key: stem for key, stem in FILES.items() if any((directory / n).is_file() for n in (stem, stem + ".gz"))}
    if not present or len(present) == len(FILES):
        return ""
    missing = [f"{stem}(.gz)" for key, stem in FILES.items() if key not in present]
    try:
        near = sorted(p.name for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")
                      and ("ubyte" in p.name or "idx" in p.name) and p.name.removesuffix(".gz") not in FILES.values())
    except OSError:
        near = []
    return (f"holds {len(present)} of the four IDX files: {' and '.join(missing)} not found there"
            + (f" (other files there: {', '.join(near[:5])})" if near else ""))


def locate(spec: TorchvisionSet, data_dir: str | None = None, download: bool | None = None) -> dict[str, Path]:
    """Find the data set's files, downloading them into the user cache as a last resort. A --data-dir folder
    that holds some of the four files and none of its folders all four is refused, naming the missing ones: the
    search went on to $ZOO_DATA_DIR's set of the same name, trained on it without a word, and the run recorded
    --data-dir as its data."""
    own = _set_dirs(spec, Path(data_dir).expanduser(), True) if data_dir else []
    if own and not any(map(find_in, own)):
        partial = [(d, partial_set(d)) for d in own if partial_set(d)]
        if partial:
            raise DataNotFoundError(f"data set '{spec.name}': {partial[0][0]} {partial[0][1]}",
                                    f"Put all four files there (gzipped or not), named {', '.join(FILES.values())}.")
    looked = candidate_dirs(spec, data_dir)
    for d in looked:
        files = find_in(d)
        if files:
            return files
    if download is None:
        download = not environment.offline()
    error = "downloads are off (ZOO_OFFLINE or HF_HUB_OFFLINE is on)"
    if download:
        try:
            return _download(spec)
        except Exception as e:  # offline, DNS failure, refused, time-out, bad archive
            error = f"download failed: {download_failure(e)}"
    places = "\n".join(f"  {d}" + (f" ({partial_set(d)})" if partial_set(d) else "") for d in dict.fromkeys(looked))
    raise DataNotFoundError(
        f"data set '{spec.name}' not found. Looked for the four IDX files ({', '.join(FILES.values())}, "
        f"gzipped or not) in:\n{places}\nand {error}.{_env_problem()}",
        "Fix: put the files in one of those folders, or pass --data-dir DIR, or set ZOO_DATA_DIR"
        + (", or `apt-get install dataset-fashion-mnist`" if spec.name == "fashion-mnist" else "")
        + ", or run once with a network.",
    )


# What an address lookup or a connection says where there is no network (Linux, macOS, Windows).
NO_NETWORK = ("name or service not known", "temporary failure in name resolution", "nodename nor servname",
              "getaddrinfo failed", "no address associated", "network is unreachable")


def download_failure(e: BaseException) -> str:
    """A failed download in one line, with its reason: torchvision says "Error downloading FILE:" and puts
    each mirror's error on the lines below ("Tried URL, got:", "<urlopen error [Errno -2] Name or service not
    known>"), which a first line alone left out."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    reasons = [line.removeprefix("<urlopen error ").removesuffix(">") for line in lines[1:]
               if not line.startswith("Tried ")]
    said = " ".join([lines[0] if lines else "", *dict.fromkeys(reasons)]).strip() or "(no reason given)"
    offline = any(words in str(e).lower() for words in NO_NETWORK)
    return f"{type(e).__name__}: {said}" + (" (no network: the server's address could not be looked up or reached)"
                                            if offline else "")


def _env_problem() -> str:
    """What is wrong with $ZOO_DATA_DIR, where something is: it is the folder above one folder per data set."""
    env = os.environ.get("ZOO_DATA_DIR")
    if not env:
        return ""
    root = Path(env).expanduser()
    if not root.is_dir():
        return f" $ZOO_DATA_DIR ({env}) {'is not a folder' if root.exists() else 'does not exist'}."
    if find_in(root):  # the sets share their file names: a root holding one set's files would serve it for all
        return (f" $ZOO_DATA_DIR ({env}) holds one data set's files itself: it is the folder above one folder per "
                "data set (ZOO_DATA_DIR/mnist/, ZOO_DATA_DIR/fashion-mnist/); --data-dir takes a set's own folder.")
    return ""


def _download(spec: TorchvisionSet) -> dict[str, Path]:
    import torchvision.datasets as tvd

    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        getattr(tvd, spec.tv_class)(root=str(root), train=True, download=True)
    finally:
        socket.setdefaulttimeout(old)
    files = find_in(root / spec.tv_class / "raw")
    if not files:
        raise RuntimeError("downloaded files are incomplete")
    return files
