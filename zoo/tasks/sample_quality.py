"""Sample quality: classifier-feature FID, KID, precision and recall of a run's samples against held-out
images, beside the floor of the test set against the training set; for a conditional model, how often
the classifier finds the class each sample was drawn for."""

from __future__ import annotations

import math
import shlex
import statistics
from pathlib import Path
from typing import Any

import torch

from zoo import registry
from zoo.registry import feature_network_name
from zoo.analysis import inception as inception_mod
from zoo.analysis import metrics, quality
from zoo.errors import ConfigError
from zoo.runs import checkpoint as ckpt
from zoo.runs.config import check_count, check_flag, check_seed
from zoo.runs.loading import load
from zoo.runs.run import evaluated
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
    docs/benchmarks.md); the other figures are the first seed's."""
    check_seed(seed), check_flag(save, "save"), check_flag(progress, "progress", none=True)
    seeds = check_count(seeds, "--fid-seeds (seeds=)", 1, 100)
    if seeds > 1:
        return _over_seeds(source, seeds, features=features, n=n, seed=seed, sampler=sampler, data_dir=data_dir,
                           device=device, save=save, progress=progress, inception=inception)
    n = check_count(n, "--fid-n (n=)", 100, 1_000_000)  # as the CLI's: fewer than 100 images give no usable FID
    if inception:  # a missing file or library fails before minutes of sampling
        inception_mod.find_weights(inception)
        inception_mod.require_library()
    run = load(source, device=device)
    if save:
        run.check_saveable()
    if sampler is None:
        run.require("sample")
    train_cfg = run.record["train"]
    dataset = train_cfg["dataset"]
    if features is None and feature_network_name(dataset) not in registry.weights():
        option = f" --data-dir {shlex.quote(train_cfg['data_dir'])}" if train_cfg.get("data_dir") else ""
        option += f" --set image_size={train_cfg['image_size']}" if train_cfg.get("image_size") else ""
        if len(run.classes or ()) < 2:  # a classifier needs two classes or more: none can be trained on these
            raise ConfigError(f"no feature network is catalogued for {dataset}, and its images have no classes to "
                              "train one on: FID and KID measure samples in the features of a classifier",
                              "Pass one trained on labelled images of the same size and kind (class folders, or "
                              "another data set): --features RUN (its classes are not the run's, so no class "
                              "accuracy is measured).")
        raise ConfigError(f"no feature network is catalogued for {dataset}: FID and KID measure samples in the "
                          "features of a classifier trained on the same data set",
                          "Train one, then pass it with --features RUN:\n"
                          f"  zoo train {_feature_model()} --dataset {shlex.quote(dataset)}{option} "
                          "--out runs/features\n"
                          f"  zoo eval {shlex.quote(str(source))} --fid --features runs/features")
    features = features or feature_network_name(dataset)
    feat_run = load(features, device=str(run.device))
    feat = feat_run.model
    if not hasattr(feat, "embed"):
        raise ConfigError(f"'{features}' is not a feature network (a run of a model with `embed`, such as "
                          f"{_feature_model()})")
    if tuple(feat.shape) != tuple(run.shape):
        raise ConfigError(f"the feature network '{features}' takes {feat.shape} images, the model makes {run.shape}")
    # In grey levels, also for a run trained on binarised pixels: its samples are pixel probabilities, the
    # mean of the binary images it models, as a grey image is the mean of its binarisations. Binarised test
    # images beside grey training images made the floor a comparison of two kinds of picture (73 on MNIST).
    data = run.dataset(data_dir, grey=True)
    binarised = run.record["train"].get("binarize", "none") not in ("none", "", None)
    test_x, test_y = data.split("test")
    if "test" in data.reused:
        raise ConfigError(f"no sample-quality figure for {data.name}: {data.caveat()}",
                          "FID and KID compare samples with held-out images; add images to the folder.")
    m = min(n, test_x.shape[0], data.train_x.shape[0])
    gen = torch.Generator(device=run.device).manual_seed(seed)

    # A conditional model draws every class equally often, in order, so the feature network (a classifier)
    # can say how often each class came out right.
    conditional = sampler is None and run.can("sample_class")
    if conditional and not feat.can("classify"):
        raise ConfigError(f"'{features}' cannot classify, so it cannot check the class of conditional samples",
                          "Give a feature network that is a classifier run (--features RUN).")
    # Its class k is the run's class k only where both name the same classes in the same order (a folder's
    # `zero..nine` sort otherwise): else no accuracy is measured, rather than a wrong one.
    same_classes = tuple(feat_run.classes or ()) == tuple(run.classes or ())
    wanted = torch.arange(m) % max(len(run.classes), 1)

    # decoded from a latent sampler fitted (or read) once, batch after batch, as draw() asks for them
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
        f_samples, f_test, f_train = [quality.embed(feat, images, bar=bar) for images in
                                      (samples, test_x[:m], train_x)]
        bar.set_description_str("fid: KID", refresh=False)
        result = {"feature_network": features, "note": "classifier-feature FID/KID: not comparable to Inception FID",
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
            _warn(result, f"the samples are nearly all alike: their features spread {spread:.1%} as widely as the "
                          f"test images' (blank images, or a collapsed generator): a precision of "
                          f"{pr['precision']:.3f} says only that they lie near some real images; the recall, "
                          f"{pr['recall']:.3f}, how little of the data they cover")
        if feat.can("classify") and not same_classes:
            _warn(result, f"the feature network's classes ({_listed(feat_run.classes)}) are not the run's "
                          f"({_listed(run.classes)}): no class accuracy is measured, of the samples or of the test "
                          "images")
        if conditional and same_classes:
            result["class_accuracy"] = class_accuracy(feat, samples, wanted, run.classes)
        if feat.can("classify") and same_classes and test_y is not None and len(test_y):
            # The figures are only as good as the features: a poor classifier maps unlike images together.
            real = test_x[:m].float() / 255.0 if test_x.dtype == torch.uint8 else test_x[:m].float()
            accuracy = class_accuracy(feat, real, test_y[:m].cpu(), run.classes)["mean"]
            result["feature_network_test_accuracy"] = accuracy
            if accuracy < WEAK_FEATURES:
                _warn(result, f"the feature network classifies only {accuracy:.1%} of the test images right: its "
                              "features tell the classes apart poorly, so these figures say little (even noise can "
                              "score a high precision); train it longer")
    if inception:  # the same samples and images, in Inception's features (minutes on a CPU)
        result["inception"] = inception_mod.inception_quality(samples, test_x[:m], train_x, inception=inception,
                                                              device=run.device, seed=seed)
    if save:
        _write(run.output_dir, result, sampler)
    return result


def _write(folder, result: dict[str, Any], sampler: str | None) -> None:
    name = "quality.json" if sampler is None else f"quality-{sampler}.json"
    ckpt.write_json(folder / name, {k: v for k, v in result.items() if k != "written"})
    result["written"] = [str(folder / name)]


def _over_seeds(source, seeds: int, *, seed: int, save: bool, sampler: str | None, inception, **options):
    """sample_quality at `seeds` seeds from `seed` on: the first seed's figures (and Inception's), with every
    seed's under "over_seeds" and their median FID. Each run reads the sampler the first one fitted."""
    runs = [sample_quality(source, seed=seed + i, save=save, sampler=sampler, inception=inception if i == 0 else None,
                           **options) for i in range(seeds)]
    pairs = [r["samples_vs_test"] for r in runs]
    result = {**runs[0], "over_seeds": {
        "seeds": [seed + i for i in range(seeds)], "fid": [p["fid"] for p in pairs], "kid": [p["kid"] for p in pairs],
        "precision": [p["precision"] for p in pairs], "recall": [p["recall"] for p in pairs],
        "median_fid": statistics.median(p["fid"] for p in pairs)}}
    if save:
        _write(Path(runs[0]["written"][0]).parent, result, sampler)
    return result


def _listed(classes) -> str:
    names = [str(c) for c in classes or ()]
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "") if names else "none"


def _warn(result: dict[str, Any], text: str) -> None:
    """Add a warning to the result's, one line each (the CLI prints each on its own line)."""
    result["warning"] = f"{result['warning']}\n{text}" if "warning" in result else text
