"""The decoded manifold of a trained run: a regular 2-D grid of codes, along two latent dimensions (a VAE's
prior quantiles, or the central 90% of the test codes) or the first two principal directions, decoded.

    zoo.manifold(RUN, steps=15)                 # PNG of a decoded 2-D grid
    zoo.manifold(RUN, dims="3,7")               # ... over latent dimensions 3 and 7
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from zoo.analysis.checks import as_python, check_codes
from zoo.analysis.latent import Codes, net_codes
from zoo.analysis.latent_samplers import latent_dim
from zoo.analysis.plots import DPI, PIXEL_BUDGET, save_png, subplots, tidy
from zoo.errors import CapabilityError, ConfigError, DataNotFoundError
from zoo.runs.config import check_count
from zoo.runs.files import picture_output
from zoo.runs.loading import load
from zoo.runs.run import evaluated
from zoo.runs.training_state import say_if_untrained

# A grid over the test codes spans their central 90% along each axis, not their min..max: a few outlying
# codes would otherwise leave most tiles decoding empty space. (A VAE's grid is over its prior instead.)
SPAN_PERCENTILES = (5.0, 95.0)
# Burda et al.'s threshold: a VAE's latent unit whose posterior mean varies less over the data is inactive.
ACTIVE_THRESHOLD = 0.01


@dataclass
class ManifoldResult:
    png: Path
    kind: str                     # prior, latent, pca
    xs: torch.Tensor = field(repr=False)       # [steps] grid values along the horizontal axis
    ys: torch.Tensor = field(repr=False)       # [steps] ... along the vertical axis, top row first
    latents: torch.Tensor = field(repr=False)  # [rows, steps, D]: the code decoded in each cell (row 0 at the top)
    images: torch.Tensor = field(repr=False)   # [rows, steps, C, H, W]
    dims: tuple[int, ...] | None  # the latent dimensions along x (and y); None for principal directions
    chosen_by: str                # dims: "--dims", "activity" (the most active), "all" (the latent has no
                                  # more), "first" (activity unknown); "pca" for principal directions
    # [D] variance of each dimension's code over the test images (a VAE: of its posterior means); None with
    # fewer than 2 codes
    activity: torch.Tensor | None = field(repr=False)
    n_codes: int                  # how many test codes were measured
    explained: list[float] | None = None  # pca: fraction of the codes' variance along each direction
    codes_note: str = ""          # what the codes are, where not the whole latent (ZooModel.codes_note)

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
            over = f"the prior's quantiles of {names}" + (f" (the other {others} dimensions at the prior's mean)"
                                                          if others else "")
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


def parse_dims(spec, d: int) -> tuple[int, ...]:
    """The latent dimensions a user named for a grid's axes ("3,7", "3 7", (3, 7) or an integer tensor or numpy
    array): two different ones
    in 0..d-1 (for a 1-D latent, its one). Anything else is one ConfigError saying what to give."""
    want = min(d, 2)
    spec = as_python(spec)  # torch.tensor([0, 1]) or np.array([0, 1]): [0, 1]
    if isinstance(spec, int):
        spec = [spec]
    elif not isinstance(spec, (str, list, tuple)):  # a float or 2-D array, a set, ...: said as what it is
        raise ConfigError(f"--dims (dims=) takes whole numbers, e.g. '0,1' or (0, 1), not {type(spec).__name__} "
                          f"{str(spec)[:40]}", f"Give the dimensions of the {d}-D latent as whole numbers.")
    text = spec if isinstance(spec, str) else ",".join(str(v) for v in spec) if isinstance(spec, (list, tuple)) \
        else str(spec)
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


@evaluated
@torch.no_grad()
def manifold(source, *, steps: int = 15, dims: str | tuple[int, ...] | list[int] | None = None,
             out: str | Path | None = None, data_dir: str | None = None, device: str | None = None) -> ManifoldResult:
    """Decode a regular 2-D grid of codes along two latent dimensions (or the principal directions).

    A model that can sample (a VAE): over the prior's quantiles Φ⁻¹(p), p evenly spaced in (0, 1), as in
    Kingma & Welling's figure; the other dimensions at the prior's mean, 0. A prior that is no standard
    normal (`prior_codes`: a VampPrior's mixture) gives the quantiles and mean of PRIOR_DRAWS codes drawn
    from it. Another: from the 5th to the
    95th percentile of the test codes (SPAN_PERCENTILES), the other dimensions at the codes' mean; for a
    latent of more than 2 dimensions and no `dims`, along the first two principal directions of the test
    codes instead (the same percentiles of their scores, mapped back by the inverse PCA).

    The dimensions are `dims` ("3,7" or (3, 7)) if given; else, for a VAE, the two most active, whose
    posterior means vary most over the test images (Burda et al.): the first two may be inactive."""
    net = load(source, device=device)
    if not net.can("decode"):  # a GAN's generator or a CVAE's decoder: no plain code -> image to sweep
        raise CapabilityError(f"model '{net.name}' cannot decode a code: a manifold is a grid of codes, decoded",
                              "It needs a model that decodes a code alone: an autoencoder or a VAE (zoo list). "
                              f"It can: {', '.join(net.capabilities()) or 'nothing listed'}.")
    steps = check_count(steps, "--steps (steps=)", 2, 100)
    path = picture_output(out, own=net.folder) or net.output_dir / "manifold.png"
    say_if_untrained(net.folder, "these images are of")
    d = latent_dim(net)
    given = parse_dims(dims, d) if dims is not None else None
    prior = net.can("sample")
    if not prior:
        net.require("encode")
    c = _prior_codes(net, data_dir, needed=given is None and d > 2) if prior else net_codes(net, "test", None, data_dir)
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
        p = (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
        drawn = _drawn_prior(net, d)
        if drawn is None:  # the standard normal: its quantiles exactly
            q = torch.distributions.Normal(0.0, 1.0).icdf(p)
            axes = [q for _ in chosen]
            labels = tuple(f"z[{i}]: N(0,1) quantile" for i in chosen)
            how = f"the prior's quantiles Φ⁻¹(p) of {_names(chosen)}, p evenly spaced in (0, 1)"
            base = torch.zeros(d, dtype=torch.float64)
        else:  # another prior (a VampPrior's mixture): the quantiles of many codes drawn from it
            axes = [torch.quantile(drawn[:, i], p) for i in chosen]
            labels = tuple(f"z[{i}]: prior quantile" for i in chosen)
            how = (f"the prior's quantiles of {_names(chosen)} ({drawn.shape[0]:,} codes drawn from it), "
                   "p evenly spaced in (0, 1)")
            base = drawn.mean(0)
        how += f"; the other {d - len(chosen)} dimensions at the prior's mean" if d > len(chosen) else ""
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
                          int(z.shape[0]), explained, net.model.codes_note)


def _prior_codes(net, data_dir: str | None, *, needed: bool) -> Codes | None:
    """The test codes of a model with a prior, which measure its dimensions' activity. Its grid itself
    needs no data: unless they are `needed` to choose the dimensions, missing data only leaves the
    activity unknown (None: also for a model that cannot encode)."""
    if not net.can("encode"):
        return None
    try:
        return net_codes(net, "test", None, data_dir)
    except DataNotFoundError as e:
        if needed:
            raise DataNotFoundError(e.message, ((e.hint + "\n") if e.hint else "") + "Or name the two dimensions "
                                    "to sweep with --dims I,J: a grid over the prior needs no data then.") from None
        return None


PRIOR_DRAWS = 20_000  # codes drawn from a prior that is no standard normal, for its quantiles


def _drawn_prior(net, d: int) -> torch.Tensor | None:
    """Codes [PRIOR_DRAWS, d] (float64, CPU) drawn with a fixed seed from a model's prior that is no standard
    normal (ZooModel.prior_codes); None for the standard normal."""
    if not net.can("prior_codes"):
        return None
    gen = torch.Generator(device=net.device).manual_seed(0)
    try:
        with torch.no_grad():
            drawn = net.model.prior_codes(PRIOR_DRAWS, generator=gen).double().cpu()
    except NotImplementedError:  # this configuration's prior is the standard normal after all
        return None
    if drawn.shape != (PRIOR_DRAWS, d) or not bool(torch.isfinite(drawn).all()):
        raise CapabilityError(f"model '{net.name}': prior_codes gave {tuple(drawn.shape)} codes (or not finite ones), "
                              f"not [{PRIOR_DRAWS}, {d}]", "A fix for the plugin's author (docs/plugins.md).")
    return drawn


def _names(dims: tuple[int, ...]) -> str:
    return " and ".join(f"z[{i}]" for i in dims)


def _ticks(values: torch.Tensor, max_ticks: int = 9) -> tuple[list[int], list[str]]:
    k = len(values)
    every = max(1, int(np.ceil(k / max_ticks)))
    pos = list(range(0, k, every))
    return pos, [f"{float(values[i]):.2g}" for i in pos]


def _grid_picture(images: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor | None, labels, title: str,
                  path: Path) -> Path:
    rows, cols, c, h, w = images.shape
    mosaic = images.permute(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)   # [rows*H, cols*W, C]
    arr = mosaic[..., 0].numpy() if c == 1 else mosaic[..., :3].numpy()
    # 0.55 inch an image, up to PIXEL_BUDGET a side: 100 × 100 images of 28 pixels keep 24 pixels each
    side = min(PIXEL_BUDGET / DPI, max(4.0, 0.55 * cols))
    fig, ax = subplots(figsize=(side + 1.2, side * rows * h / (cols * w) + 1.4))
    # one unit of the axes a cell, each shown at its images' own height to width (not squeezed square)
    ax.imshow(arr, cmap="gray", vmin=0, vmax=1, interpolation="nearest", aspect=h / w,
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
    tidy(fig)
    out = save_png(fig, path)
    return out
