"""What the class-conditional plugins (cvae, cgan) share: they need labelled data, take the class as a
one-hot vector, check the classes they are asked for, and sample without a class by drawing one."""

from __future__ import annotations

import torch

from zoo.errors import ConfigError


def require_labels(name: str, num_classes: int, alternative: str = "") -> None:
    if num_classes < 2:
        has = ("has no class labels" if num_classes == 0 else  # a folder without class folders, or with one: 1
               "is of one class (a folder without class sub-folders, or with one)")
        raise ConfigError(f"{name} learns one distribution per class, and this data set {has}",
                          "Train it on a labelled data set of two classes or more (mnist, fashion-mnist, digits, or a "
                          f"folder with one sub-folder per class){alternative}.")


def one_hot(labels: torch.Tensor, num_classes: int, dtype=torch.float32) -> torch.Tensor:
    """[B, classes], built without reading the labels back to the host, so a training step never waits, and
    without writing in place, so that trials vectorised by torch.func.vmap (zoo search --vectorize) can take it."""
    classes = torch.arange(num_classes, device=labels.device)
    return (labels.long()[:, None] == classes).to(dtype)


class ClassConditional:
    """Mixin for a model with `sample_class`: the classes checked, and `sample` drawing them uniformly."""

    def checked_labels(self, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.to(self.device)
        if bool(((labels < 0) | (labels >= self.num_classes)).any()):
            raise ConfigError(f"class indices must lie in 0..{self.num_classes - 1}")
        return labels

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images of classes drawn uniformly (for `zoo eval --fid` and grids without a class)."""
        labels = torch.randint(self.num_classes, (n,), device=self.device, generator=generator)
        return self.sample_class(labels, generator=generator)
