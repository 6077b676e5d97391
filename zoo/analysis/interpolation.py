"""Interpolation in a trained run's latent space: the codes along the straight line between two class
means or two test images' codes, decoded.

    zoo.interpolate(RUN, "3", "8", steps=10)   # PNG of decodes between class means
    zoo.interpolate(RUN, "#12", "#40")         # ... between two test images' codes

Codes come from the model's `encode` (a VAE's posterior mean); class means are over the test set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from zoo.analysis.class_codes import CLASS_SPLIT, class_label, class_stats, described, resolve_class
from zoo.analysis.latent_samplers import encode_images, run_split
from zoo.analysis.plots import DPI, PIXEL_BUDGET, save_png, subplots
from zoo.console import to_stderr
from zoo.data.datasets import class_name
from zoo.errors import ConfigError
from zoo.runs.config import check_count
from zoo.runs.files import picture_output
from zoo.runs.loading import load
from zoo.runs.run import evaluated
from zoo.runs.training_state import say_if_untrained


def _display(img: torch.Tensor) -> np.ndarray:
    """[C, H, W] in [0, 1] -> an array imshow takes (grey [H, W] or RGB [H, W, 3])."""
    a = img.detach().float().clamp(0, 1).cpu().numpy()
    return a[0] if a.shape[0] == 1 else a[:3].transpose(1, 2, 0)



@dataclass
class Endpoint:
    spec: str                     # what the user wrote
    kind: str                     # class or image
    index: int                    # class index, or test-image index
    label: str                    # for the picture
    z: torch.Tensor = field(repr=False)  # [D]
    image: torch.Tensor | None = field(default=None, repr=False)  # [C, H, W] in [0, 1] for a test image


@dataclass
class InterpolationResult:
    png: Path
    start: Endpoint
    end: Endpoint
    t: torch.Tensor = field(repr=False)        # [steps], 0 .. 1
    latents: torch.Tensor = field(repr=False)  # [steps, D]
    images: torch.Tensor = field(repr=False)   # [steps, C, H, W]
    codes_note: str = ""          # what the codes are, where not the whole latent (ZooModel.codes_note)


def _endpoint(spec, net, data, x, y, class_codes, which: str) -> Endpoint:
    """A class (index or name; an int, a str, or an integer tensor or numpy value) or a test image `#INDEX`;
    anything else (an image of the user's, as a tensor) is refused shortly, by its type and shape (`which`: the
    argument, start or end)."""
    given, spec = spec, class_label(spec)  # torch.tensor(1): 1, said as 1
    if spec is None:
        own = hasattr(given, "shape")  # an image of the user's, as a tensor or an array
        raise ConfigError(f"{which}= takes a class (its index or name) or '#INDEX' of a test image, not "
                          f"{described(given)}", "Between your own images: run.decode of codes along the line from "
                          "run.encode(a) to run.encode(b) (run = zoo.load(RUN); images in [0, 1], [N, C, H, W])."
                          if own else f"For example {which}=3, {which}='3' or {which}='#12'.")
    text = str(spec).strip()
    if isinstance(spec, str) and text.startswith("#"):
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
        name = class_name(data.classes, lab)
        return Endpoint(text, "image", i, f"test #{i}\n({name})", z, x[i].float().cpu() / 255.0)
    index = resolve_class(spec, data.classes)
    mean, _ = class_stats(*class_codes(), index, data.classes)
    return Endpoint(text, "class", index, f"mean of\n'{data.classes[index]}'", mean)


@evaluated
@torch.no_grad()
def interpolate(source, start: str | int, end: str | int, *, steps: int = 10, out: str | Path | None = None,
                data_dir: str | None = None, device: str | None = None) -> InterpolationResult:
    """Decode `steps` codes along the straight line between two endpoints: each a class (index or
    name: its mean code over the test set) or a test image written `#INDEX` (its code)."""
    net = load(source, device=device)
    net.require("encode")
    net.require("decode")
    steps = check_count(steps, "--steps (steps=)", 2, 200)
    path = picture_output(out, own=net.folder) or net.output_dir / "interpolation.png"
    say_if_untrained(net.folder, "these images are of")
    data, x, y = run_split(net, CLASS_SPLIT, data_dir)
    cache: dict[str, tuple] = {}

    def class_codes():
        if "all" not in cache:
            cache["all"] = (encode_images(net, x), y.cpu())
        return cache["all"]

    a = _endpoint(start, net, data, x, y, class_codes, "start")
    b = _endpoint(end, net, data, x, y, class_codes, "end")
    if torch.equal(a.z, b.z):  # the same class, image or code twice: a line of one point
        to_stderr(f"note: {a.spec} and {b.spec} have the same code: every step decodes the same image")
    t = torch.linspace(0.0, 1.0, steps)
    latents = (1 - t).unsqueeze(1) * a.z.unsqueeze(0) + t.unsqueeze(1) * b.z.unsqueeze(0)
    latents[0], latents[-1] = a.z, b.z                              # exactly the endpoints
    images = net.decode(latents.to(net.device)).float().clamp(0, 1).cpu()
    what = {"class": "class means", "image": "test images' codes"}
    kinds = what[a.kind] if a.kind == b.kind else "codes"
    title = (f"{net.name} on {data.name}: decoded along the line between {kinds}\n"
             f"{a.label.replace(chr(10), ' ')} → {b.label.replace(chr(10), ' ')}, {steps} steps")
    _interpolation_picture(a, b, t, images, title, path)
    return InterpolationResult(path, a, b, t, latents, images, net.model.codes_note)


PER_LINE = 20  # panels a line of the picture holds


def _interpolation_picture(a: Endpoint, b: Endpoint, t: torch.Tensor, images: torch.Tensor, title: str,
                           path: Path) -> Path:
    """The panels (the input images, if any, at either end) in lines of at most PER_LINE, each 1.25 inches wide
    with its caption under it: a single line of 200 panels shrank each to a few pixels, captions overprinted."""
    panels: list[tuple[str, torch.Tensor, str]] = []
    if a.image is not None:
        panels.append(("input", a.image, f"input\n#{a.index}"))
    digits = 2 if len(t) <= 101 else 3  # steps of about 1/200 written apart: t=0.005, t=0.010
    for i, (ti, img) in enumerate(zip(t.tolist(), images)):
        name = a.label if i == 0 else b.label if i == len(t) - 1 else ""
        panels.append(("decoded", img, f"t={ti:.{digits}f}" + (f"\n{name}" if name else "")))
    if b.image is not None:
        panels.append(("input", b.image, f"input\n#{b.index}"))
    k = len(panels)
    lines, cols = -(-k // PER_LINE), min(k, PER_LINE)
    # a line of 20 panels at 1.25 inches each was 2,794 pixels wide: panels shrink to fit, with room for the tight
    # bounding box's padding and the suptitle
    side = PIXEL_BUDGET / DPI - 0.3
    scale = min(1.0, (side - 0.4) / (1.25 * cols), (side - 0.8) / (1.75 * lines))
    fig, axes = subplots(lines, cols, figsize=(1.25 * scale * cols + 0.4, 1.75 * scale * lines + 0.8),
                         squeeze=False, layout="constrained")
    for ax in axes.flat[k:]:  # the last line's empty places
        ax.set_axis_off()
    for ax, (kind, img, caption) in zip(axes.flat, panels):
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
    return out
