"""Latent codes of a trained run and where the test images land: the codes of a split, their 2-D
projection (PCA, t-SNE, or as they are) and a scatter of them coloured by class.

    zoo.latent_scatter(RUN, method="tsne", n=5000)   # PNG scatter + CSV of coordinates

Codes come from the model's `encode` (a VAE's posterior mean). The decoded grid is in
zoo.analysis.manifold, decoding between two codes in zoo.analysis.interpolation.
"""

from __future__ import annotations

import csv
import difflib
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from zoo.analysis.checks import check_codes
from zoo.analysis.latent_samplers import encode_images, latent_dim, run_split
from zoo.analysis.plots import colour_map, save_png, subplots, tidy
from zoo.console import to_stderr
from zoo.data.datasets import class_name
from zoo.interrupts import holding_interrupts
from zoo.errors import ConfigError
from zoo.runs.config import check_count, check_seed
from zoo.runs.checkpoint import atomic_write
from zoo.runs.files import check_output, picture_output
from zoo.runs.loading import load
from zoo.runs.lock import results_lock
from zoo.runs.run import check_split, evaluated
from zoo.runs.training_state import say_if_untrained
from zoo.tracking import code_loggers

METHODS = {"pca": "PCA", "tsne": "t-SNE"}
TSNE_MAX_ITER = 1000  # scikit-learn's default
TSNE_SAY_FROM = 1000  # codes: a t-SNE of this many or more says first that it takes a while
CSV_HEADER = ("index", "label", "class", "x", "y")  # the first line of the coordinates zoo latent writes


# ---------------------------------------------------------------------------------- codes

@dataclass
class Codes:
    """Codes of (the first n images of) a split: z [N, D] float32 on the CPU, labels [N] (-1: none),
    indices [N] into the split, and the data set's class names."""

    z: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    classes: tuple[str, ...]
    split: str
    dataset: str
    images: torch.Tensor | None = None  # the encoded images, uint8 [N, C, H, W] on the CPU

    def class_name(self, label: int) -> str:
        return class_name(self.classes, label)

    def where(self) -> str:
        """Where the codes come from, for messages."""
        return f"the {self.split} images of {self.dataset}"


def codes(source, *, split: str = "test", n: int | None = None, data_dir: str | None = None,
          device: str | None = None) -> Codes:
    """Encode the first `n` images (all if None) of a run's split."""
    net = load(source, device=device)
    return net_codes(net, split, n, data_dir)


def net_codes(net, split: str, n: int | None, data_dir: str | None) -> Codes:
    net.require("encode")
    if n is not None:
        n = check_count(n, "--n (n=)", 1, 1_000_000)
    data, x, y = run_split(net, split, data_dir)
    if n is not None:
        x, y = x[:n], y[:n]
    return Codes(encode_images(net, x), y.cpu(), torch.arange(x.shape[0]), tuple(data.classes), split, data.name,
                 x.cpu())


# ---------------------------------------------------------------------------------- projection

@dataclass
class Projection:
    coords: np.ndarray            # [N, 2]
    method: str                   # pca, tsne, as-is
    xlabel: str
    ylabel: str
    explained: list[float] | None = None  # PCA: fraction of variance of each axis


def normalise_method(method: str) -> str:
    key = str(method).strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    if key in METHODS:
        return key
    close = difflib.get_close_matches(key, list(METHODS), n=2, cutoff=0.3)
    raise ConfigError(f"unknown projection method '{method}'",
                      (f"Did you mean: {', '.join(close)}? " if close else "") + "Use pca or tsne.")


def project(z: torch.Tensor | np.ndarray, method: str = "pca", *, seed: int = 0,
            labels: torch.Tensor | None = None, where: str = "the given codes") -> Projection:
    """2-D coordinates of codes: a 2-D latent as it is (whatever the method), a 1-D latent against the
    label, else the first two principal components (pca) or a t-SNE embedding (tsne). `where` names
    the codes' source in messages."""
    method = normalise_method(method)
    z = np.asarray(torch.as_tensor(z).detach().cpu().double())
    n, d = z.shape
    if d <= 2:
        check_codes(z, "a plot", where, need=1, spread=False)
    if d == 2:
        return Projection(z.copy(), "as-is", "latent z[0]", "latent z[1]")
    if d == 1:
        lab = np.zeros(n) if labels is None else np.asarray(labels.cpu(), dtype=np.float64)
        return Projection(np.stack([z[:, 0], lab], 1), "as-is", "latent z[0]", "class (label index)")
    check_codes(z, METHODS[method], where, need=3, spread=True)
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, svd_solver="full").fit(z)  # exact: no seed changes it
        ev = [float(v) for v in pca.explained_variance_ratio_]
        return Projection(pca.transform(z), "pca", f"PC 1 ({ev[0]:.0%} of variance)",
                          f"PC 2 ({ev[1]:.0%} of variance)", ev)
    from sklearn.manifold import TSNE

    if n >= TSNE_SAY_FROM:  # minutes without a word looked like a hang: scikit-learn's t-SNE draws no progress
        to_stderr(f"note: a t-SNE of {n:,} codes takes a while (about a minute for 5,000 on a 2-core CPU); "
                  "--method pca is instant")
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    # Seed 0 starts from the principal components (stable global structure). scikit-learn's seed only drew that
    # start, exact for these widths, so every seed gave one picture: another seed starts from random positions it
    # draws, to see which clusters stay.
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca" if seed == 0 else "random", learning_rate="auto",
                random_state=seed, **_tsne_iterations(TSNE_MAX_ITER))
    return Projection(tsne.fit_transform(z.astype(np.float32)).astype(np.float64), "tsne", "t-SNE 1", "t-SNE 2")


def _tsne_iterations(k: int) -> dict:
    import inspect

    from sklearn.manifold import TSNE

    params = inspect.signature(TSNE).parameters
    return {"max_iter": k} if "max_iter" in params else {"n_iter": k}  # scikit-learn < 1.5


# ---------------------------------------------------------------------------------- zoo latent

@dataclass
class LatentResult:
    png: Path
    csv: Path
    method: str                   # pca, tsne, as-is
    coords: np.ndarray = field(repr=False)   # [N, 2], the CSV's x, y
    labels: np.ndarray = field(repr=False)   # [N]
    indices: np.ndarray = field(repr=False)  # [N] into the split
    classes: tuple[str, ...]
    latent_dim: int
    seconds: float                # time of the projection
    requested: str = "pca"        # the method asked for (pca, tsne); not run when `method` is as-is
    legend: list[str] = field(default_factory=list)
    explained: list[float] | None = None
    logged: list[Path] = field(default_factory=list)  # where loggers' viewers find the codes (--log)
    codes_note: str = ""          # what the codes are, where not the whole latent (ZooModel.codes_note)


@evaluated
def latent_scatter(source, *, method: str = "pca", n: int = 5000, out: str | Path | None = None,
                   split: str = "test", seed: int = 0, data_dir: str | None = None,
                   device: str | None = None, loggers=None) -> LatentResult:
    """A 2-D scatter of the codes of the first `n` images of the split, coloured by class, as PNG; the
    coordinates beside it as CSV (same name, .csv: index,label,class,x,y). A latent of 1 or 2 dimensions
    needs no projection: its codes are plotted as they are, by default into latent.png (not
    latent-METHOD.png, which would name a projection that was not done); a split other than the test split is
    named in the default (latent-pca-train.png), so that one split's scatter does not replace another's.

    `seed`: t-SNE's start (0: the principal components; another: random positions drawn with it); PCA is exact.
    `loggers` ("tensorboard"): also write the codes, labels and images for the logger's embedding viewer
    (TensorBoard's Projector), into the folder of the PNG, under tensorboard/."""
    method = normalise_method(method)
    seed = check_seed(seed)
    viewers = code_loggers(loggers)  # refused before any work
    net = load(source, device=device)
    net.require("encode")
    projected = latent_dim(net) > 2
    tag = "" if check_split(split) == "test" else f"-{split}"
    default = (f"latent-{method}" if projected else "latent") + tag + ".png"
    path = picture_output(out, own=net.folder) or net.output_dir / default
    if out:  # the coordinates beside it, checked as the picture is (never over another run's file)
        check_output(path.with_suffix(".csv"), own=net.folder)
    check_side_csv(path)
    say_if_untrained(net.folder, "these codes are of")
    c = net_codes(net, split, n, data_dir)
    start = time.perf_counter()
    proj = project(c.z, method, seed=seed, labels=c.labels, where=c.where())
    seconds = time.perf_counter() - start
    d = int(c.z.shape[1])
    labels = c.labels.numpy()
    csv_path = path.with_suffix(".csv")
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(CSV_HEADER)
    for i, lab, (x, y) in zip(c.indices.tolist(), labels.tolist(), proj.coords.tolist()):
        w.writerow([i, lab, c.class_name(lab), repr(float(x)), repr(float(y))])
    if proj.method == "as-is":
        how = f"latent codes ({d}-D, no projection needed" + (", against the class)" if d == 1 else ")")
    else:
        how = f"{METHODS[proj.method]} of the {d}-D codes"
    note = net.model.codes_note
    title = f"{net.name} on {c.dataset}: {how}\n{len(labels)} {split} images, coloured by class" + \
        (f"\n{note.split(':')[0]}" if note else "")
    # the coordinates and the picture are one scatter's: two scatters into one file at once wrote one's CSV
    # beside the other's picture
    with results_lock(path.parent, path):  # a lock it cannot take is said as the picture's
        with holding_interrupts():  # a stop between the two files left one scatter's CSV beside another's picture
            atomic_write(csv_path, text.getvalue())
            legend = _scatter(proj.coords, labels, c.classes, path, title, proj.xlabel, proj.ylabel)
        logged = [cls.log_codes(path.parent / cls.name, c.z, c.labels, c.images.float() / 255.0, list(c.classes))
                  for cls in viewers]
    return LatentResult(path, csv_path, proj.method, proj.coords, labels, c.indices.numpy(), c.classes, d, seconds,
                        method, legend, proj.explained, logged, note)


def check_side_csv(png: Path) -> None:
    """Refuse, before any work, a picture whose coordinates (PNG.csv, beside it) would replace a CSV that zoo
    latent did not write (its first line is not CSV_HEADER): the user named the picture, never that file. A scatter's
    own CSV is replaced with its picture, as they are one scatter's."""
    csv_path = png.with_suffix(".csv")
    if not csv_path.is_file():  # no file of the user's to lose (a folder or a FIFO there is refused as before)
        return
    try:
        with open(csv_path, "rb") as fh:
            first = fh.readline(200).strip()
    except OSError:  # unreadable: not known to be a scatter's, so kept
        first = b""
    if first != ",".join(CSV_HEADER).encode():
        raise ConfigError(f"{csv_path} is not a scatter's coordinates, and zoo latent writes those beside {png.name} "
                          f"(as {csv_path.name}): it would be replaced",
                          f"Name the picture otherwise with --out (its coordinates go beside it, as NAME.csv), or "
                          f"move {csv_path.name} away first.")


def _class_colours(k: int):
    if k <= 10:
        return [colour_map("tab10")(i) for i in range(k)]
    if k <= 20:
        return [colour_map("tab20")(i) for i in range(k)]
    return [colour_map("turbo")(i / max(k - 1, 1)) for i in range(k)]


def _scatter(coords: np.ndarray, labels: np.ndarray, classes, path: Path, title: str, xlabel: str,
             ylabel: str) -> list[str]:
    """Scatter coloured by class with a legend of class names (and names at the class medians)."""
    fig, ax = subplots(figsize=(8.5, 6.5))
    n = len(labels)
    size = 14 if n <= 500 else 7 if n <= 3000 else 4
    present = [i for i in range(len(classes)) if (labels == i).any()]
    colours = _class_colours(len(classes))
    unlabelled = ~np.isin(labels, present)
    if unlabelled.any():
        ax.scatter(coords[unlabelled, 0], coords[unlabelled, 1], s=size, c="0.5", alpha=0.6, linewidths=0,
                   label="unlabelled")
    # Interleave the classes (not one after another) so no class hides all the others.
    order = np.random.default_rng(0).permutation(n)
    order = order[~unlabelled[order]]
    if len(order):
        ax.scatter(coords[order, 0], coords[order, 1], s=size, c=[colours[i] for i in labels[order]], alpha=0.75,
                   linewidths=0)
    for i in present:  # legend handles and labels at the class medians
        ax.scatter([], [], s=30, color=colours[i], label=classes[i])
        mx, my = np.median(coords[labels == i], axis=0)
        ax.annotate(classes[i], (mx, my), ha="center", va="center", fontsize=9, weight="bold",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": colours[i], "alpha": 0.8})
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.25)
    names: list[str] = []
    if present or unlabelled.any():
        if len(present) <= 30:
            leg = ax.legend(title="class", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                            markerscale=1.0, fontsize=9)
            names = [t.get_text() for t in leg.get_texts()]
    tidy(fig)
    save_png(fig, path)
    return names
