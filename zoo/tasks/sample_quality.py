"""Sample quality: classifier-feature FID, KID, precision and recall of a run's samples against held-out
images, beside the floor of the test set against the training set; for a conditional model, how often
the classifier finds the class each sample was drawn for."""

from __future__ import annotations

import json
import math
import shlex
import statistics
from pathlib import Path
from typing import Any

import torch

from zoo import registry
from zoo.hub import is_hub_source
from zoo.registry import feature_network_name
from zoo.analysis import inception as inception_mod
from zoo.analysis import metrics, quality
from zoo.console import to_stderr
from zoo.errors import CapabilityError, ConfigError, Interrupted
from zoo.runs import checkpoint as ckpt
from zoo.runs import files as runfiles
from zoo.runs.config import SEED_MAX, check_count, check_flag, check_seed
from zoo.runs.loading import load
from zoo.runs.lock import results_lock
from zoo.runs.modelcard import card_folder, write_card
from zoo.runs.run import evaluated, other_images
from zoo.runs.training_state import say_if_untrained
from zoo.tasks.generation import sample_batches


def _feature_model() -> str:
    """An installed model whose runs are feature networks (it has `embed`), to name in a hint."""
    return next((name for name, e in sorted(registry.load_registry().models.items()) if hasattr(e.cls, "embed")),
                "NAME")


WEAK_FEATURES = 0.9  # below this test accuracy, a feature network's FID and precision are said to mean little
# Below this share of the test images' spread of features, the samples are said to be nearly all alike: blank
# images scored a precision of 1.000 (their one point lies near some real image); the catalogued models' samples
# spread 0.5 (iwae-mnist) to 1.0 (gan-mnist) as widely as the test images.
ALIKE = 0.05


@torch.no_grad()
def class_accuracy(classifier, images: torch.Tensor, wanted: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """How often `classifier` gives conditional samples the class they were drawn for: overall and per class."""
    said = torch.cat([classifier.classify(images[i:i + 1000].to(classifier.device)).argmax(1).cpu()
                      for i in range(0, images.shape[0], 1000)])
    right = said == wanted
    per_class = {name: float(right[wanted == j].float().mean()) for j, name in enumerate(classes)
                 if bool((wanted == j).any())}
    return {"mean": float(right.float().mean()), "per_class": per_class}


@evaluated
@torch.no_grad()
def sample_quality(source, *, features: str | None = None, n: int = 10_000, seed: int = 0, sampler: str | None = None,
                   data_dir: str | None = None, device: str | None = None, save: bool = True,
                   progress: bool | None = None, inception: str | bool | None = None,
                   seeds: int = 1) -> dict[str, Any]:
    """Classifier-feature FID, KID, precision and recall of `n` samples against `n` test images, with the
    test set against the training set as the floor. `features` names the feature network (default
    features-<dataset>, where one is catalogued). KID is the mean ± std over random subsets of at most
    half the images. A conditional model (`sample_class`) draws every class equally often, and the
    feature network's accuracy on its samples is reported per class (`class_accuracy`).
    A run longer than a few seconds shows a progress bar on stderr (`progress` None: on a terminal).
    `inception` (a weights file or folder, or True / "auto": torch hub's cache) adds Inception FID, KID
    and IS of the same samples through torch-fidelity under "inception"; the weights are never downloaded.
    `seeds` N > 1 measures seeds `seed` .. `seed` + N - 1 (N times the time) and adds "over_seeds": each
    seed's figures and the median FID (one FID of 10,000 samples moves by 1 to 8 between seeds on MNIST,
    docs/benchmarks.md); the other figures are the first seed's.
    Written to quality.json (quality-SAMPLER.json) once every seed is measured, with the digests of the weights
    measured and of the feature network; a measurement of the same weights and network over fewer images (or as
    many and fewer seeds) than the one kept there, of other images than the run's over one of its own, or of the
    same weights by another feature network that is not fuller or that zoo warns is weak, is returned, not written
    over it (`kept` says so)."""
    seed = check_seed(seed)
    check_flag(save, "save"), check_flag(progress, "progress", none=True)
    seeds = check_count(seeds, "--fid-seeds (seeds=)", 1, 100)
    check_count(seed + seeds - 1, f"seed + seeds - 1, the last seed measured (seed={seed}, seeds={seeds}),", 0,
                SEED_MAX)
    n = check_count(n, "--fid-n (n=)", MIN_IMAGES, 1_000_000)  # as the CLI's: fewer give no usable FID
    if inception:  # a missing file or library fails before minutes of sampling
        inception_mod.find_weights(inception)
        inception_mod.require_library()
    run = load(source, device=device)
    name = "quality.json" if sampler is None else f"quality-{sampler}.json"
    # the run's card quotes quality.json: written anew with it, as zoo eval's figures rewrite it
    card = card_folder(run.folder, run.source) if sampler is None and run.output_dir == run.folder else None
    if save:  # refused before minutes of sampling, not after
        run.check_saveable()
        runfiles.check_replaceable(run.output_dir, (name, ckpt.CARD) if card else (name,))
    if sampler is None and not run.can("sample") and run.can("decode"):
        raise CapabilityError(f"model '{run.name}' cannot sample", "It decodes: --sampler gmm (sampler='gmm') fits "
                              "a sampler of its latent codes and measures the images it decodes from them.")
    if sampler is None:
        run.require("sample")
    if sampler is not None and not run.can("decode"):  # an option this model has no use for: as zoo generate says
        raise ConfigError(f"model '{run.name}' decodes no latent codes, so --sampler (sampler=) has nothing to "
                          "fit", "Leave --sampler out: it measures an autoencoder's decoded codes; this model "
                          "samples itself." if run.can("sample") else "")
    feat_run, features = _feature_network(run, features, source)
    say_if_untrained(run.folder, "these samples are of")
    # In grey levels, also for a run trained on binarised pixels: its samples are pixel probabilities, the
    # mean of the binary images it models, as a grey image is the mean of its binarisations. Binarised test
    # images beside grey training images made the floor a comparison of two kinds of picture (73 on MNIST).
    data = run.dataset(data_dir, grey=True)
    binarised = run.record["train"].get("binarize", "none") not in ("none", "", None)
    differ = other_images(run.dataset(data_dir) if binarised else data, run.record, ("test", "train"))
    if differ:
        to_stderr(f"note: {differ}: not the images {run.source} was trained and tested on, so these are not its "
                  "sample-quality figures" + ("; a quality.json of them, if one is written, says so" if save else ""))
    test_x, test_y = data.split("test")
    if "test" in data.reused:
        raise ConfigError(f"no sample-quality figure for {data.name}: {data.caveat()}",
                          "FID and KID compare samples with held-out images; add images to the folder.")
    m = min(n, test_x.shape[0], data.train_x.shape[0])
    if m < MIN_IMAGES:
        raise ConfigError(f"{data.name} holds {test_x.shape[0]:,} test and {data.train_x.shape[0]:,} training images: "
                          f"FID, KID, precision and recall of fewer than {MIN_IMAGES} images say nothing",
                          "Measure a model of a data set with more images (add images to the folder).")
    if m < n:
        to_stderr(f"note: {data.name} holds {test_x.shape[0]:,} test and {data.train_x.shape[0]:,} training images: "
                  f"the figures are of {m:,} samples and images, not {n:,}")
    seen: dict[str, Any] = {}  # the test images' features and accuracy: alike for every seed, computed once
    runs: list[dict[str, Any]] = []
    try:
        with metrics.bars_shown(progress):  # also the bar of a sampler fitted on the way (a MAF's minute)
            for i in range(seeds):
                runs.append(_measure(run, feat_run, data, seed=seed + i, m=m, sampler=sampler, data_dir=data_dir,
                                     save=save, progress=progress, inception=inception if i == 0 else None,
                                     differ=differ, binarised=binarised, seen=seen))
    except Interrupted:
        raise
    except KeyboardInterrupt:  # said, not left as a bare "Interrupted."
        kept = f"{run.output_dir / name} is as it was" if save else "nothing was written"
        raise Interrupted(f"the sample-quality measurement was interrupted after {len(runs)} of {seeds} "
                          f"seed{'s' * (seeds != 1)}; {kept} (it is written once every seed is measured)",
                          "The same command measures again from the start.") from None
    result = runs[0]
    # a run folder by its absolute path: the path as typed means nothing from another folder (a card's command,
    # compare's note); a push publishes its folder's name (zoo.hub.push.public_name)
    result["feature_network"] = str(feat_run.folder) if not is_hub_source(features) and \
        Path(features).absolute() == Path(feat_run.folder).absolute() else features
    result["feature_network_dataset"] = feat_run.record["train"]["dataset"]
    result[ckpt.WEIGHTS_DIGEST] = run.file_digest or ckpt.weights_digest(run.folder / ckpt.WEIGHTS)
    result["feature_network_digest"] = feat_run.file_digest or ckpt.weights_digest(feat_run.folder / ckpt.WEIGHTS)
    if differ:  # kept in quality.json, so that whoever reads it knows whose images these figures are of
        result["other_images"] = differ
    if seeds > 1:
        pairs = [r["samples_vs_test"] for r in runs]
        result["over_seeds"] = {
            "seeds": [r["seed"] for r in runs], "fid": [p["fid"] for p in pairs], "kid": [p["kid"] for p in pairs],
            "precision": [p["precision"] for p in pairs], "recall": [p["recall"] for p in pairs],
            "median_fid": statistics.median(p["fid"] for p in pairs)}
    if save:
        _write(run.output_dir / name, result, card)
    return result


MIN_IMAGES = 100  # fewer samples and test images give no usable FID (its covariance is of 128 features)


def _feature_network(run, features: str | None, source) -> tuple[Any, str]:
    """The feature network's run and its name: `features`, or the catalogued one of the run's data set. One of
    another data set is said to be (its features may not tell these images apart); one of another image shape,
    or no feature network, is refused (no catalogued one: a thing the data set lacks, not a wrong argument)."""
    train_cfg = run.record["train"]
    dataset = train_cfg["dataset"]
    if features is None and feature_network_name(dataset) not in registry.weights():
        option = f" --data-dir {shlex.quote(train_cfg['data_dir'])}" if train_cfg.get("data_dir") else ""
        option += f" --set image_size={train_cfg['image_size']}" if train_cfg.get("image_size") else ""
        if len(run.classes or ()) < 2:  # a classifier needs two classes or more: none can be trained on these
            raise CapabilityError(f"no feature network is catalogued for {dataset}, and its images have no classes to "
                                  "train one on: FID and KID measure samples in the features of a classifier",
                                  "Pass one trained on labelled images of the same size and kind (class folders, or "
                                  "another data set): --features RUN (its classes are not the run's, so no class "
                                  "accuracy is measured).")
        raise CapabilityError(f"no feature network is catalogued for {dataset}: FID and KID measure samples in the "
                              "features of a classifier trained on the same data set",
                              "Train one, then pass it with --features RUN:\n"
                              f"  zoo train {_feature_model()} --dataset {shlex.quote(dataset)}{option} "
                              "--out runs/features\n"
                              f"  zoo eval {shlex.quote(str(source))} --fid --features runs/features")
    features = features or feature_network_name(dataset)
    feat_run = load(features, device=str(run.device))
    if not hasattr(feat_run.model, "embed"):
        raise ConfigError(f"'{features}' is not a feature network (a run of a model with `embed`, such as "
                          f"{_feature_model()})")
    if tuple(feat_run.model.shape) != tuple(run.shape):
        raise ConfigError(f"the feature network '{features}' takes {feat_run.model.shape} images, the model makes "
                          f"{run.shape}")
    theirs = feat_run.record["train"]["dataset"]
    if theirs != dataset:
        to_stderr(f"note: the feature network '{features}' was trained on {theirs}, the run on {dataset}: its "
                  "features may tell these images apart poorly, and the figures compare only with others measured "
                  "by the same network")
    return feat_run, features


def _measure(run, feat_run, data, *, seed: int, m: int, sampler: str | None, data_dir, save: bool, progress,
             inception, differ: str, binarised: bool, seen: dict[str, Any]) -> dict[str, Any]:
    """One seed's figures: `m` samples drawn with `seed` against `m` test images, beside the floor (`differ`:
    how these images differ from the run's, "" where they do not; `binarised`: a run trained on binary pixels;
    `seen`: what an earlier seed measured of the test images, which this one reads rather than measures again)."""
    feat = feat_run.model
    test_x, test_y = data.split("test")
    gen = torch.Generator(device=run.device).manual_seed(seed)

    # A conditional model draws every class equally often, in order, so the feature network (a classifier)
    # can say how often each class came out right.
    conditional = sampler is None and run.can("sample_class")
    if conditional and not feat.can("classify"):
        raise ConfigError(f"'{feat_run.source}' cannot classify, so it cannot check the class of conditional samples",
                          "Give a feature network that is a classifier run (--features RUN).")
    # Its class k is the run's class k only where both name the same classes in the same order (a folder's
    # `zero..nine` sort otherwise): else no accuracy is measured, rather than a wrong one.
    same_classes = tuple(feat_run.classes or ()) == tuple(run.classes or ())
    wanted = torch.arange(m) % max(len(run.classes), 1)

    # decoded from a latent sampler fitted (or read: a later seed reads the first one's) once, batch after batch
    decoded = sample_batches(run, m, gen, sampler=sampler, data_dir=data_dir, save=save, batch=1000) \
        if sampler is not None else None

    def draw(start: int, k: int) -> torch.Tensor:
        if conditional:
            return run.sample_class(wanted[start:start + k], generator=gen)
        return run.sample(k, generator=gen) if sampler is None else next(decoded)
    pick = torch.randperm(data.train_x.shape[0], generator=torch.Generator().manual_seed(seed))[:m]
    per_set = -(-m // 1000)  # batches of 1000 to draw or embed for each set of m images
    with metrics.progress_bar(4 * per_set + 2 * quality.KID_SUBSETS, "fid: sampling", progress, unit="step") as bar:
        samples = []
        for i in range(0, m, 1000):
            samples.append(draw(i, min(1000, m - i)).float().clamp(0, 1))
            bar.update()
        bar.set_description_str("fid: features", refresh=False)
        samples, train_x = torch.cat(samples), data.train_x[pick.to(data.train_x.device)]
        if "features" not in seen:
            seen["features"] = quality.embed(feat, test_x[:m], bar=bar)
        else:
            bar.update(per_set)
        f_samples, f_test, f_train = quality.embed(feat, samples, bar=bar), seen["features"], \
            quality.embed(feat, train_x, bar=bar)
        bar.set_description_str("fid: KID", refresh=False)
        result = {"note": "classifier-feature FID/KID: not comparable to Inception FID",
                  "images": m, "seed": seed, "sampler": sampler or "model",
                  "pixels": ("the samples' pixel probabilities against grey images (the mean of their binarisations; "
                             "the run was trained on binarised pixels)" if binarised else data.pixels()),
                  "samples_vs_test": quality.compare(f_samples, f_test, bar=bar),
                  "floor_test_vs_train": quality.compare(f_test, f_train, bar=bar)}
        spread = quality.spread_ratio(f_samples, f_test)
        result["samples_spread"] = spread if math.isfinite(spread) else None
        if not math.isfinite(spread):
            _warn(result, "the features of the samples or the test images are not all finite numbers: these "
                          "figures say nothing (do the samples hold NaN?)")
        elif spread < ALIKE:  # blank or collapsed samples sit on one real image's neighbourhood: precision 1
            pr = result["samples_vs_test"]
            said = (f"a precision of {pr['precision']:.3f} says at most that they lie near some real images, not "
                    "that they are realistic" if pr["precision"] > 0 else
                    "none of them lies near a real image (precision 0)")
            _warn(result, f"the samples are nearly all alike: their features spread {spread:.1%} as widely as the "
                          f"test images' (blank images, or a collapsed generator): they cover {pr['recall']:.3f} of "
                          f"the data (recall), and {said}")
        if feat.can("classify") and not same_classes:
            _warn(result, f"the feature network's classes ({_listed(feat_run.classes)}) are not the run's "
                          f"({_listed(run.classes)}): no class accuracy is measured, of the samples or of the test "
                          "images")
        if conditional and same_classes:
            result["class_accuracy"] = class_accuracy(feat, samples, wanted, run.classes)
        if feat.can("classify") and same_classes and test_y is not None and len(test_y):
            # The figures are only as good as the features: a poor classifier maps unlike images together.
            if "accuracy" not in seen:
                real = test_x[:m].float() / 255.0 if test_x.dtype == torch.uint8 else test_x[:m].float()
                seen["accuracy"] = class_accuracy(feat, real, test_y[:m].cpu(), run.classes)["mean"]
            accuracy = seen["accuracy"]
            result["feature_network_test_accuracy"] = accuracy
            if accuracy < WEAK_FEATURES:
                _warn(result, f"the feature network classifies only {accuracy:.1%} of the test images right: its "
                              "features tell the classes apart poorly, so these figures say little (even noise can "
                              "score a high precision); train it longer" + (
                                  " (or these are not its images: see the note above)" if differ else ""))
    if inception:  # the same samples and images, in Inception's features (minutes on a CPU)
        result["inception"] = inception_mod.inception_quality(samples, test_x[:m], train_x, inception=inception,
                                                              device=run.device, seed=seed)
    return result


def _write(path: Path, result: dict[str, Any], card: Path | None = None) -> None:
    """quality.json, unless it holds a fuller measurement of the same weights (more images, or as many and more
    seeds), or one by another feature network that this one does not better (_kept_because): a quick look is
    returned beside it, not written over it, and `kept` says so. Read, decided and written under the folder's
    results lock: two measurements ending together each see the other's file. `card`: the run folder whose card
    is written anew when quality.json is."""
    with results_lock(path.parent, path):  # a lock it cannot take is said as the file asked for
        _write_unless_fuller(path, result)
        if card is not None and result.get("written"):
            write_card(card)


def _write_unless_fuller(path: Path, result: dict[str, Any]) -> None:
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        old = None
    kept = _kept_because(old, result) if isinstance(old, dict) and \
        old.get(ckpt.WEIGHTS_DIGEST) == result.get(ckpt.WEIGHTS_DIGEST) else None
    if kept:
        result["kept"] = f"{path} holds {kept}"
        return
    ckpt.write_json(path, {k: v for k, v in result.items() if k not in ("written", "kept")})
    result["written"] = [str(path)]


def _kept_because(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why `old`, a measurement of the same weights, stays in quality.json rather than `new`; None: `new` takes
    its place. Of the run's own images over other images; by the same feature network, the fuller one; by
    another feature network, `old` unless `new` is by a network zoo does not call weak where `old`'s is, or is
    fuller without being by a weaker one (two networks' figures do not compare: one is not silently swapped
    for the other)."""
    if not old.get("other_images") and new.get("other_images"):
        return ("a measurement of these weights on the run's own images: this one, of other images, is not written "
                "over it")
    if bool(old.get("other_images")) != bool(new.get("other_images")):
        return None  # of the run's own images, over a measurement of other images
    if old.get("feature_network_digest") == new.get("feature_network_digest"):
        if _fullness(old) > _fullness(new):
            return (f"a fuller measurement of these weights ({_described(old)}): this one ({_described(new)}) is "
                    "not written over it")
        return None
    theirs = f"feature network {old.get('feature_network', '?')}, {_described(old)}"
    instead = (f"delete it to keep this one instead, or measure with the same feature network "
               f"(--features {old.get('feature_network', '?')})")
    if _weak(new) and not _weak(old):
        return (f"a measurement of these weights by another feature network ({theirs}), and this one's classifies "
                f"only {new['feature_network_test_accuracy']:.1%} of the test images right: it is not written over "
                f"it; {instead}")
    if _weak(old) and not _weak(new):
        return None
    if _fullness(new) <= _fullness(old):
        return (f"a measurement of these weights by another feature network ({theirs}), as full as this one or "
                f"fuller ({_described(new)}): the two do not compare, and this one is not written over it; {instead}")
    return None


def _weak(result: dict[str, Any]) -> bool:
    """Whether a measurement is by a feature network zoo warns of: one that classifies too few test images right."""
    accuracy = result.get("feature_network_test_accuracy")
    return isinstance(accuracy, (int, float)) and accuracy < WEAK_FEATURES


def _fullness(result: dict[str, Any]) -> tuple[int, int, bool]:
    """More images, then more seeds, then the Inception figures too: the fuller measurement of the same weights."""
    images = result.get("images")
    seeds = (result.get("over_seeds") or {}).get("seeds") or [None]
    return (images if isinstance(images, int) else 0, len(seeds) if isinstance(seeds, list) else 1,
            isinstance(result.get("inception"), dict))


def _described(result: dict[str, Any]) -> str:
    images, seeds, inception = _fullness(result)
    return f"{images:,} images" + (f", {seeds} seeds" if seeds > 1 else "") + (", Inception" if inception else "")


def _listed(classes) -> str:
    names = [str(c) for c in classes or ()]
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "") if names else "none"


def _warn(result: dict[str, Any], text: str) -> None:
    """Add a warning to the result's, one line each (the CLI prints each on its own line)."""
    result["warning"] = f"{result['warning']}\n{text}" if "warning" in result else text
