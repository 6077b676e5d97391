"""Whether runs' figures are one measure: the caveat `zoo compare` prints under its table, the runs whose
figure is of another quantity (a conditional model's p(x | y)), and the pairing of per-image test values."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo import registry
from zoo.errors import ZooError
from zoo.model import DATA_KEYS, measured_alike
from zoo.runs import eval_images

if TYPE_CHECKING:
    from zoo.runs.compare import Compared


def model_class(name: str):
    try:
        return registry.get_model_class(name)
    except ZooError:  # a model not installed here
        return None


# zoo's own figures better when higher (test_psnr, test_class_accuracy, test_classifier_precision), by the
# last word of their name, beside a model's `maximized`
HIGHER_IS_BETTER = ("psnr", "accuracy", "precision", "recall")


def better_when_higher(runs: list[Compared], metric: str) -> bool:
    """Whether `metric` (val_accuracy, test_psnr) is better when higher: a figure of zoo's that is, or one the runs'
    model classes declare `maximized`; a compare sorts it largest first (best first, as a loss smallest first)."""
    base = metric.partition("_")[2]
    classes = [model_class(r.model) for r in runs]
    return (base.rpartition("_")[2] in HIGHER_IS_BETTER
            or any(base in getattr(cls, "maximized", ()) for cls in classes if cls))


def loss_caveat(runs: list[Compared], metric: str, differing: list[str]) -> str | None:
    """Why a loss does not compare these runs, where it does not: they are of different models, or differ
    in a key that changes what their model's loss measures (its `loss_keys`: a β, an IWAE's K); with the
    metric that compares them alike, where every run has it."""
    split, _, base = metric.partition("_")
    if split == "test":
        return _test_caveat(runs, metric, differing)
    if split not in ("val", "train"):
        return None
    if split == "val" and "val_fraction" in differing and any(r.value(metric) is not None for r in runs):
        return f"{metric} is not one measure across these runs (val_fraction differs: other validation images)"
    models = sorted({r.model for r in runs})
    cls = model_class(models[0]) if len(models) == 1 else None
    keys, alike = measured_alike(cls, differing, base, split) if cls else ([], [])
    if (len(models) < 2 or base != "loss") and not keys or not any(r.value(metric) is not None for r in runs):
        return None
    # the same split's metric where the runs record it, else the validation one (a train_loss: val_loss)
    names = [f"{split}_{alike[0]}", f"val_{alike[0]}"] if alike else []
    name = next((n for n in names if n != metric and all(n in r.metrics for r in runs)), None)
    hint = f": --sort {name} compares them alike" if name else ""
    why = f"runs of {', '.join(models)}" if len(models) > 1 else f"{', '.join(keys)} differ{'s' * (len(keys) == 1)}"
    return f"{metric} is not one measure across these runs ({why}){hint}"


def _test_caveat(runs: list[Compared], metric: str, differing: list[str]) -> str | None:
    """`zoo eval` measures a figure alike for every run, but on other images where the runs differ in a DATA_KEY
    (binarised against grey pixels, another data set), or by another density where they differ in a model's
    `test_keys` (a Gaussian likelihood against a Bernoulli one: 'paired Δ +1964 nats')."""
    if not any(r.value(metric) is not None for r in runs):
        return None
    images, density = _test_differing(runs, metric, differing)
    keys = images + density
    if not keys:
        return None
    what = " and ".join([*(["other test images"] if images else []), *(["another measure"] if density else [])])
    alike = [f"test_{m}" for cls in filter(None, (model_class(m) for m in sorted({r.model for r in runs})))
             for k in density for m in cls.test_keys.get(k, ())] if not images else []
    hint = next((f": --sort {m} compares them alike" for m in alike if all(m in r.known() for r in runs)), "")
    some = [k for k in keys if not all(k in r.config for r in runs)]  # a DAE's noise beside a ConvAE, which has none
    whose = [*([f"{', '.join(k for k in keys if k not in some)} differ{'s' * (len(keys) - len(some) == 1)}"]
               if len(some) < len(keys) else []), *([f"only some runs have {', '.join(some)}"] if some else [])]
    return f"{metric} is not one measure across these runs ({'; '.join(whose)}: {what}){hint}"


def _test_differing(runs: list[Compared], metric: str, differing: list[str]) -> tuple[list[str], list[str]]:
    """The keys the runs differ in that make a test figure of other images (DATA_KEYS), and those that make it
    another measure (a model's `test_keys` where `metric` is not among the metrics they leave alike)."""
    name = metric.removeprefix("test_").removesuffix("_nats")
    density: list[str] = []
    for cls in filter(None, (model_class(m) for m in sorted({r.model for r in runs}))):
        density += [k for k, alike in cls.test_keys.items()
                    if k in differing and name not in alike and k not in density]
    return [k for k in DATA_KEYS if k in differing], density


def another_measure(runs: list[Compared], metric: str, differing: list[str]) -> bool:
    """Whether the runs' `metric` is of another quantity in some of them (not only of other images, which
    pairing keeps apart by the images' digest): no image-by-image difference is then taken at all."""
    return metric.startswith("test_") and bool(_test_differing(runs, metric, differing)[1])


def _other_images(a: Compared, b: Compared) -> str:
    """Why two runs' test figures are of other images."""
    if a.config.get("dataset") != b.config.get("dataset"):
        return "another data set"
    if a.config.get("binarize") != b.config.get("binarize"):
        return "binarised against grey pixels"
    return "another split, --limit, or images added to its folder"


def given_class(runs: list[Compared], metric: str) -> list[Compared]:
    """The class-conditional models among runs of unconditional ones, where `metric` is a likelihood figure: a
    cvae's −log p(x | y) is given each image's class, so it is said and paired with none of the others' p(x)."""
    if not any(word in metric for word in ("nll", "elbo", "loss")):  # a cvae's loss is its −ELBO of p(x | y) too
        return []
    given = [r for r in runs if (cls := model_class(r.model)) is not None and "sample_class" in cls.capabilities()
             and hasattr(cls, "iwae_nll")]  # a likelihood model's (a cgan's losses are a game's, not densities)
    if len(given) == len(runs):
        return []
    for r in given:
        if r.value(metric) is not None:  # said of a figure the run has, not of a blank cell
            r.notes.append(f"its {metric} is of p(x | y), given each image's class: not comparable with the other "
                           "models' p(x), and paired with none of them")
    return given


def pair(runs: list[Compared], metric: str) -> Compared | None:
    """Each run's paired difference on the test `metric` from a reference run's, over the same images: the
    reference is the first run (in the table's order) of the largest group measured on the same images
    whose values were kept. That run, or None when no two runs pair. Sorted by another metric, the runs
    whose test figures are of other images than the others' are said all the same (other_test_images)."""
    if not metric.startswith("test_"):
        other_test_images(runs)
        return None
    name = metric.removeprefix("test_")
    kept = [r for r in runs if metric.startswith("test_") and name in r.test_values]
    groups: dict[str | None, list[Compared]] = {}
    for r in kept:
        groups.setdefault(r.test_images, []).append(r)
    group = max(groups.values(), key=len, default=[])  # the first of the largest: max keeps the first
    if not group:
        other_test_images(runs)
        return None
    reference = group[0]
    other_test_images([r for r in runs if r not in kept], reference)  # the runs without the sort key's figure
    for r in kept:  # each run on other images is said to be, even where no two runs pair
        if r in group[1:]:
            r.paired = eval_images.paired(reference.test_values[name], r.test_values[name])
        elif r is not reference:
            r.notes.append(f"measured on other test images than {reference.name} ({_other_images(r, reference)}): "
                           "no paired difference")
    return reference if len(group) > 1 else None


def other_test_images(runs: list[Compared], reference: Compared | None = None) -> None:
    """The test columns a table shows whatever its sort key: a run whose figures are of other images (a --limit
    look, another split) than `reference`'s (default: the first of the largest group measured on the same images)
    is said to be, since its cells stand beside theirs. Runs whose images are not known (no per-image values
    kept) say nothing."""
    if reference is None:
        groups: dict[str, list[Compared]] = {}
        for r in runs:
            if r.test_metrics and r.test_images is not None:
                groups.setdefault(r.test_images, []).append(r)
        if len(groups) < 2:
            return
        reference = max(groups.values(), key=len)[0]  # the first of the largest: max keeps the first
    if reference.test_images is None:  # its images are not known: nothing to say of others'
        return
    for r in runs:
        if r.test_metrics and r.test_images not in (None, reference.test_images):
            r.notes.append(f"its test metrics are of other test images than {reference.name}'s "
                           f"({_other_images(r, reference)}): they do not compare directly")
