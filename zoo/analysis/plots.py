"""Pictures of a run: loss curves and rows of images. Written as PNG by matplotlib, off-screen."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ConfigError
from zoo.runs.checkpoint import atomic_write
from zoo.runs.plugin_calls import model_preview

# A title naming a user's folder in a script the font lacks (数字) draws boxes for it: the picture is right, and
# matplotlib's warning, pointing into zoo's source at every draw, said nothing a user could act on.
warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)


def figure_class():
    """matplotlib's Figure, imported even where $MPLBACKEND names no backend (matplotlib's import refuses one):
    zoo draws off-screen, where no backend plays a part, and a misspelt one failed every picture after the training
    they show. It is imported once without the variable, which is then put back as the caller had it."""
    try:
        from matplotlib.figure import Figure
    except ValueError:
        wrong = os.environ.pop("MPLBACKEND", None)
        if wrong is None:
            raise
        for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"]:  # the failed import's half
            del sys.modules[name]
        try:
            from matplotlib.figure import Figure
        finally:
            os.environ["MPLBACKEND"] = wrong
    return Figure


def subplots(*grid, figsize, dpi=None, layout=None, **options):
    """pyplot.subplots, off-screen: a Figure of its own with its axes, drawn to files only. Not through pyplot,
    whose backend is the caller's: switching it to Agg stopped a notebook's own plots from being shown."""
    fig = figure_class()(figsize=figsize, dpi=dpi, layout=layout)
    return fig, fig.subplots(*grid, **options)


def colour_map(name: str):
    """A matplotlib colour map by name (tab10, turbo, ...)."""
    figure_class()  # matplotlib imported whatever $MPLBACKEND says
    import matplotlib

    return matplotlib.colormaps[name]


def drawable_texts(fig) -> None:
    """Make every text of `fig` one FreeType can draw: a name from a file system that is not UTF-8 (a Latin-1
    folder) reaches Python holding lone surrogates (\\udce4), which failed the picture with a traceback after
    the training it shows; such a character is drawn as U+FFFD instead."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        s = text.get_text()
        if isinstance(s, str) and any("\ud800" <= c <= "\udfff" for c in s):
            text.set_text("".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in s))


def tidy(fig) -> None:
    """fig.tight_layout() of drawable texts (tight_layout draws them)."""
    drawable_texts(fig)
    fig.tight_layout()


def save_figure(fig, path: Path, **savefig) -> Path:
    """Write a matplotlib figure as a PNG through checkpoint.atomic_write, the one file writer: a kill
    or a full disk leaves the previous picture, never half of one."""
    import io

    drawable_texts(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **savefig)
    atomic_write(Path(path), buf.getvalue())
    return Path(path)


WEIGHTS_STAMP = "zoo-weights"  # PNG text: the digest of the weights whose outputs a picture shows


def save_png(fig, path: Path, weights: str | None = None, stamps: dict[str, str] | None = None) -> Path:
    """A figure as zoo writes every picture: 110 dpi, cropped to its content; `weights`: the digest of the
    weights whose outputs it shows, kept in the PNG (WEIGHTS_STAMP) so that a push can tell a picture of
    other weights (made before --resume) by its contents, whatever its file's times; `stamps`: other PNG
    text to keep in it (png_stamp reads them back)."""
    metadata = {**(stamps or {}), **({WEIGHTS_STAMP: weights} if weights else {})}
    return save_figure(fig, path, dpi=DPI, bbox_inches="tight", **({"metadata": metadata} if metadata else {}))


def png_stamp(path: Path, key: str) -> str | None:
    """A PNG text entry zoo kept in a picture (save_png); None: none, or no picture that can be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.text.get(key) if hasattr(im, "text") else None
    except (OSError, ValueError):
        return None


def weights_stamp(path: Path) -> str | None:
    """The WEIGHTS_STAMP of a PNG zoo wrote (None: none, as in pictures of zoo before 0.4, or unreadable)."""
    return png_stamp(path, WEIGHTS_STAMP)


def loss_curves(history: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Every '*loss' series of metrics.jsonl against the epoch."""
    fig, ax = subplots(figsize=(6, 4))
    epochs = [r["epoch"] for r in history]
    keys = sorted({k for r in history for k in r if k.endswith("loss")})
    for k in keys:
        ax.plot(epochs, [r.get(k, float("nan")) for r in history], marker="o", markersize=3, label=k.replace("_", " "))
    best = [r["epoch"] for r in history if r.get("best")]
    if best:
        ax.axvline(best[-1], color="grey", linestyle=":", label=f"best epoch ({best[-1]})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if keys and all(r.get(k, 1) > 0 for r in history for k in keys):
        ax.set_yscale("log")
    ax.set_title(title or "loss")
    ax.grid(alpha=0.3)
    if keys:
        ax.legend()
    tidy(fig)
    out = save_png(fig, path)
    return out


def epoch_curves(curves: list[tuple[str, list[tuple[int, float]], int | None]], metric: str):
    """A figure of curves of `metric` against the epoch: (label, [(epoch, value)], best epoch) each, a
    labelled line per curve with its best epoch starred; a log scale where the values span over 20×."""
    fig, ax = subplots(figsize=(7, 4.5))
    for label, points, best in curves:
        xs, ys = zip(*points)
        line, = ax.plot(xs, ys, marker="o", markersize=3, label=label)
        if best in xs:
            ax.plot([best], [ys[xs.index(best)]], marker="*", markersize=11, color=line.get_color())
    values = [y for _, points, _ in curves for _, y in points]
    if min(values) > 0 and max(values) / min(values) > 20:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by epoch (★ best epoch)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    tidy(fig)
    return fig


DPI = 110             # save_png's resolution: screen pixels per inch
PIXEL_BUDGET = 2400   # the longest side, in pixels, of a picture's images (about 22 inches): grids grow to it
MIN_TILE = 20         # the pixels an image is shown at, at least: smaller, a picture shows smudges
ZOOM = 3.3            # screen pixels per image pixel where the budget leaves room (a 28-pixel image: 92)
PAD = 2               # white pixels around each image of a grid (make_grid's padding)


def check_tiles(count: int, lines: int, per_row: int, groups: int, shape, hint: str) -> float:
    """The zoom (screen pixels per image pixel) of image_rows' picture of `count` images of `shape` (..., H, W)
    in `lines` lines of at most `per_row`, over `groups` labelled rows: ZOOM, or less within PIXEL_BUDGET. A
    picture that would show each image under MIN_TILE pixels is refused (ConfigError, with `hint`: what to ask
    instead), not written as smudges. Callers check before they make the images, with the same geometry."""
    h, w = int(shape[-2]), int(shape[-1])
    width, height = per_row * (w + PAD) + PAD, lines * (h + PAD) + groups * PAD  # make_grid's, stacked
    zoom = min(max(ZOOM, MIN_TILE / min(h, w)), PIXEL_BUDGET / max(width, height))
    if zoom * min(h, w) < MIN_TILE:
        raise ConfigError(f"a picture of {count:,} images in {lines:,} lines of up to {per_row:,} would show each "
                          f"at {zoom * min(h, w):.0f} pixels: at most {PIXEL_BUDGET:,} pixels a side keep them at "
                          f"{MIN_TILE} or more", hint)
    return zoom


def image_rows(rows: list[tuple[str, torch.Tensor]], path: Path, title: str = "", per_row: int | None = None,
               weights: str | None = None, stamps: dict[str, str] | None = None,
               hint: str = "Show fewer images.") -> Path:
    """Rows of images (each [n, C, H, W] in [0, 1]) with a label on the left of each row; a row holding
    more than `per_row` images (default 16) wraps onto several lines. The figure grows with the images up to
    PIXEL_BUDGET (check_tiles: refused with `hint` beyond it), laid out by hand: no tight_layout to give up
    on many rows. `weights`, `stamps`: as save_png takes them."""
    from torchvision.utils import make_grid

    n_cols = max(r.shape[0] for _, r in rows)
    per_row = min(n_cols, per_row or 16)
    lines = sum(-(-r.shape[0] // per_row) for _, r in rows)
    zoom = check_tiles(sum(r.shape[0] for _, r in rows), lines, per_row, len(rows), rows[0][1].shape, hint)
    grids = [(label, make_grid(imgs.detach().float().clamp(0, 1).cpu(), nrow=per_row, padding=PAD, pad_value=1.0))
             for label, imgs in rows]
    gap_in, edge_in = 0.12, 0.1  # inches: between rows, around
    label_in = 1.6 if any(label for label, _ in rows) else edge_in  # the labels' column, where there are labels
    title_in = 0.3 * (title.count("\n") + 1) + 0.15 if title else 0.0
    sizes = [(g.shape[2] * zoom / DPI, g.shape[1] * zoom / DPI) for _, g in grids]
    fig_w = label_in + max(w for w, _ in sizes) + edge_in
    fig_h = title_in + sum(h for _, h in sizes) + gap_in * (len(grids) - 1) + 2 * edge_in
    fig = figure_class()(figsize=(fig_w, fig_h))
    top = fig_h - edge_in - title_in
    for (label, grid), (w, h) in zip(grids, sizes):
        top -= h
        ax = fig.add_axes((label_in / fig_w, top / fig_h, w / fig_w, h / fig_h))
        top -= gap_in
        img = grid.permute(1, 2, 0).numpy()
        ax.imshow(img[:, :, 0] if img.shape[2] == 1 or (grid[0] == grid[1]).all() else img,
                  cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
    if title:
        fig.suptitle(title, y=1 - edge_in / fig_h, va="top")
    return save_png(fig, path, weights, stamps)


@torch.no_grad()
def preview(model, x_uint8: torch.Tensor, path: Path, title: str = "", weights: str | None = None) -> Path | None:
    """What the model does to (or instead of) a few test images, as labelled rows."""
    x = x_uint8.to(model.device).float() / 255.0
    rows = model_preview(model, x)
    return image_rows(rows, path, title, weights=weights) if rows else None


def noise_sweep(result: dict, path: Path) -> Path:
    """Test MSE against noise strength for the model (and its baseline), other noise kinds as points."""
    fig, (ax, ax2) = subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 2]})
    scaled = [r for r in result["rows"] if r["factor"] is not None]
    others = [r for r in result["rows"] if r["factor"] is None]
    series = [("model", "model_mse", "o-"), ("baseline", "baseline_mse", "s--"), ("noisy input", "noisy_mse", ":")]
    for label, key, style in series:
        if scaled and scaled[0][key] is not None:
            ax.plot([r["factor"] for r in scaled], [r[key] for r in scaled], style, label=label)
    ax.set_xlabel(f"noise strength (× {result['noise']}"
                  + (", the training noise)" if result["noise"] == result["trained_noise"] else ")"))
    ax.set_ylabel("test MSE against the clean image")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("noise sweep")
    if others:
        names = [r["noise"] for r in others]
        width = 0.27
        for j, (label, key, _) in enumerate(series):
            if others[0][key] is not None:
                ax2.bar([i + (j - 1) * width for i in range(len(others))], [r[key] for r in others], width, label=label)
        ax2.set_xticks(range(len(others)))
        ax2.set_xticklabels(names, rotation=15)
        ax2.set_ylabel("test MSE")
        ax2.set_title("other noise kinds")
        ax2.legend(fontsize=8)
    tidy(fig)
    out = save_png(fig, path)
    return out
