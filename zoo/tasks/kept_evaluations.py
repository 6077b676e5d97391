"""Which evaluation eval.json keeps: a quick look (--limit, another split, other images than the run's)
is printed but never written over an earlier evaluation of the same weights that measured more, or the
whole test split (which may have been hours of a K = 5,000 bound)."""

from __future__ import annotations

from typing import Any

from zoo.console import to_stderr
from zoo.data.datasets import ImageData
from zoo.runs import checkpoint as ckpt
from zoo.runs import eval_images
from zoo.runs.run import Run


def whole_test_kept(run: Run, data: ImageData, n: int, split: str) -> bool:
    """A quick look (--limit, another split) does not replace an eval.json of the same weights over the
    whole test split (which may have been hours of a K = 5,000 bound): True, said, where one is kept."""
    whole = data.split("test")[0].shape[0]
    for folder in dict.fromkeys((run.output_dir, run.folder)):  # the user's, then one published with the weights
        kept, _ = eval_images.current_eval(folder, weights=run.folder / ckpt.WEIGHTS)
        if kept is not None and kept.get("split", "test") == "test" and kept.get("images") == whole \
                and not kept.get("limit"):
            break
    else:
        return False
    if folder != run.output_dir:  # beside weights zoo does not write to (published, or read-only)
        to_stderr(f"note: {run.source} comes with its evaluation of the whole test split ({whole:,} images); "
                  f"this one, of {n:,} {split} images, is printed, not written")
        return True
    to_stderr(f"note: {folder / ckpt.EVAL} holds this model's evaluation of the whole test split ({whole:,} images); "
              f"this one, of {n:,} {split} images, is printed but not written over it (delete it to write this one)")
    return True


def fuller_part_kept(run: Run, result: dict[str, Any]) -> bool:
    """A quick look does not replace an earlier look at part of the data of the same weights that measured
    more images or a metric this one did not (a K = 1,000 bound over 2,000 images, which took hours): True,
    said, where one is kept."""
    kept, _ = eval_images.current_eval(run.output_dir, weights=run.folder / ckpt.WEIGHTS)
    if kept is None or kept.get(ckpt.WEIGHTS_DIGEST) != result[ckpt.WEIGHTS_DIGEST]:
        return False
    if kept.get(eval_images.IMAGES_DIGEST) == result[eval_images.IMAGES_DIGEST] and \
            kept.get("split", "test") == result["split"]:
        return False  # the same images: written, with what it lacks carried over (_with_earlier_metrics)
    lacking = [k for k in kept.get("metrics", {}) if k not in result["metrics"]]
    more = isinstance(kept.get("images"), int) and kept["images"] > result["images"]
    if not lacking and not more:
        return False
    why = f" with {', '.join(lacking)}, which this one did not measure" if lacking else ", more than this one"
    to_stderr(f"note: {run.output_dir / ckpt.EVAL} holds an evaluation of these weights on {kept.get('images'):,} "
              f"{kept.get('split', 'test')} images{why}; this one, of {result['images']:,} "
              f"{result['split']} images, is printed but not written over it (delete it to write this one)")
    return True


def other_images_kept(run: Run, result: dict[str, Any]) -> bool:
    """An evaluation of a whole split does not replace one of the same weights and split on other images
    (a --data-dir holding other files under the set's name: Fashion-MNIST's as mnist): True, said, where
    one is kept. The same data always give the same images, binarised ones included."""
    kept, _ = eval_images.current_eval(run.output_dir, weights=run.folder / ckpt.WEIGHTS)
    if kept is None or kept.get(ckpt.WEIGHTS_DIGEST) != result[ckpt.WEIGHTS_DIGEST] or kept.get("limit") \
            or kept.get("split", "test") != result["split"] \
            or kept.get(eval_images.IMAGES_DIGEST) in (None, result[eval_images.IMAGES_DIGEST]):
        return False
    if kept.get("other_images") and not result.get("other_images"):  # the run's own images replace others'
        return False
    to_stderr(f"note: {run.output_dir / ckpt.EVAL} holds an evaluation of these weights on other {result['split']} "
              f"images than these (the data read are not those it measured); this one is printed but not written "
              "over it (delete it to write this one)")
    return True


def say_shipped(run: Run) -> None:
    """Before a long evaluation of the whole test split of weights published with their own (the bundled
    ones): their figures, and where they are read at once, rather than measured again for half an hour."""
    if run.folder == run.output_dir:
        return
    shipped, _ = eval_images.current_eval(run.folder, weights=run.folder / ckpt.WEIGHTS)
    if shipped is None or shipped.get("split", "test") != "test" or shipped.get("limit"):
        return
    figures = ", ".join(f"{k} {v:.5g}" for k, v in shipped.get("metrics", {}).items() if isinstance(v, (int, float)))
    to_stderr(f"note: {run.source} ships its evaluation of the whole test split ({figures}): `zoo info {run.source}` "
              "shows it and `zoo compare` reads it at once; this one measures it again")
