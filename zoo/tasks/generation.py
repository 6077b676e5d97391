"""Sampling images from a run: from the model's prior, of given classes (a conditional model), or
decoded from latent codes a fitted sampler draws or around a class mean."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from zoo import registry
from zoo.analysis import plots
from zoo.analysis.class_codes import resolve_class
from zoo.analysis.latent_samplers import get_sampler, latent_drawer
from zoo.console import to_stderr
from zoo.errors import CapabilityError, ConfigError
from zoo.runs import checkpoint as ckpt
from zoo.runs import files as runfiles
from zoo.runs.config import check_count, check_seed
from zoo.runs.loading import catalogued_name, load
from zoo.runs.run import Run, evaluated
from zoo.runs.training_state import say_if_untrained

SAMPLE_BATCH = 256      # samples made at once: memory stays one batch, whatever --n
MAX_GRID = 2_500        # samples one PNG may show (50 × 50); more go to a .safetensors file
GRID_SIDE = 50          # samples a line of a grid holds at most


def sample_batches(run: Run, n: int, gen: torch.Generator, *, sampler=None, class_label=None,
                    spread: float = 0.0, data_dir: str | None = None, save: bool = True,
                    batch: int = SAMPLE_BATCH):
    """`n` samples in [0, 1] as batches of at most `batch`: from the model's own prior, or decoded from
    latent codes (a fitted sampler, or around a class mean; `data_dir` and `save` as latent_drawer takes
    them). One generator runs through every batch, so the same seed gives the same images."""
    if sampler is None and class_label is None:
        if spread:
            raise ConfigError("--spread (spread=) goes with --class (class_label=)")
        require_prior(run)
        draw = lambda k: run.sample(k, generator=gen)  # noqa: E731
    elif class_label is not None and run.can("sample_class"):  # a conditional model draws the class itself
        if sampler is not None or spread:
            raise ConfigError(f"model '{run.name}' samples a class itself: --class goes without --sampler "
                              "and --spread")
        index = resolve_class(class_label, run.classes)
        draw = lambda k: run.sample_class(torch.full((k,), index, dtype=torch.long), generator=gen)  # noqa: E731
    else:
        if class_label is not None and not run.can("decode"):
            if not run.can("sample"):  # a classifier: "without --class" would fail too
                require_prior(run)
            raise CapabilityError(f"model '{run.name}' is not conditional: it cannot sample a given class, nor "
                                  "decode around a class's mean code",
                                  "Sample it without --class, or train a conditional model (cgan, cvae).")
        run.require("decode")
        codes = latent_drawer(run, sampler=sampler, generator=gen, class_label=class_label, spread=spread,
                              data_dir=data_dir, save=save)
        if class_label is not None and not spread and n > 1:  # a grid of one image, n times, is no bug to report
            to_stderr(f"note: with --spread 0 (the default) every image is the decoded mean code of class "
                      f"{class_label}: {n} times the same image; --spread 0.5 draws codes around it")
        draw = lambda k: run.decode(codes(k))  # noqa: E731
    for start in range(0, n, batch):
        yield draw(min(batch, n - start)).float().clamp(0, 1)


def require_prior(run: Run) -> None:
    """Refuse sampling from the prior a model that has none, saying what draws its images instead (the CLI's
    option and Python's argument): a fitted sampler or a class mean for an autoencoder."""
    if not run.can("sample") and not run.can("decode"):  # a classifier: nothing to make images with
        raise CapabilityError(f"model '{run.name}' makes no images: it has no decoder and cannot sample",
                              f"It can: {', '.join(run.capabilities()) or 'nothing listed'}. Generate with "
                              "an autoencoder, a VAE or a GAN (zoo list).")
    if not run.can("sample"):
        shipped = shipped_sampler(run.source)
        use = (f"zoo generate {run.source} --sampler {shipped[1]} (shipped with it; `zoo list` shows the others; "
               f"sampler='{shipped[1]}' in Python)" if shipped else
               f"zoo generate {run.source} --sampler gmm (or gaussian, standard-normal; sampler='gmm' in Python)")
        raise CapabilityError(f"model '{run.name}' cannot sample by itself",
                              f"Sample its latent space with a fitted sampler: {use}, "
                              f"or decode around a class mean with --class LABEL (class_label=).")


def per_class_batches(run: Run, per_class: int, gen: torch.Generator, batch: int = SAMPLE_BATCH):
    """`per_class` images of every class in turn (class 0's first), from a conditional model."""
    run.require("sample_class")
    labels = torch.arange(len(run.classes)).repeat_interleave(per_class)
    for start in range(0, len(labels), batch):
        yield run.sample_class(labels[start:start + batch], generator=gen).float().clamp(0, 1)


def shipped_sampler(source) -> tuple[str, str] | None:
    """(catalogued name, sampler) when `source` names catalogued weights whose entry names a `sampler`:
    one shipped beside them, fitted on their training codes (whose samples scored a lower FID than the
    prior's, for a model that has one). A sampler not installed here (misspelt, or of a plugin that is not) is
    never suggested."""
    if not isinstance(source, str) or Path(source).exists():
        return None
    name = catalogued_name(source)
    sampler = registry.weights().get(name, {}).get("sampler")
    return (name, sampler) if sampler in registry.load_registry().samplers else None


def _say_better_sampler(source) -> None:
    """A catalogued model that ships a sampler says so when it is sampled from its prior."""
    shipped = shipped_sampler(source)
    if shipped:
        name, better = shipped
        to_stderr(f"note: {name} draws better images through the {better} sampler shipped with it than from its "
                  f"prior (a lower classifier-feature FID: docs/model-zoo.md, \"Sampling the likelihood models\"): "
                  f"zoo generate {name} --sampler {better}")


@evaluated
@torch.no_grad()
def sample(source, *, n: int = 64, seed: int = 0, device: str | None = None, sampler: str | None = None,
           class_label: str | int | None = None, spread: float = 0.0, data_dir: str | None = None) -> torch.Tensor:
    """`n` samples as a float tensor [n, C, H, W] in [0, 1], drawn as zoo.generate draws them (the same
    arguments and seed: the same images), for use in Python: from the model's prior, through a latent sampler
    fitted on the training codes (`sampler="maf"`, kept in the run as zoo generate keeps it), or of a class.
    A model trained on binarised pixels gives each pixel's probability of being on."""
    seed = check_seed(seed)
    n = check_count(n, "n=", 1, 100_000)
    run = load(source, device=device)
    gen = torch.Generator(device=run.device).manual_seed(seed)
    return torch.cat(list(sample_batches(run, n, gen, sampler=sampler, class_label=class_label, spread=spread,
                                         data_dir=data_dir)))


def default_picture(run: Run, sampler: str | None, class_label, per_class: int | None, spread: float = 0.0) -> str:
    """The grid's file when no --out is given: samples.png drawn from the model's prior, and one file for
    each other way of drawing (samples-gmm.png, samples-class-3.png, samples-per-class.png), so that one
    does not replace another. Named by the sampler and class resolved, not as typed: --class 03, " 3" and
    3 (--sampler GMM and gmm) are one way of drawing, one file. A model that cannot reconstruct (a GAN) ends
    its training with samples.png itself (zoo/training/pictures.py), a record of the run that its card shows:
    its prior's grid is samples-prior.png, never written over it. A class whose name a file name cannot hold as
    it is ('x y', 'x?y', '0-x_y': a '-' parts the tags) is named with its index too (class-0-x_y, class-1-0_x_y),
    so that no two classes, nor a class and another way of drawing, share a file;
    codes drawn around a class's mean (`spread`) are another way of drawing than its mean."""
    sampler = get_sampler(sampler).name if sampler else None
    tags = [sampler] if sampler else []
    if class_label is not None:
        index = resolve_class(class_label, run.classes)
        name = run.classes[index]
        safe = re.sub(r"[^A-Za-z0-9_.]+", "_", name)  # no '-': it parts the tags, and the index form's number
        tags += [f"class-{safe}" if safe == name else f"class-{index}-{safe}"]
        tags += [f"spread-{spread:g}"] if spread else []
    tags += ["per-class"] if per_class is not None else []
    if not tags:
        return "samples.png" if run.can("reconstruct") else "samples-prior.png"
    return "samples-" + _file_safe("-".join(map(str, tags))) + ".png"


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


@evaluated
@torch.no_grad()
def generate(source, *, n: int | None = None, seed: int = 0, out: str | Path | None = None, device: str | None = None,
             sampler: str | None = None, class_label: str | int | None = None,
             spread: float = 0.0, per_class: int | None = None, data_dir: str | None = None) -> Path:
    """Sample `n` images: a grid PNG (by default in the run's output folder, named by how they were drawn:
    default_picture), or a tensor file if `out` ends in .safetensors (written batch by batch: memory does
    not grow with `n`).

    A generative model (VAE, GAN) samples itself; a conditional one samples a class (`class_label=7`),
    or `per_class` images of every class (a grid with a row per class, instead of `n`); an autoencoder
    that can decode samples its latent space through a sampler fitted on its training codes
    (`sampler="gmm"`, ...), or around the mean code of a class (`class_label=7`); `data_dir`: where the
    data set's images are, for those codes (default: where the run was trained from)."""
    seed = check_seed(seed)
    if per_class is not None:
        per_class = check_count(per_class, "--per-class (per_class=)", 1, 2_500)
        if sampler is not None or class_label is not None or spread or n is not None:
            raise ConfigError("--per-class (per_class=) draws every class: it goes without --n, --class, --sampler "
                              "and --spread (n=, class_label=, sampler=, spread=)")
    n = 64 if n is None else n  # the default; --per-class sets it from the classes below
    n = check_count(n, "--n (n=)", 1, 100_000)
    own = source.folder if isinstance(source, Run) else \
        source if isinstance(source, (str, Path)) and Path(source).is_dir() else None  # the run folder it reads
    out = runfiles.picture_output(out, tensors=True, own=own)
    to_file = runfiles.is_tensor_file(out)
    if not to_file and n > MAX_GRID:
        raise ConfigError(f"--n {n}: a picture shows at most {MAX_GRID:,} samples",
                          "Write them to a tensor file instead: --out samples.safetensors "
                          "(out='samples.safetensors').")
    run = load(source, device=device)
    say_if_untrained(run.folder, "these images are of")  # a GAN that collapsed in its first epoch
    gen = torch.Generator(device=run.device).manual_seed(seed)
    if per_class is not None:
        if not run.can("sample_class"):
            if not run.can("sample") and not run.can("decode"):  # a classifier: "without --per-class" fails too
                require_prior(run)
            raise CapabilityError(f"--per-class: model '{run.name}' is not conditional: it cannot sample a given "
                                  "class", "Sample it without --per-class, or train a conditional model (cgan, cvae).")
        n, how = per_class * len(run.classes), f"{per_class} per class, a row each"
        if not to_file and n > MAX_GRID:
            raise ConfigError(f"--per-class {per_class}: {n} samples, and a picture shows at most {MAX_GRID:,}",
                              "Ask fewer per class, or write them to a tensor file: --out samples.safetensors.")
    elif sampler is not None and class_label is None and not run.can("decode"):
        raise ConfigError(f"--sampler {sampler}: a latent sampler draws codes for an autoencoder's decoder, and "
                              f"model '{run.name}' has none",
                              f"It samples by itself: zoo generate {run.source}" if run.can("sample") else
                              f"It can: {', '.join(run.capabilities()) or 'nothing listed'}.")
    elif sampler is None and class_label is None:
        require_prior(run)
        how = "the model's prior" + (", classes drawn uniformly" if run.can("sample_class") else "")
        _say_better_sampler(source)
    else:
        how = f"sampler {sampler}" if sampler else f"class {_class_named(run, class_label)}" + \
            (f", spread {spread}" if spread else "")
    per_row, lines, groups = grid_shape(n, per_class, len(run.classes))
    fewer = ("Write them to a tensor file instead: --out samples.safetensors (out='samples.safetensors'), "
             + ("or ask fewer per class." if per_class is not None else "or ask fewer (--n)."))
    if not to_file:  # refused before any image is made, not written as smudges
        plots.check_tiles(n, lines, per_row, groups, run.shape, fewer)
    if run.record.get("train", {}).get("binarize", "none") != "none":
        # a Bernoulli decoder's images are each pixel's probability of being on, not binary draws: say so
        how += ", pixel probabilities"
    if per_class is not None:
        batches_ = per_class_batches(run, per_class, gen)
    else:
        batches_ = sample_batches(run, n, gen, sampler=sampler, class_label=class_label, spread=spread,
                                  data_dir=data_dir)
    if to_file and per_class is None and class_label is None and sampler is None and run.can("sample_class"):
        to_stderr("note: the classes of these samples, drawn uniformly, are not recorded in the file; for labelled "
                  "samples write --per-class N (each class's in turn, their names in the file's metadata) or "
                  "--class C")
    if to_file:
        # what the file holds, as a picture's title says it: of which weights, drawn how (for --per-class, each
        # class's samples in the order of `classes`)
        meta = {"model": run.name, "source": str(run.source), "weights_digest": run.file_digest or "",
                "sampling": how, "seed": str(seed), "n": str(n),
                **({"per_class": str(per_class), "classes": json.dumps(list(run.classes))} if per_class else {})}
        with ckpt.TensorStream(out, "images", (n, *run.shape), torch.float32, meta) as stream:
            for images in batches_:
                stream.write(images)
        return out
    images = torch.cat(list(batches_))
    out = out or run.output_dir / default_picture(run, sampler, class_label, per_class, spread)
    # a row per class, labelled with its name; one unlabelled grid otherwise
    rows = [(str(c), images[i * per_class:(i + 1) * per_class]) for i, c in enumerate(run.classes)] \
        if per_class is not None else [("", images)]
    weights = catalogued_name(source) if isinstance(source, str) and not Path(source).is_dir() else None
    named = f"{run.name} ({weights})" if weights in registry.weights() else run.name  # `cgan`: cgan-mnist's
    return plots.image_rows(rows, out, title=f"{named}: {n} sample{'s' * (n != 1)} ({how}, seed {seed})",
                            per_row=per_row, weights=run.outputs_stamp(), hint=fewer)


def grid_shape(n: int, per_class: int | None, classes: int) -> tuple[int, int, int]:
    """(images a line holds, lines, labelled rows) of a grid of `n` samples: a square for --n; a row per
    class for --per-class, wrapped onto lines of equal length of at most GRID_SIDE (one line of 250 shrank
    every image to a few pixels)."""
    if per_class is None:
        per_row = max(1, int(round(n ** 0.5)))
        return per_row, -(-n // per_row), 1
    lines = -(-per_class // GRID_SIDE)
    return -(-per_class // lines), lines * classes, classes


def _class_named(run: Run, label) -> str:
    """A class as the title says it: as given, and by its name where that is another (--class 3 of a folder whose
    class folders are zero..nine is the class at index 3 as they sort: 'nine')."""
    if isinstance(label, torch.Tensor) and label.numel() == 1:
        label = label.item()  # torch.tensor(3): said as 3
    if not run.classes:
        return str(label)
    name = str(run.classes[resolve_class(label, run.classes)])
    return name if name == str(label) else f"{label}: {name}"
