"""The folders zoo and the Hugging Face Hub manage: zoo's cache of verified hub copies
($XDG_CACHE_HOME/zoo/hub), huggingface-hub's cache and the bundled weights. Nothing a user asks for
may write into them (outputs, fitted samplers, --overwrite)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from zoo import registry
from zoo.environment import cache_home


def zoo_cache() -> Path:
    """Where zoo keeps its hub records and folder-hub copies: $XDG_CACHE_HOME/zoo/hub."""
    return cache_home() / "zoo" / "hub"


def hf_caches() -> list[Path]:
    """huggingface-hub's cache: as the environment says now, and as the imported library took it."""
    home = os.environ.get("HF_HOME") or os.path.join(cache_home(), "huggingface")
    roots = [Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
                  or os.path.join(home, "hub")).expanduser()]
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        roots.append(Path(constants.HF_HUB_CACHE))
    return roots


def is_managed(folder: str | Path) -> bool:
    """True for folders that zoo or huggingface-hub manage (pulled copies, the HF cache, bundled weights):
    nothing should write into them (outputs, fitted samplers)."""
    folder = Path(folder).absolute().resolve()  # `..` and links resolved: no spelling gets in
    roots = [Path(r).absolute().resolve() for r in (zoo_cache(), *hf_caches(), Path(registry.__file__).parent)]
    return any(folder == r or r in folder.parents for r in roots)
