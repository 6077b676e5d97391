"""Classifier: the conv encoder of the autoencoders with a head that predicts the labels.

Trained from scratch (`zoo train classifier`) it is the supervised baseline; `zoo finetune RUN` copies
a trained autoencoder's encoder into it and, by default, freezes it, so the head learns on the
features the autoencoder found without labels.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from zoo.plugins.conv import ConvNetConfig, activation, build_encoder, init_weights

from zoo import ZooModel, hookimpl, param
from zoo.analysis.plots import save_png, subplots
from zoo.errors import CapabilityError, ConfigError, RunError, ZooError
from zoo.hub import is_hub_source
from zoo.runs.checkpoint import weights_digest
from zoo.training.batching import batches


NO_DECODER = "not used: a classifier has no decoder"
DECODER_KEYS = ("dropout_decoder", "decoder_channels", "decoder_kernel", "decoder_stride", "decoder_padding",
                "decoder_hidden")
# The conv net's keys that build the encoder: a fine-tuned classifier's are its source's (zoo finetune refuses a
# --set of one: the copied weights compute the source's code only in the network they were trained in).
# weight_init is not one: it starts the head, the encoder's weights are copied over whatever it starts from.
ENCODER_KEYS = tuple(f.name for f in fields(ConvNetConfig) if f.name not in (*DECODER_KEYS, "weight_init"))


@dataclass
class ClassifierConfig(ConvNetConfig):
    head: list[int] = param([60], "hidden layers of the classification head", low=1, high=65536)
    head_dropout: float = param(0.0, "dropout before each layer of the head", low=0.0, high=0.95)
    features: str = param("conv", "what the head reads: conv (the flattened conv features: a plain CNN "
                                  "classifier) or latent (the encoder's code, as zoo finetune does by default)",
                          choices=("latent", "conv"))
    encoder_out: int = param(0, "width of the encoder's last layer (0: latent_dim; a VAE's is 2 × latent_dim, "
                                "of which the head reads the mean)", low=0, high=8192)
    freeze: str = param("none", "encoder weights kept fixed: none, or all (but the last `unfreeze_last` layers)",
                        choices=("none", "all"))
    unfreeze_last: int = param(0, "with freeze=all, the number of last encoder weight layers still trained",
                               low=0, high=1000)
    init_from: str = param("", "the run whose encoder weights this model started from: its folder's absolute path, "
                                "catalogued name or hub location (set by zoo finetune alone)")
    init_digest: str = param("", "the digest of that run's weights file when they were copied (set by zoo finetune "
                                  "alone)")
    # A classifier has no decoder: the conv net's decoder keys stay (so every conv model's config.json reads
    # alike, and runs saved with them load), say so, and are refused when set.
    dropout_decoder: bool = param(False, NO_DECODER)
    decoder_channels: list[int] = param([], NO_DECODER, low=1, high=4096)
    decoder_kernel: list[int] = param([], NO_DECODER, low=1, high=15)
    decoder_stride: list[int] = param([], NO_DECODER, low=1, high=8)
    decoder_padding: list[int] = param([], NO_DECODER, low=0, high=16)
    decoder_hidden: list[int] = param([], NO_DECODER, low=1, high=65536)


class Classifier(ZooModel):
    name = "classifier"
    description = "Conv encoder + MLP head on the labels; frozen-encoder transfer with `zoo finetune`"
    Config = ClassifierConfig
    train_defaults = {"lr": 1e-3, "epochs": 20, "patience": 5}
    maximized = ("accuracy",)  # a search minimises: it would pick the worst classifier

    def __init__(self, config: ClassifierConfig, shape, num_classes: int = 10):
        super().__init__(config, shape, num_classes)
        if num_classes < 2:
            raise ConfigError("a classifier needs a labelled data set with at least two classes",
                              "folder:PATH data sets are labelled by their sub-folders.")
        width = config.encoder_out or config.latent_dim
        encoder, _ = build_encoder(config, self.shape, width)
        if config.features == "conv":
            flat = next(i for i, m in enumerate(encoder) if isinstance(m, nn.Flatten))
            encoder = encoder[:flat + 1]
            with torch.no_grad():
                n_in = encoder(torch.zeros(1, *self.shape)).shape[1]
        else:
            n_in = config.latent_dim
        self.encoder = encoder
        layers: list[nn.Module] = []
        for a, b in zip([n_in, *config.head], [*config.head, num_classes]):
            if config.head_dropout > 0:
                layers.append(nn.Dropout(config.head_dropout))
            layers += [nn.Linear(a, b), activation(config)]
        self.head = nn.Sequential(*layers[:-1])  # no activation after the logits
        init_weights(self.head, config)
        self._check_unfreeze()
        self._apply_freeze()

    @classmethod
    def check_data(cls, config, data) -> None:
        """A new training that sets a decoder key means something else: say so (a run saved with one still loads).
        Nor may it name an encoder's source: only zoo finetune copies one, and sets init_from as it does; trained
        from a fine-tuned head's config.json, the encoder would start random (and, frozen, stay so)."""
        unused = [k for k in DECODER_KEYS if getattr(config, k)]
        if unused:
            raise ConfigError(f"classifier: {', '.join(unused)} set, and a classifier has no decoder",
                              "Leave the decoder keys out.")
        if config.init_from or config.init_digest:
            raise ConfigError(f"init_from={config.init_from!r}: only zoo finetune copies a classifier's encoder from "
                              "another run, and records it there itself; trained from a config that names it, the "
                              "encoder would start random" + (" and stay so (freeze=all)" if config.freeze == "all"
                                                               else ""),
                              f"Fine-tune that run again: zoo finetune {config.init_from or 'SOURCE'} --out NEW "
                              "(zoo.finetune in Python); or leave init_from and init_digest out to train a "
                              "classifier from scratch.")

    @classmethod
    def transfer_from(cls, source, *, hidden=(60,), freeze="all", unfreeze_last=0, features="latent"):
        """A classifier on the layers that map an image of `source` (a run of a model built on zoo.plugins.conv)
        to its code (its model's `code_net`): their settings and weights, with a new head. The copy records
        where they came from (init_from, init_digest)."""
        net = source.model.code_net()
        # the classifier rebuilds a zoo.plugins.conv encoder: conv layers, a Flatten, then linear layers to the code
        convs = net is not None and any(isinstance(m, nn.Conv2d) for m in net)
        if not source.can("encode") or net is None or not isinstance(net[-1], nn.Linear) \
                or not any(isinstance(m, nn.Flatten) for m in net) or not convs:
            why = ("its conv encoder takes an image only with its class, and a classifier must find the class"
                   if source.can("sample_class") and net is not None and convs else
                   "its encoder ends in the conv features, not in a code" if convs and source.can("encode")
                   else "its encoder has no conv layers (the classifier rebuilds zoo.plugins.conv encoders only)"
                   if net is not None and not convs else "it has no conv encoder")
            raise CapabilityError(f"model '{source.name}' cannot be fine-tuned into a classifier: {why}",
                                  "finetune works from runs of models built on zoo.plugins.conv (convae, dae, vae, "
                                  "iwae, vampprior, hvae, a classifier with features=latent, ...).")
        flat = next(i for i, m in enumerate(net) if isinstance(m, nn.Flatten))
        widths = [m.out_features for m in net[flat:] if isinstance(m, nn.Linear)]  # the code net's linear layers
        values = {k: v for k, v in source.record["config"].items() if k in ENCODER_KEYS}
        values.update(hidden=widths[:-1], encoder_out=widths[-1], head=list(hidden), freeze=freeze,
                      unfreeze_last=unfreeze_last, features=features)
        weights = list(net.state_dict().items())  # in the order of its layers, as the classifier's encoder has them
        where, digest = _location(source), source.file_digest

        def copy_encoder(model: "Classifier") -> None:
            if model.shape != source.model.shape:
                raise RunError(f"{source.source} was trained on images of shape {_shape(source.model.shape)}, and "
                               f"these are {_shape(model.shape)}", _reshape_hint(source.model.shape, model.shape))
            own = [(k, v) for k, v in model.state_dict().items() if k.startswith("encoder.")]  # features=conv: a prefix
            misfit = [k for (k, v), (_, w) in zip(own, weights) if v.shape != w.shape]
            if len(own) > len(weights) or misfit:
                raise RunError(f"the encoder of {source.source} does not fit the classifier "
                               f"({', '.join(misfit[:3]) or 'another number of layers'})",
                               "The classifier rebuilds encoders built on zoo.plugins.conv (conv layers, a Flatten, "
                               "linear layers); its code_net() has layers of other shapes.")
            model.load_state_dict({k: w for (k, _), (_, w) in zip(own, weights)}, strict=False)
            # Set by the copy, never by a config (check_data): model.config is what the run's config.json records.
            model.config.init_from, model.config.init_digest = where, digest

        return values, copy_encoder

    @classmethod
    def provenance(cls, config) -> list[str]:
        """Where the encoder was copied from, and whether that run still holds the weights it was copied from: a
        head's figures are of its own copy, and a source trained on or deleted since no longer matches them."""
        where, digest = config.get("init_from") or "", config.get("init_digest") or ""
        if not isinstance(where, str) or not where:
            return []
        line = f"encoder: copied from {where} by zoo finetune"
        weights = Path(where) / "model.safetensors"
        older = not isinstance(digest, str) or not digest  # today's finetune always records the weights' digest
        if not Path(where).is_absolute() and not is_hub_source(where) and older:
            # An older zoo recorded the source as typed: a path relative to a working directory not known here (or
            # a catalogued name); read as today's bare name, it would name the catalogued weights.
            return [f"encoder: copied from {where!r} by an older zoo's finetune, as typed there (a path relative to "
                    "the folder it ran in, or a catalogued name): not checked"]
        if not Path(where).is_absolute():  # a catalogued name or a hub location: not looked up here
            return [line]
        try:
            if not weights.is_file():
                return [f"{line}; that run is gone (no {weights}): this run holds its own copy of the encoder"]
            if older:
                return [f"{line}; an older zoo recorded no digest of its weights: whether they changed since is not "
                        "known"]
            now = weights_digest(weights)
        except (ZooError, OSError) as e:  # a folder this user may not read: said, never a failed `zoo info`
            why = e.message if isinstance(e, ZooError) else e.strerror or e
            return [f"{line}; its weights cannot be read now ({why})"]
        if now != digest:
            return [f"{line}; its weights have changed since (trained on or replaced): this run holds the copy it "
                    "was fine-tuned from"]
        return [f"{line} (its weights unchanged since)"]

    # ---------------------------------------------------------------- freezing
    def _frozen_modules(self) -> list[nn.Module]:
        if self.config.freeze == "none":
            return []
        weighted = [m for m in self.encoder if isinstance(m, (nn.Conv2d, nn.Linear))]
        keep = self.config.unfreeze_last
        trainable = weighted[len(weighted) - keep:] if keep else []
        frozen, seen_trainable = [], False
        for m in self.encoder:
            seen_trainable = seen_trainable or any(m is t for t in trainable)
            if not seen_trainable:  # dropout too: a frozen encoder computes fixed features
                frozen.append(m)
        return frozen

    def _check_unfreeze(self) -> None:
        """unfreeze_last counts layers of a frozen encoder: it means nothing without freeze=all, and
        cannot exceed the encoder's weight layers (a typo would silently train everything)."""
        keep = self.config.unfreeze_last
        if keep and self.config.freeze != "all":
            raise ConfigError(f"unfreeze_last={keep} with freeze={self.config.freeze}: it counts the layers of a "
                              "frozen encoder that still train", "Use freeze=all with it, or leave it out.")
        layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in self.encoder)
        if keep > layers:
            raise ConfigError(f"unfreeze_last={keep}, but the encoder has {layers} weight layers",
                              f"Give at most {layers} (or freeze=none to train them all).")

    def _apply_freeze(self) -> None:
        for m in self._frozen_modules():
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self._frozen_modules():  # frozen batch norm keeps its statistics, frozen dropout drops nothing
            m.eval()
        return self

    # ---------------------------------------------------------------- model
    def features_of(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        return h[:, : self.config.latent_dim] if self.config.features == "latent" else h

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.head(self.features_of(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_of(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The head's last hidden activations: the feature space of classifier-feature FID."""
        return self.head[:-1](self.features_of(x))

    def loss(self, batch):
        logits = self.classify(batch.x)
        return {"loss": F.cross_entropy(logits.float(), batch.y)}

    def validation_step(self, batch):
        logits = self.classify(batch.x)
        return {"loss": F.cross_entropy(logits.float(), batch.y),
                "accuracy": (logits.argmax(1) == batch.y).float().mean()}

    def metrics(self, batch, **options):
        logits = self.classify(batch.x).float()
        return {"accuracy": (logits.argmax(1) == batch.y).float(),
                "cross_entropy": F.cross_entropy(logits, batch.y, reduction="none")}

    @torch.no_grad()
    def evaluation_report(self, x, y, run, out_dir):

        preds = torch.cat([self.classify(b.x).argmax(1) for b in batches(x, y, 1024)]).cpu()
        y = y.cpu()
        k = self.num_classes
        confusion = torch.zeros((k, k), dtype=torch.long)
        confusion.index_put_((y, preds), torch.ones_like(y), accumulate=True)
        # A class with no image in the split has no accuracy measured: None (null), never a 0/0 read as 0%
        # ("the head never recognises it"); its confusion row stays all zeros.
        counts = confusion.sum(1)
        per_class = [float(confusion[i, i]) / int(counts[i]) if int(counts[i]) else None for i in range(k)]
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        report = {"accuracy": float(confusion.diag().sum() / confusion.sum().clamp_min(1)),
                  "per_class_accuracy": per_class, "confusion": confusion.tolist(),
                  "parameters": {"total": total, "trainable": trainable}}
        history = run.training_history()
        if history:
            report["train_seconds"] = round(sum(r.get("seconds", 0.0) for r in history), 2)
            report["epochs"] = len(history)
        if out_dir is not None:
            classes = run.classes
            _confusion_png(confusion, classes, Path(out_dir) / "confusion.png", report["accuracy"])
            report["confusion_png"] = "confusion.png"  # beside eval.json
        return report


def _location(run) -> str:
    """Where a run is found again: a folder by its absolute path (as data_dir is recorded; a relative one means
    nothing from another working directory), a catalogued name or a hub location as it was named."""
    return str(run.folder) if Path(run.source).absolute() == run.folder else run.source


def _shape(shape) -> str:
    return "×".join(str(s) for s in shape)


def _reshape_hint(wanted, got) -> str:
    """How to fine-tune on images of the source's shape: what differs, the channels (no option reads a folder
    in other channels: its files must be converted), the size (image_size resizes a folder), or both."""
    steps = []
    if wanted[0] != got[0]:
        kind = {1: "grey (1 channel)", 3: "RGB (3 channels)"}.get(int(wanted[0]), f"{wanted[0]} channels")
        steps.append(f"its encoder takes {kind} images: convert the images to {kind.split(' (')[0]}")
    if tuple(wanted[1:]) != tuple(got[1:]):
        steps.append("a folder:PATH data set is resized with --set image_size=" + str(wanted[1])
                     if wanted[1] == wanted[2] else f"its encoder takes {wanted[2]}×{wanted[1]} images: resize them")
    return "Fine-tune on images of its shape: " + "; ".join(steps) + "."


def _confusion_png(confusion: torch.Tensor, classes, path: Path, accuracy: float) -> None:
    k = len(classes)
    # at least 3.6 × 3.2 inches, the title on two lines: two classes' title ran over the colour bar
    fig, ax = subplots(figsize=(max(3.6, 1.0 + 0.55 * k), max(3.2, 0.8 + 0.5 * k)))
    rates = confusion.float() / confusion.sum(1, keepdim=True).clamp_min(1)
    im = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if confusion[i, j]:
                ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(k))
    ax.set_xticklabels(classes, rotation=45, ha="right")
    ax.set_yticks(range(k))
    ax.set_yticklabels(classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix\n(accuracy {accuracy:.2%} on {int(confusion.sum()):,} images)", fontsize=10, pad=10)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    fig.tight_layout()
    save_png(fig, path)


@hookimpl
def zoo_models():
    return [Classifier]
