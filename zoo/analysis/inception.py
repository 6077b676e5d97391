"""Inception FID, KID and IS through torch-fidelity, the figures published tables use (opt-in).

zoo never downloads the Inception weights: torch-fidelity would fetch them from GitHub when given no
path, so zoo always hands it a file it found itself (a path, or torch hub's checkpoints folder, where
torch-fidelity and torchmetrics keep it), or stops with one message saying how to get it. The feature
network is looked up by name in torch-fidelity's registry (`extractor`), so a test can register a tiny
stand-in with the same interface and run it through the same library code as the real Inception.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from zoo.analysis import quality
from zoo.errors import ConfigError

INCEPTION = "inception-v3-compat"  # torch-fidelity's Inception, numerically matching the TF original
EXTRACTOR = INCEPTION  # the feature network used; a test sets a stand-in registered in torch-fidelity
WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE}"
ISC_SPLITS = 10  # as torch-fidelity, torchmetrics and Salimans et al.
AUTO = "auto"


def hub_checkpoints() -> Path:
    """Where torch-fidelity (through torch.hub) caches the weights: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_weights(inception: str | os.PathLike | bool) -> Path:
    """The weights file: `inception` as a file, or WEIGHTS_FILE in it as a folder; True or "auto": in
    torch hub's checkpoints folder. Never downloads: a missing file is one ConfigError saying how to get it."""
    if inception is True or str(inception) == AUTO:
        where, origin = hub_checkpoints() / WEIGHTS_FILE, "torch hub's cache"
    else:
        where, origin = Path(inception).expanduser(), "--inception"
        if where.is_dir():
            where = where / WEIGHTS_FILE
    if where.is_file():
        return where
    raise ConfigError(f"no Inception weights: {WEIGHTS_FILE} is not at {where} ({origin}); zoo never downloads them",
                      f"Download it once: curl -L --create-dirs -o {hub_checkpoints() / WEIGHTS_FILE} {WEIGHTS_URL}\n"
                      "then pass --inception auto, or pass the file you have with --inception PATH.")


def require_library():
    """torch-fidelity's utils, or one ConfigError saying how to install it (an optional dependency)."""
    try:
        import torch_fidelity
    except ImportError as e:
        raise ConfigError(f"Inception figures need torch-fidelity, which is not installed ({e})",
                          "pip install 'torch-fidelity>=0.4,<0.5'   (or: pip install -e '.[inception]')") from None
    from torch_fidelity import utils
    if not hasattr(utils, "resolve_feature_layer_for_metric"):  # 0.3 and older: another internal API
        raise ConfigError(f"zoo needs torch-fidelity 0.4, found {torch_fidelity.__version__}",
                          "pip install 'torch-fidelity>=0.4,<0.5'")
    return utils


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] uint8 on the CPU, as torch-fidelity's extractors take: floats in [0, 1] are scaled and
    rounded, grey images repeated into three channels."""
    if images.dtype != torch.uint8:
        images = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ConfigError(f"Inception figures need grey or RGB images [N,1|3,H,W], got {tuple(images.shape)}")
    return images.cpu().expand(-1, 3, -1, -1).contiguous()


class _Images(torch.utils.data.Dataset):
    """The images as the Dataset (of uint8 tensors) torch-fidelity reads."""

    def __init__(self, images: torch.Tensor):
        self.images = to_uint8_rgb(images)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def _load_extractor(utils, name: str, weights: Path, layers: list[str], cuda: bool):
    """The library's feature extractor with `weights`. The file is read first with weights_only=True:
    the library unpickles it in full, which must not run code from a foreign file."""
    why = None
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not state:
            why = "it holds no state dict"
    except Exception as e:  # noqa: BLE001  (any unreadable file is the same mistake for the user)
        why = f"it cannot be read as PyTorch weights ({type(e).__name__})"
    if why is None:
        try:
            return utils.create_feature_extractor(name, layers, cuda=cuda, feature_extractor_weights_path=str(weights),
                                                  verbose=False)
        except (RuntimeError, ValueError, KeyError) as e:  # load_state_dict: missing or misshapen tensors
            why = f"they do not fit {name} ({str(e).splitlines()[0][:200]})"
    raise ConfigError(f"the Inception weights {weights} are corrupt or not {WEIGHTS_FILE}: {why}",
                      f"Download them again from {WEIGHTS_URL}, or pass the right file with --inception PATH.")


@torch.no_grad()
def inception_quality(samples: torch.Tensor, test: torch.Tensor, train: torch.Tensor | None = None, *,
                      inception: str | os.PathLike | bool = AUTO, extractor: str | None = None,
                      device: str | torch.device = "cpu", seed: int = 0, batch_size: int = 64) -> dict[str, Any]:
    """FID and KID of `samples` against `test` images (and of `test` against `train`, the floor), with the
    Inception Score of the first set of each pair, computed by torch-fidelity's own functions (those its
    calculate_metrics runs) so that each set is embedded once. Images: floats in [0, 1] or uint8, grey
    or RGB, any size (the extractor resizes). `extractor` None: EXTRACTOR, read at call time."""
    weights = find_weights(inception)
    utils = require_library()
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_featuresdict_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_featuresdict_to_metric
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_featuresdict_to_metric

    name = extractor or EXTRACTOR
    n = min(len(samples), len(test), *([len(train)] if train is not None else []))
    size = quality.kid_subset_size(n)
    if size < 2 or n < 2 * ISC_SPLITS:
        raise ConfigError(f"Inception figures need at least {2 * ISC_SPLITS} images in each set, got {n}",
                          "Compare more images: raise --fid-n.")
    kwargs = {"feature_extractor": name, "isc_splits": ISC_SPLITS, "kid_subsets": quality.KID_SUBSETS,
              "kid_subset_size": size, "rng_seed": seed, "verbose": False}
    layers = {m: utils.resolve_feature_layer_for_metric(m, **kwargs) for m in ("fid", "kid", "isc")}
    cuda = torch.device(device).type == "cuda"
    net = _load_extractor(utils, name, weights, sorted(set(layers.values())), cuda)

    def features(images):  # num_workers 0 (save_cpu_ram): the images are in memory already
        return utils.get_featuresdict_from_dataset(_Images(images), net, batch_size, cuda, True, False)

    def pair(fa, fb) -> dict[str, float]:
        fid = fid_statistics_to_metric(fid_featuresdict_to_statistics(fa, layers["fid"]),
                                       fid_featuresdict_to_statistics(fb, layers["fid"]), False)
        kid = kid_featuresdict_to_metric(fa, fb, layers["kid"], **kwargs)
        isc = isc_featuresdict_to_metric(fa, layers["isc"], **kwargs)
        return {"fid": float(fid[KEY_METRIC_FID]), "kid": float(kid[KEY_METRIC_KID_MEAN]),
                "kid_std": float(kid[KEY_METRIC_KID_STD]), "kid_subsets": quality.KID_SUBSETS,
                "kid_subset_size": size, "is": float(isc[KEY_METRIC_ISC_MEAN]),
                "is_std": float(isc[KEY_METRIC_ISC_STD]), "is_splits": ISC_SPLITS}

    f_samples, f_test = features(samples[:n]), features(test[:n])
    import torch_fidelity

    real = name == INCEPTION  # the weights loaded strictly into torch-fidelity's Inception
    result = {"feature_extractor": name, "weights": str(weights), "images": n,
              "library": f"torch-fidelity {torch_fidelity.__version__}",
              "note": ("Inception FID/KID/IS (torch-fidelity): comparable with published Inception figures" if real else
                       f"feature extractor '{name}' with {Path(weights).name}: NOT the Inception figures published "
                       "tables use"),
              "samples_vs_test": pair(f_samples, f_test)}
    if train is not None:
        result["floor_test_vs_train"] = pair(f_test, features(train[:n]))
    return result
