"""Latent-space analysis of a trained run: where the test images land, what a grid of codes decodes
to, and what lies between two classes or two images.

    zoo.analysis.latent.latent_scatter(RUN, method="tsne", n=5000)   # PNG scatter + CSV of coordinates
    zoo.analysis.latent.manifold(RUN, steps=15)                       # PNG of a decoded 2-D grid
    zoo.analysis.latent.manifold(RUN, dims="3,7")                     # ... over latent dimensions 3 and 7
    zoo.analysis.latent.interpolate(RUN, "3", "8", steps=10)          # PNG of decodes between class means
    zoo.analysis.latent.interpolate(RUN, "#12", "#40")                # ... between two test images' codes

Codes come from the model's `encode` (a VAE's posterior mean); class means are over the test set.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from zoo.runs.checkpoint import atomic_write
from zoo.analysis.plots import pyplot, save_png
from zoo.errors import ConfigError
from zoo.runs.files import picture_output
from zoo.runs.loading import load, require
from zoo.analysis.samplers import CLASS_SPLIT, class_stats, encode_images, latent_dim, resolve_class, run_split

METHODS = {"pca": "PCA", "tsne": "t-SNE"}
TSNE_MAX_ITER = 1000  # scikit-learn's default


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

    def class_name(self, label: int) -> str:
        return self.classes[label] if 0 <= label < len(self.classes) else "unlabelled"

    def where(self) -> str:
        """Where the codes come from, for messages."""
        return f"the {self.split} images of {self.dataset}"


def _load(source, device):

    return load(source, device=device)


def _require(net, *capabilities: str) -> None:

    for c in capabilities:
        require(net, c)


def codes(source, *, split: str = "test", n: int | None = None, data_dir: str | None = None,
          device: str | None = None) -> Codes:
    """Encode the first `n` images (all if None) of a run's split."""
    net = _load(source, device)
    return _codes(net, split, n, data_dir)


def _codes(net, split: str, n: int | None, data_dir: str | None) -> Codes:
    _require(net, "encode")
    if n is not None and n < 1:
        raise ConfigError("--n must be at least 1")
    data, x, y = run_split(net, split, data_dir)
    if n is not None:
        x, y = x[:n], y[:n]
    return Codes(encode_images(net, x), y.cpu(), torch.arange(x.shape[0]), tuple(data.classes), split, data.name)


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


def check_codes(z: np.ndarray, what: str, where: str, *, need: int, spread: bool) -> None:
    """Refuse codes that `what` (a plot, a projection, a grid) cannot use: fewer than `need`, not finite,
    or, with `spread`, all the same. scikit-learn would fail on them, and its t-SNE of identical codes
    even kills the process."""
    n = z.shape[0]
    if n < need:
        raise ConfigError(f"{what} needs at least {need} code{'s' if need > 1 else ''}, got {n} from {where}",
                          "Use a split or data set with more images.")
    if not np.isfinite(z).all():
        raise ConfigError(f"some codes from {where} are NaN or infinite",
                          "The model's weights may be damaged: retrain it or use an earlier copy of the run.")
    if spread and not np.ptp(z, axis=0).any():
        raise ConfigError(f"all {n} codes from {where} are the same: {what} has no spread to show",
                          "Use more, or more varied, images (or a model trained for longer).")


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

        pca = PCA(n_components=2, random_state=seed).fit(z)
        ev = [float(v) for v in pca.explained_variance_ratio_]
        return Projection(pca.transform(z), "pca", f"PC 1 ({ev[0]:.0%} of variance)",
                          f"PC 2 ({ev[1]:.0%} of variance)", ev)
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed,
                **_tsne_iterations(TSNE_MAX_ITER))
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
    coords: np.ndarray            # [N, 2], the CSV's x, y
    labels: np.ndarray            # [N]
    indices: np.ndarray           # [N] into the split
    classes: tuple[str, ...]
    latent_dim: int
    seconds: float                # time of the projection
    requested: str = "pca"        # the method asked for (pca, tsne); not run when `method` is as-is
    legend: list[str] = field(default_factory=list)
    explained: list[float] | None = None


def latent_scatter(source, *, method: str = "pca", n: int = 5000, out: str | Path | None = None,
                   split: str = "test", seed: int = 0, data_dir: str | None = None,
                   device: str | None = None) -> LatentResult:
    """A 2-D scatter of the codes of the first `n` images of the split, coloured by class, as PNG; the
    coordinates beside it as CSV (same name, .csv: index,label,class,x,y). A latent of 1 or 2 dimensions
    needs no projection: its codes are plotted as they are, by default into latent.png (not
    latent-METHOD.png, which would name a projection that was not done)."""
    method = normalise_method(method)
    net = _load(source, device)
    _require(net, "encode")
    projected = latent_dim(net) > 2
    path = picture_output(out, net.output_dir / (f"latent-{method}.png" if projected else "latent.png"))
    c = _codes(net, split, n, data_dir)
    start = time.perf_counter()
    proj = project(c.z, method, seed=seed, labels=c.labels, where=c.where())
    seconds = time.perf_counter() - start
    d = int(c.z.shape[1])
    labels = c.labels.numpy()
    csv_path = path.with_suffix(".csv")
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(["index", "label", "class", "x", "y"])
    for i, lab, (x, y) in zip(c.indices.tolist(), labels.tolist(), proj.coords.tolist()):
        w.writerow([i, lab, c.class_name(lab), repr(float(x)), repr(float(y))])
    atomic_write(csv_path, text.getvalue())
    if proj.method == "as-is":
        how = f"latent codes ({d}-D, no projection needed" + (", against the class)" if d == 1 else ")")
    else:
        how = f"{METHODS[proj.method]} of the {d}-D codes"
    title = f"{net.name} on {c.dataset}: {how}\n{len(labels)} {split} images, coloured by class"
    legend = _scatter(proj.coords, labels, c.classes, path, title, proj.xlabel, proj.ylabel)
    return LatentResult(path, csv_path, proj.method, proj.coords, labels, c.indices.numpy(), c.classes, d, seconds,
                        method, legend, proj.explained)


def _class_colours(k: int):
    plt = pyplot()
    if k <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(k)]
    if k <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(k)]
    return [plt.get_cmap("turbo")(i / max(k - 1, 1)) for i in range(k)]


def _scatter(coords: np.ndarray, labels: np.ndarray, classes, path: Path, title: str, xlabel: str,
             ylabel: str) -> list[str]:
    """Scatter coloured by class with a legend of class names (and names at the class medians)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 6.5))
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
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
    return names


# ---------------------------------------------------------------------------------- zoo manifold

# A grid over the test codes spans their central 90% along each axis, not their min..max: a few outlying
# codes would otherwise leave most tiles decoding empty space. (A VAE's grid is over its prior instead.)
SPAN_PERCENTILES = (5.0, 95.0)
# Burda et al.'s threshold: a VAE's latent unit whose posterior mean varies less over the data is inactive.
ACTIVE_THRESHOLD = 0.01


@dataclass
class ManifoldResult:
    png: Path
    kind: str                     # prior, latent, pca
    xs: torch.Tensor              # [steps] grid values along the horizontal axis
    ys: torch.Tensor              # [steps] ... along the vertical axis, top row first
    latents: torch.Tensor         # [rows, steps, D]: the code decoded in each cell (row 0 at the top)
    images: torch.Tensor          # [rows, steps, C, H, W]
    dims: tuple[int, ...] | None  # the latent dimensions along x (and y); None for principal directions
    chosen_by: str                # dims: "--dims", "activity" (the most active), "all" (the latent has no
                                  # more), "first" (activity unknown); "pca" for principal directions
    activity: torch.Tensor | None  # [D] variance of each dimension's code over the test images (a VAE:
                                  # of its posterior means); None with fewer than 2 codes
    n_codes: int                  # how many test codes were measured
    explained: list[float] | None = None  # pca: fraction of the codes' variance along each direction

    def summary(self) -> list[str]:
        """What the grid is over and why those axes, in words (what `zoo manifold` prints)."""
        rows, cols = self.latents.shape[:2]
        d = self.latents.shape[-1]
        if self.dims is None:
            ev = self.explained
            return [f"decoded a {rows}×{cols} grid over the first two principal directions of the {d}-D test "
                    f"codes ({SPAN_PERCENTILES[0]:g}th to {SPAN_PERCENTILES[1]:g}th percentile of their scores)",
                    f"PC 1 holds {ev[0]:.0%} and PC 2 {ev[1]:.0%} of the codes' variance; "
                    "to sweep latent dimensions instead, pick two with --dims I,J"]
        names = _names(self.dims)
        others = d - len(self.dims)
        if self.kind == "prior":
            over = f"the prior's quantiles of {names}" + (f" (the other {others} dimensions at 0)" if others else "")
            measure = "the variance of the posterior means"
        else:
            over = (f"{names}, {SPAN_PERCENTILES[0]:g}th to {SPAN_PERCENTILES[1]:g}th percentile of the test codes"
                    + (f" (the other {others} dimensions at their mean)" if others else ""))
            measure = "the variance of the codes"
        lines = [f"decoded a {rows}×{cols} grid over {over}"]
        why = {"--dims": "chosen with --dims",
               "activity": f"the two most active of {d}; pick others with --dims I,J",
               "all": f"the {d}-D latent's own axes" + ("; swap them with --dims 1,0" if d == 2 else ""),
               "first": "the first ones, their activity unknown (it needs the codes of 2 or more test images); "
                        "pick others with --dims I,J"}
        if self.activity is None:
            lines.append(f"dimensions {', '.join(f'z[{i}]' for i in self.dims)}: {why[self.chosen_by]}")
            return lines
        parts = []
        for i in self.dims:
            a = float(self.activity[i])
            parts.append(f"z[{i}] {a:.3g}" + (" (inactive)" if self.kind == "prior" and a < ACTIVE_THRESHOLD else ""))
        lines.append(f"activity ({measure} over {self.n_codes} test images): {', '.join(parts)}; "
                     f"{why[self.chosen_by]}")
        return lines


def parse_dims(spec: str | tuple[int, ...] | list[int], d: int) -> tuple[int, ...]:
    """The latent dimensions a user named for a grid's axes ("3,7", "3 7" or (3, 7)): two different ones
    in 0..d-1 (for a 1-D latent, its one). Anything else is one ConfigError saying what to give."""
    want = min(d, 2)
    text = spec if isinstance(spec, str) else ",".join(str(v) for v in spec)
    shown = text if len(text) <= 40 else text[:37] + "..."
    hint = (f"Give {'two different dimensions' if want == 2 else 'its one dimension'} of the {d}-D latent "
            f"(0..{d - 1}), e.g. --dims {'0,1' if want == 2 else '0'}.")
    parts = [p for p in text.replace(" ", ",").split(",") if p]
    bad = [p for p in parts if not re.fullmatch(r"[+-]?\d{1,18}", p)]
    if bad:
        raise ConfigError(f"--dims '{shown}': '{bad[0][:20]}' is not a whole number", hint)
    if len(parts) != want:
        raise ConfigError(f"--dims '{shown}' names {len(parts)} dimension{'s' if len(parts) != 1 else ''}; "
                          f"the grid has {want} ax{'es' if want == 2 else 'is'}", hint)
    dims = tuple(int(p) for p in parts)
    wrong = [i for i in dims if not 0 <= i < d]
    if wrong:
        raise ConfigError(f"--dims '{shown}': dimension {wrong[0]} does not exist in the {d}-D latent", hint)
    if len(set(dims)) != len(dims):
        raise ConfigError(f"--dims '{shown}' names dimension {dims[0]} twice", hint)
    return dims


def activity(z: torch.Tensor) -> torch.Tensor | None:
    """Each latent dimension's activity: the variance of its codes over the images (for a VAE's posterior
    means, Burda et al.'s measure of an active unit). None when fewer than 2 codes leave it undefined."""
    return z.double().var(0) if z.shape[0] >= 2 else None


def _pick_dims(d: int, given: tuple[int, ...] | None, act: torch.Tensor | None,
               prior: bool) -> tuple[tuple[int, ...] | None, str]:
    """The latent dimensions a grid runs along, and why: the user's, all of a latent of 1 or 2, else the two
    most active (the most active along the horizontal axis; ties: the lower index) for a model with a
    prior, or none (the principal directions) for one without."""
    if given is not None:
        return given, "--dims"
    if d <= 2:
        return tuple(range(d)), "all"
    if not prior:
        return None, "pca"
    if act is None:
        return (0, 1), "first"
    order = torch.argsort(act, descending=True, stable=True)
    return (int(order[0]), int(order[1])), "activity"


def _span(values: torch.Tensor, steps: int) -> torch.Tensor:
    """`steps` values evenly spaced from the 5th to the 95th percentile of `values` (SPAN_PERCENTILES)."""
    lo, hi = np.percentile(values.double().numpy(), SPAN_PERCENTILES)
    return torch.linspace(float(lo), float(hi), steps, dtype=torch.float64)


@torch.no_grad()
def manifold(source, *, steps: int = 15, dims: str | tuple[int, ...] | list[int] | None = None,
             out: str | Path | None = None, data_dir: str | None = None, device: str | None = None) -> ManifoldResult:
    """Decode a regular 2-D grid of codes along two latent dimensions (or the principal directions).

    A model that can sample (a VAE): over the prior's quantiles Φ⁻¹(p), p evenly spaced in (0, 1), as in
    Kingma & Welling's figure; the other dimensions at the prior's mean, 0. Another: from the 5th to the
    95th percentile of the test codes (SPAN_PERCENTILES), the other dimensions at the codes' mean; for a
    latent of more than 2 dimensions and no `dims`, along the first two principal directions of the test
    codes instead (the same percentiles of their scores, mapped back by the inverse PCA).

    The dimensions are `dims` ("3,7" or (3, 7)) if given; else, for a VAE, the two most active, whose
    posterior means vary most over the test images (Burda et al.): the first two may be inactive."""
    net = _load(source, device)
    _require(net, "decode")
    if not 2 <= steps <= 100:
        raise ConfigError(f"--steps must be in 2..100, got {steps}")
    path = picture_output(out, net.output_dir / "manifold.png")
    d = latent_dim(net)
    given = parse_dims(dims, d) if dims is not None else None
    prior = net.can("sample")
    if not prior:
        _require(net, "encode")
    c = _prior_codes(net, data_dir, needed=given is None and d > 2) if prior else _codes(net, "test", None, data_dir)
    z = c.z.double() if c is not None else torch.zeros((0, d), dtype=torch.float64)
    if c is not None:
        check_codes(z.numpy(), "a grid over the codes", c.where(), need=0 if prior else 2, spread=not prior)
    act = activity(z)
    chosen, chosen_by = _pick_dims(d, given, act, prior)
    explained = None
    if chosen is None:
        from sklearn.decomposition import PCA

        kind = "pca"
        pca = PCA(n_components=2, random_state=0).fit(z.numpy())
        scores = torch.from_numpy(pca.transform(z.numpy()))
        axes = [_span(scores[:, 0], steps), _span(scores[:, 1], steps)]
        explained = [float(v) for v in pca.explained_variance_ratio_]
        labels = (f"PC 1 score ({explained[0]:.0%} of variance)", f"PC 2 score ({explained[1]:.0%} of variance)")
        how = (f"the first two principal directions of the {d}-D test codes, {SPAN_PERCENTILES[0]:g}th to "
               f"{SPAN_PERCENTILES[1]:g}th percentile of their scores (inverse PCA)")
    elif prior:
        kind = "prior"
        q = torch.distributions.Normal(0.0, 1.0).icdf((torch.arange(steps, dtype=torch.float64) + 0.5) / steps)
        axes = [q for _ in chosen]
        labels = tuple(f"z[{i}]: N(0,1) quantile" for i in chosen)
        how = (f"the prior's quantiles Φ⁻¹(p) of {_names(chosen)}, p evenly spaced in (0, 1)"
               + (f"; the other {d - len(chosen)} dimensions at 0" if d > len(chosen) else ""))
        base = torch.zeros(d, dtype=torch.float64)
    else:
        kind = "latent"
        axes = [_span(z[:, i], steps) for i in chosen]
        labels = tuple(f"z[{i}]" for i in chosen)
        how = (f"{_names(chosen)}, {SPAN_PERCENTILES[0]:g}th to {SPAN_PERCENTILES[1]:g}th percentile of the "
               f"{z.shape[0]} test codes" + (f"; the other {d - len(chosen)} dimensions at their mean"
                                             if d > len(chosen) else ""))
        base = z.mean(0)
    two = len(axes) == 2
    xs = axes[0]
    ys = axes[1].flip(0) if two else torch.zeros(1, dtype=torch.float64)  # top row: the largest value
    gx, gy = xs.view(1, -1).expand(len(ys), -1), ys.view(-1, 1).expand(-1, len(xs))
    grid = torch.stack([gx, gy], -1).reshape(-1, 2)              # [rows * steps, 2], row by row
    if kind == "pca":
        flat = torch.from_numpy(pca.inverse_transform(grid.numpy()))
    else:
        flat = base.expand(grid.shape[0], d).clone()
        for axis, i in enumerate(chosen):
            flat[:, i] = grid[:, axis]
    latents = flat.float().view(len(ys), len(xs), d)
    images = torch.cat([net.decode(b.to(net.device)).float().clamp(0, 1).cpu()
                        for b in flat.float().split(1024)])
    images = images.view(len(ys), len(xs), *images.shape[1:])
    title = f"{net.name}: decoded {len(ys)}×{len(xs)} grid over\n{how}" if two else \
        f"{net.name}: decoded codes along {how}"
    _grid_picture(images, xs, ys if two else None, labels, title, path)
    return ManifoldResult(path, kind, xs.float(), ys.float(), latents, images, chosen, chosen_by, act,
                          int(z.shape[0]), explained)


def _prior_codes(net, data_dir: str | None, *, needed: bool) -> Codes | None:
    """The test codes of a model with a prior, which measure its dimensions' activity. Its grid itself
    needs no data: unless they are `needed` to choose the dimensions, missing data only leaves the
    activity unknown (None: also for a model that cannot encode)."""
    from zoo.errors import DataNotFoundError

    if not net.can("encode"):
        return None
    try:
        return _codes(net, "test", None, data_dir)
    except DataNotFoundError as e:
        if needed:
            raise DataNotFoundError(e.message, ((e.hint + "\n") if e.hint else "") + "Or name the two dimensions "
                                    "to sweep with --dims I,J: a grid over the prior needs no data then.") from None
        return None


def _names(dims: tuple[int, ...]) -> str:
    return " and ".join(f"z[{i}]" for i in dims)


def _display(img: torch.Tensor) -> np.ndarray:
    """[C, H, W] in [0, 1] -> an array imshow takes (grey [H, W] or RGB [H, W, 3])."""
    a = img.detach().float().clamp(0, 1).cpu().numpy()
    return a[0] if a.shape[0] == 1 else a[:3].transpose(1, 2, 0)


def _ticks(values: torch.Tensor, max_ticks: int = 9) -> tuple[list[int], list[str]]:
    k = len(values)
    every = max(1, int(np.ceil(k / max_ticks)))
    pos = list(range(0, k, every))
    return pos, [f"{float(values[i]):.2g}" for i in pos]


def _grid_picture(images: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor | None, labels, title: str,
                  path: Path) -> Path:
    plt = pyplot()
    rows, cols, c, h, w = images.shape
    mosaic = images.permute(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)   # [rows*H, cols*W, C]
    arr = mosaic[..., 0].numpy() if c == 1 else mosaic[..., :3].numpy()
    side = min(12.0, max(4.0, 0.55 * cols))
    fig, ax = plt.subplots(figsize=(side + 1.2, side * rows / cols + 1.4))
    ax.imshow(arr, cmap="gray", vmin=0, vmax=1, interpolation="nearest",
              extent=(-0.5, cols - 0.5, rows - 0.5, -0.5))
    pos, text = _ticks(xs)
    ax.set_xticks(pos, text)
    ax.set_xlabel(labels[0])
    if ys is not None:
        pos, text = _ticks(ys)
        ax.set_yticks(pos, text)
        ax.set_ylabel(labels[1])
    else:
        ax.set_yticks([])
    ax.set_title(title)
    fig.tight_layout()
    out = save_png(fig, path)
    plt.close(fig)
    return out


# ---------------------------------------------------------------------------------- zoo interpolate

@dataclass
class Endpoint:
    spec: str                     # what the user wrote
    kind: str                     # class or image
    index: int                    # class index, or test-image index
    label: str                    # for the picture
    z: torch.Tensor               # [D]
    image: torch.Tensor | None = None  # [C, H, W] in [0, 1] for a test image


@dataclass
class InterpolationResult:
    png: Path
    start: Endpoint
    end: Endpoint
    t: torch.Tensor               # [steps], 0 .. 1
    latents: torch.Tensor         # [steps, D]
    images: torch.Tensor          # [steps, C, H, W]


def _endpoint(spec: str | int, net, data, x, y, class_codes) -> Endpoint:
    text = str(spec).strip()
    if text.startswith("#"):
        raw = text[1:].strip()
        if not raw.isdigit() or len(raw) > 18:
            raise ConfigError(f"'{text[:40]}': a test image is written #INDEX, e.g. #123")
        i = int(raw)
        n = x.shape[0]
        if i >= n:
            have = f"the test set has {n} images (#0..#{n - 1})" if n else "the test set has no images"
            raise ConfigError(f"test image #{i} does not exist: {have}")
        z = encode_images(net, x[i:i + 1])[0]
        lab = int(y[i])
        name = data.classes[lab] if 0 <= lab < len(data.classes) else "unlabelled"
        return Endpoint(text, "image", i, f"test #{i}\n({name})", z, x[i].float().cpu() / 255.0)
    index = resolve_class(text, data.classes)
    mean, _ = class_stats(*class_codes(), index)
    return Endpoint(text, "class", index, f"mean of\n'{data.classes[index]}'", mean)


@torch.no_grad()
def interpolate(source, start: str | int, end: str | int, *, steps: int = 10, out: str | Path | None = None,
                data_dir: str | None = None, device: str | None = None) -> InterpolationResult:
    """Decode `steps` codes along the straight line between two endpoints: each a class (index or
    name: its mean code over the test set) or a test image written `#INDEX` (its code)."""
    net = _load(source, device)
    _require(net, "encode", "decode")
    if not 2 <= steps <= 200:
        raise ConfigError(f"--steps must be in 2..200, got {steps}")
    path = picture_output(out, net.output_dir / "interpolation.png")
    data, x, y = run_split(net, CLASS_SPLIT, data_dir)
    cache: dict[str, tuple] = {}

    def class_codes():
        if "all" not in cache:
            cache["all"] = (encode_images(net, x), y.cpu())
        return cache["all"]

    a = _endpoint(start, net, data, x, y, class_codes)
    b = _endpoint(end, net, data, x, y, class_codes)
    t = torch.linspace(0.0, 1.0, steps)
    latents = (1 - t).unsqueeze(1) * a.z.unsqueeze(0) + t.unsqueeze(1) * b.z.unsqueeze(0)
    latents[0], latents[-1] = a.z, b.z                              # exactly the endpoints
    images = net.decode(latents.to(net.device)).float().clamp(0, 1).cpu()
    what = {"class": "class means", "image": "test images' codes"}
    kinds = what[a.kind] if a.kind == b.kind else "codes"
    title = (f"{net.name} on {data.name}: decoded along the line between {kinds}\n"
             f"{a.label.replace(chr(10), ' ')} → {b.label.replace(chr(10), ' ')}, {steps} steps")
    _interpolation_picture(a, b, t, images, title, path)
    return InterpolationResult(path, a, b, t, latents, images)


def _interpolation_picture(a: Endpoint, b: Endpoint, t: torch.Tensor, images: torch.Tensor, title: str,
                           path: Path) -> Path:
    plt = pyplot()
    panels: list[tuple[str, torch.Tensor, str]] = []
    if a.image is not None:
        panels.append(("input", a.image, f"input\n#{a.index}"))
    for i, (ti, img) in enumerate(zip(t.tolist(), images)):
        name = a.label if i == 0 else b.label if i == len(t) - 1 else ""
        panels.append(("decoded", img, f"t={ti:.2f}" + (f"\n{name}" if name else "")))
    if b.image is not None:
        panels.append(("input", b.image, f"input\n#{b.index}"))
    k = len(panels)
    width = min(1.25 * k + 0.4, 26)
    fig, axes = plt.subplots(1, k, figsize=(width, width / k + 1.0), squeeze=False, layout="constrained")
    for ax, (kind, img, caption) in zip(axes[0], panels):
        ax.imshow(_display(img), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(caption, fontsize=8)
        if kind == "input":
            for spine in ax.spines.values():
                spine.set_edgecolor("tab:red")
                spine.set_linewidth(2)
    fig.suptitle(title, fontsize=10)
    out = save_png(fig, path)
    plt.close(fig)
    return out
