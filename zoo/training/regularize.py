"""Regularisers for any plugin with an encoder and a decoder, as training callbacks (zoo.training.callbacks) that
zoo registers through the `zoo_callbacks` hook like a third-party plugin would (zoo.plugins.callbacks).

* Weight pruning (`prune_every`, `prune_encoder_linear`, `prune_encoder_conv`, `prune_decoder_linear`,
  `prune_decoder_conv`): every `prune_every` epochs, L1-unstructured pruning (torch.nn.utils.prune) of
  that fraction of the still-unpruned weights of every linear / conv layer of `model.encoder` and
  `model.decoder`. The masks are torch's own reparametrisation (`weight_orig` * `weight_mask`), so a
  pruned weight stays zero for the rest of training; checkpoint.safetensors holds the orig/mask pairs
  (resume re-creates them), model.safetensors holds plain, permanently pruned weights.
* Iterative autoencoding (`iterative_passes`, `iterative_weights`): the training loss adds the error
  of the 2nd..k-th reconstruction (the decoder's output fed back into the encoder), one weight per pass,
  through the callbacks' `on_loss` hook; the error is the model's own `reconstruction_error`.
* Dropout lives in the plugins' layers (`dropout`, `dropout_decoder`).

Nothing here names an architecture: layers are found by module type under the model's `encoder` and
`decoder` attributes, and a model without them is refused with a clear message. Nothing reads a
plugin's config fields or replaces a method of a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn.utils import prune

from zoo.errors import ConfigError
from zoo.training.callbacks import Callback, LossStep

GROUPS = ("encoder_linear", "encoder_conv", "decoder_linear", "decoder_conv")


# ----------------------------------------------------------------------------------------- layer groups

def _kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    return None


def layer_groups(model: nn.Module) -> dict[str, list[nn.Module]]:
    """{group: [modules]} for the four groups; a part the model lacks gives empty groups."""
    groups: dict[str, list[nn.Module]] = {g: [] for g in GROUPS}
    for part in ("encoder", "decoder"):
        sub = getattr(model, part, None)
        if not isinstance(sub, nn.Module):
            continue
        for m in sub.modules():
            kind = _kind(m)
            if kind is not None and isinstance(getattr(m, "weight", None), torch.Tensor):
                groups[f"{part}_{kind}"].append(m)
    return groups


def _weight(module: nn.Module) -> torch.Tensor:
    """The effective weight (mask applied) whether or not the module is reparametrised."""
    if hasattr(module, "weight_orig") and hasattr(module, "weight_mask"):
        return module.weight_orig * module.weight_mask
    return module.weight


@torch.no_grad()
def sparsity(model: nn.Module) -> dict[str, dict[str, float | int]]:
    """Per group: weights, zeros and their fraction (groups the model has), then the linear and conv layers
    pruning does not reach, outside `encoder` and `decoder` (a hierarchical VAE's stochastic layers): 99 % of
    the pruned groups is not 99 % of the model."""
    groups = layer_groups(model)
    reached = {id(m) for modules in groups.values() for m in modules}
    groups["other_layers"] = [m for m in model.modules() if _kind(m) is not None and id(m) not in reached
                              and isinstance(getattr(m, "weight", None), torch.Tensor)]
    out = {}
    for group, modules in groups.items():
        if not modules:
            continue
        total = sum(_weight(m).numel() for m in modules)
        zeros = sum(int((_weight(m) == 0).sum()) for m in modules)
        out[group] = {"layers": len(modules), "weights": int(total), "zeros": int(zeros),
                      "sparsity": zeros / total if total else 0.0}
    return out


# ----------------------------------------------------------------------------------------- state dicts

def _is_pruned(module: nn.Module, name: str = "weight") -> bool:
    return any(isinstance(h, prune.BasePruningMethod) and getattr(h, "_tensor_name", None) == name
               for h in module._forward_pre_hooks.values())


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with every torch.nn.utils.prune pair (`X_orig`, `X_mask`) folded into a
    plain, permanently pruned `X`: what model.safetensors holds, loadable without pruning code."""
    sd = model.state_dict()
    if not any(k.endswith("_mask") for k in sd):
        return sd
    out = {}
    for key, value in sd.items():
        if key.endswith("_orig") and key[:-len("_orig")] + "_mask" in sd:
            base = key[:-len("_orig")]
            out[base] = (value * sd[base + "_mask"]).detach()
        elif key.endswith("_mask") and key[:-len("_mask")] + "_orig" in sd:
            continue
        else:
            out[key] = value
    return out


def make_permanent(model: nn.Module) -> int:
    """Remove every pruning reparametrisation, keeping the pruned values (zeros); returns how many."""
    n = 0
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
                n += 1
    return n


def reparametrize_like(model: nn.Module, checkpoint: Path) -> int:
    """Before loading a checkpoint written during pruned training: give every module whose tensors
    are stored as `X_orig`/`X_mask` the same reparametrisation (identity masks, overwritten by the
    load), so the saved masks hold after resume. Returns how many tensors; 0 if nothing to do."""
    try:
        from safetensors import safe_open

        with safe_open(str(checkpoint), framework="pt") as fh:
            keys = set(fh.keys())
    except Exception:  # missing or damaged: the checkpoint loader reports it properly
        return 0
    keys = {k[len("model."):] for k in keys if k.startswith("model.")}
    modules = dict(model.named_modules())
    n = 0
    for key in sorted(keys):
        if not key.endswith("_mask") or key[:-len("_mask")] + "_orig" not in keys:
            continue
        path, _, tensor = key[:-len("_mask")].rpartition(".")
        module = modules.get(path)
        if module is None or _is_pruned(module, tensor) or not isinstance(getattr(module, tensor, None), nn.Parameter):
            continue
        prune.identity(module, tensor)
        n += 1
    return n


# ----------------------------------------------------------------------------------------- pruning

class Pruning(Callback):
    """Every `every` epochs (before epochs every+1, 2*every+1, ...), L1-unstructured pruning of the given
    fraction of each group's still-unpruned weights. Pruning at the start of an epoch, after the
    checkpoint of the previous one, makes an interrupted and resumed run prune exactly as an
    uninterrupted one."""

    name = "pruning"
    description = "L1-prune encoder/decoder weights every N epochs (prune_every, prune_<part>_<kind>)"
    keys: ClassVar[tuple[str, ...]] = ("prune_every", *(f"prune_{g}" for g in GROUPS))

    def __init__(self, every: int, amounts: dict[str, float]):
        self.every = int(every)
        self.amounts = {g: float(amounts.get(g, 0.0)) for g in GROUPS}
        self.pruned: tuple[int | None, dict[str, float]] = (None, {})  # the last pruning here and its sparsity

    @classmethod
    def from_config(cls, train) -> "Pruning | None":
        amounts = {g: getattr(train, f"prune_{g}", 0.0) for g in GROUPS}
        if not train.prune_every or not any(a > 0 for a in amounts.values()):
            return None
        return cls(train.prune_every, amounts)

    def check(self, model: nn.Module) -> None:
        for group, amount in self.amounts.items():
            part = group.split("_")[0]
            if amount > 0 and not isinstance(getattr(model, part, None), nn.Module):
                raise ConfigError(f"prune_{group}={amount:g}: model '{model.name}' has no `{part}` module to prune",
                                  "Pruning works on models with `encoder` and `decoder` modules; "
                                  "set the prune_* amounts to 0 for this one.")

    def on_train_start(self, trainer) -> None:
        self.check(trainer.model)
        groups = layer_groups(trainer.model)
        for group, amount in self.amounts.items():
            if amount > 0 and not groups[group]:
                part, kind = group.split("_")
                trainer.log(f"note: prune_{group}={amount:g}, but the {part} has no {kind} layers")

    def on_epoch_start(self, trainer, epoch: int) -> None:
        if epoch <= 1 or (epoch - 1) % self.every:
            return
        self.prune(trainer.model)
        s = sparsity(trainer.model)
        self.pruned = (epoch, {g: v["sparsity"] for g, v in s.items() if self.amounts.get(g)})
        trainer.log(f"pruned before epoch {epoch}: " + ", ".join(
            f"{g.replace('_', ' ')} {v:.1%}" for g, v in self.pruned[1].items()))

    def on_train_end(self, trainer) -> None:
        """Say where the kept weights (the best epoch's, restored) hold less of the pruning than its last log line:
        pruning raises the validation loss, and the best epoch was often one before it (0 % zeros kept)."""
        epoch, logged = self.pruned
        kept = {g: v["sparsity"] for g, v in sparsity(trainer.model).items() if g in logged}
        if any(kept[g] < logged[g] - 1e-9 for g in logged):
            trainer.log(f"note: the kept weights, of the best epoch ({trainer.state['best_epoch']}), are from before "
                        f"the pruning before epoch {epoch}: " + ", ".join(
                            f"{g.replace('_', ' ')} {kept[g]:.1%} zeros (pruned to {logged[g]:.1%})" for g in logged)
                        + ": the pruned network scored worse on validation (prune less, or train more epochs after "
                        "the last pruning)")

    @torch.no_grad()
    def prune(self, model: nn.Module) -> None:
        for group, modules in layer_groups(model).items():
            amount = self.amounts[group]
            if amount <= 0:
                continue
            for m in modules:
                prune.custom_from_mask(m, "weight", mask=l1_mask(m, amount))


@torch.no_grad()
def l1_mask(module: nn.Module, amount: float) -> torch.Tensor:
    """torch.nn.utils.prune's L1-unstructured rule: zero the round(amount × n) smallest-magnitude weights
    of the n still unpruned. (Computed here because torch's own `l1_unstructured` cannot view weights
    stored channels-last; the mask it yields is the same.)"""
    w = _weight(module).detach()
    current = getattr(module, "weight_mask", None)
    mask = (current.detach() if current is not None else torch.ones_like(w)).contiguous().reshape(-1).clone()
    alive = mask == 1
    k = round(amount * int(alive.sum()))
    if k > 0:
        scores = w.abs().contiguous().reshape(-1).clone()
        scores[~alive] = float("inf")
        mask[torch.topk(scores, k, largest=False).indices] = 0
    return mask.view(w.shape)


# ----------------------------------------------------------------------------------------- iterative AE

class IterativeAutoencoding(Callback):
    """Training loss = w1 * (the model's own loss) + sum over passes i = 2..k of wi * error(x, r_i), where
    r_1 = reconstruct(x) and r_i = reconstruct(r_{i-1}). The error is the model's own
    `reconstruction_error`, in its loss's units (a VAE's nats an image). Only the loss the main optimizer
    minimises changes: validation is untouched, so validation losses stay comparable across k."""

    name = "iterative"
    description = "iterative autoencoding: later reconstructions in the loss (iterative_passes, iterative_weights)"
    keys = ("iterative_passes", "iterative_weights")

    def __init__(self, passes: int, weights: list[float] | tuple[float, ...] = ()):
        self.passes = int(passes)
        weights = list(weights)
        if not weights:
            weights = [1.0] * self.passes
        elif len(weights) == 1:
            weights = weights * self.passes
        if len(weights) != self.passes:
            raise ConfigError(f"iterative_weights has {len(weights)} values for {self.passes} passes",
                              f"Give one weight, or one per pass ({self.passes}).")
        if not any(weights):  # a loss of 0 at every step: every epoch "trained", and the weights never moved
            raise ConfigError("iterative_weights are all 0: the loss would be 0 and nothing would train",
                              "Give the passes' reconstructions weights above 0 (at least one).")
        self.weights = [float(w) for w in weights]

    @classmethod
    def from_config(cls, train) -> "IterativeAutoencoding | None":
        if train.iterative_passes <= 1:
            if len(train.iterative_weights) > 1:
                raise ConfigError(f"iterative_weights has {len(train.iterative_weights)} values but iterative_passes "
                                  "is 1", "Set iterative_passes to the number of reconstructions in the loss.")
            return None
        return cls(train.iterative_passes, train.iterative_weights)

    def check(self, model: nn.Module) -> None:
        if not model.can("reconstruct"):
            raise ConfigError(f"iterative_passes={self.passes}: model '{model.name}' cannot reconstruct images",
                              "Iterative autoencoding needs an autoencoder; set iterative_passes = 1.")

    def on_train_start(self, trainer) -> None:
        self.check(trainer.model)

    def on_loss(self, trainer, step: LossStep) -> None:
        if step.optimizer != "main":
            return
        model, x, first = step.model, step.batch.x, step.loss
        total = self.weights[0] * first
        step.logs["pass1_loss"] = first.detach()
        r = model.reconstruct(x)
        for i in range(2, len(self.weights) + 1):
            r = model.reconstruct(r)
            e = model.reconstruction_error(r, x)
            step.logs[f"pass{i}_loss"] = e.detach()
            total = total + self.weights[i - 1] * e
        step.loss = total


# ----------------------------------------------------------------------------------------- from a config

def prunes(train: dict | Any) -> bool:
    """Whether a training config (TrainConfig or the dict in config.json) asks for pruning."""
    get = train.get if isinstance(train, dict) else (lambda k, d=None: getattr(train, k, d))
    return bool(get("prune_every", 0)) and any((get(f"prune_{g}", 0.0) or 0) > 0 for g in GROUPS)


def pruning_notes(train) -> list[str]:
    """What a TrainConfig's pruning keys leave undone, said rather than recorded as if it pruned: amounts
    without prune_every, prune_every without amounts, or a prune_every no epoch of the run reaches (the first
    pruning is before epoch prune_every + 1)."""
    amounts = [f"prune_{g}={getattr(train, f'prune_{g}'):g}" for g in GROUPS if getattr(train, f"prune_{g}") > 0]
    if amounts and not train.prune_every:
        return [f"{', '.join(amounts)} {'has' if len(amounts) == 1 else 'have'} no effect: prune_every is 0 "
                "(never); set prune_every=N to prune every N epochs"]
    if train.prune_every and not amounts:
        return [f"prune_every={train.prune_every} has no effect: every prune_* amount is 0 (set one, e.g. "
                "prune_encoder_linear=0.2)"]
    if amounts and train.prune_every >= train.epochs:
        return [f"prune_every={train.prune_every} with epochs={train.epochs}: nothing is pruned (the first pruning "
                f"is before epoch {train.prune_every + 1})"]
    return []
