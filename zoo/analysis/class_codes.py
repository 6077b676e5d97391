"""A class of a run's data set as the latent tools take it (`zoo generate --class`, `zoo interpolate`): named by
an index or a name, its mean code over the test images, and codes drawn around that mean (`--spread`)."""

from __future__ import annotations

import difflib
from typing import Callable

import torch

from zoo.analysis.checks import as_python, check_codes
from zoo.errors import ConfigError, RunError
from zoo.runs import inputs

CLASS_SPLIT = "test"      # class means (generate --class, interpolate) are over the test set
DRAW_BOUND = 10.0         # standard deviations: codes drawn around a class mean lie within this (but 1 in 1e23)


def described(value) -> str:
    """What a value is, shortly, for a refusal: its type and shape (a tensor or array), its length (a list), or
    its start (anything else): an image passed as a class printed every pixel."""
    if isinstance(value, torch.Tensor):
        return inputs.described(value)  # "a uint8 tensor of shape [1, 28, 28]", as decode says a tensor
    if value is None:
        return "None"
    kind = type(value).__name__
    kind = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"
    shape = getattr(value, "shape", None)
    if shape is not None:  # a numpy array
        return f"{kind} of shape {list(shape)}"
    if isinstance(value, (list, tuple, set, dict)):
        return f"{kind} of {len(value)} values"
    return f"{kind} ({value!r:.60})"


def class_label(label):
    """A class as an int or a str (torch.tensor(3), np.int64(3) and [3] read as 3); None for anything else, for
    the caller to refuse in its own words."""
    value = as_python(label)  # torch.tensor(3) or np.int64(3): 3, not 'tensor(3)'
    value = value[0] if isinstance(value, list) and len(value) == 1 else value  # torch.tensor([3])
    return value if isinstance(value, (int, str)) else None


def resolve_class(label: str | int, classes: tuple[str, ...] | list[str]) -> int:
    """A class index from an index (7, "7") or a class name ("Sneaker", case-insensitive)."""
    classes = list(classes)
    if not classes:
        raise ConfigError("the run's data set has no class labels")
    value = class_label(label)
    if value is None:
        raise ConfigError(f"a class is given by its index or its name, not {described(label)}",
                          "For example class_label=3 or class_label='3' (--class 3).")
    label = value
    text = str(label).strip()
    names = [c.strip() for c in classes]  # a folder ' spaced' is named by 'spaced' (or ' spaced', quoted)
    for wanted, among in ((text, names), (text.lower(), [c.lower() for c in names])):
        if wanted in among:  # a name first (MNIST's names are its digits), then in other capitals
            return among.index(wanted)
    listed = "Classes: " + ", ".join(f"{j}={c if c == c.strip() else repr(c)}" for j, c in enumerate(classes))
    if text.lstrip("-").isdigit():
        i = int(text) if len(text) <= 18 else -1
        if 0 <= i < len(classes):
            return i
        shown = text if len(text) <= 18 else f"{text[:8]}...{text[-4:]}"  # a number that long names no class
        raise ConfigError(f"class {shown} is out of range: the data set has classes 0..{len(classes) - 1}", listed)
    close = difflib.get_close_matches(text, names, n=3, cutoff=0.4)
    raise ConfigError(f"unknown class {label!r:.60}", (f"Did you mean: {', '.join(close)}? " if close else "") + listed)


def class_stats(codes: torch.Tensor, labels: torch.Tensor, index: int, classes) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and per-dimension standard deviation of one class's codes (`classes`: the names, for messages)."""
    mine = codes[labels.to(codes.device) == index]
    if mine.shape[0] == 0:
        raise ConfigError(f"class '{classes[index]}' has no images in the {CLASS_SPLIT} split, whose codes its "
                          "mean is of", f"Ask for a class the {CLASS_SPLIT} split holds.")
    std = mine.std(0) if mine.shape[0] > 1 else torch.zeros_like(mine[0])
    return mine.mean(0), std


def around_class(codes: torch.Tensor, labels: torch.Tensor, classes, label, spread: float,
                 generator: torch.Generator | None, to: torch.device) -> Callable[[int], torch.Tensor]:
    """`draw(k)`: k codes (on device `to`, the model's) of the class `label`: its mean code over the CLASS_SPLIT
    codes given, plus Gaussian noise of `spread` (a finite number, 0 or more) times the class's per-dimension
    standard deviation, drawn with `generator`. A spread that cannot be measured (one image of the class) or that
    would draw codes beyond float32's range is refused here, before any code is drawn."""
    index = resolve_class(label, classes)
    mean, std = class_stats(codes, labels, index, classes)
    name = classes[index]
    if spread:  # noise of a zero spread draws the mean each time: said, as a plot of such codes is
        if int((labels == index).sum()) == 1:  # one code has no spread to measure, whatever the model
            raise RunError(f"class {name} has 1 {CLASS_SPLIT} image: --spread {spread:g} is a multiple of the spread "
                           f"of its {CLASS_SPLIT} images' codes, and one image has no spread to measure",
                           f"--spread 0 decodes that image's code; a class with 2 or more {CLASS_SPLIT} images "
                           "has a spread.")
        check_codes(codes[labels == index].numpy(), f"--spread {spread:g}",
                    f"class {name}'s {CLASS_SPLIT} images", need=1, spread=True)
        # in the draw's own float32 arithmetic (spread * std is infinite for a spread beyond float32's range):
        # decode refused such codes as codes the user gave (NaN, inf), with a hint for Python
        if not bool(torch.isfinite(mean.abs() + DRAW_BOUND * (spread * std).abs()).all()):
            raise ConfigError(f"--spread {spread:g} draws codes beyond the range of float32, in which they are drawn: "
                              f"class {name}'s codes spread by about {float(std.max()):.2g} a dimension",
                              "Give a smaller --spread (spread=): 0.5 to 2 draws codes around the class's mean.")
    device = generator.device if generator is not None else torch.device("cpu")
    mean, std = mean.to(device), std.to(device)

    def draw(k: int) -> torch.Tensor:
        eps = torch.randn((k, mean.shape[0]), generator=generator, device=device)
        return (mean + spread * std * eps).to(to)

    return draw
