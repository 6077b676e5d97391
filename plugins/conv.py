"""Convolutional encoder/decoder stacks shared by the autoencoder plugins.

The config fields below are the common vocabulary: channels, kernel, stride and padding per conv
layer, hidden linear sizes, latent size, activation. The decoder mirrors the encoder while its layer keys
(decoder_channels/kernel/stride/padding) are all empty; once one is given, it is built from those. Output
paddings are computed so the output has the input's size.

Every pixel counts, at any image size. Where PyTorch's rounding down would leave an encoder layer's
last rows or columns unread (kernel 3, stride 2, padding 0 reads rows 0-6 of 8), the layer pads its
bottom and right edges for one more window, and the mirrored decoder crops what it padded; so the
encoder reads the whole image, and every output pixel of the decoder depends on the code rather than
on a bias alone. An explicit decoder is held to the same. Geometries that already read every row (the
defaults at 28×28) are built exactly as before. Only a kernel smaller than its stride still skips the
rows between its windows (in the encoder) and leaves them as gaps (in the mirrored decoder).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zoo.runs.config import param
from zoo.errors import ConfigError
from zoo.model import hyper_buffer

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}
INITS = ("torch", "he")
INIT_HELP = ("weights of every conv and linear layer at the start: torch (PyTorch's default), or he (Kaiming "
             "normal for the activation, zero biases, as the VampPrior paper's code: deep stacks learn faster)")
# The gain Kaiming's rule uses for each activation; GELU and SiLU take ReLU's, which they approach.
# The decoder mirrors the encoder only while all four of its layer keys are empty: once one is set, it is built
# from them, and an empty one means one layer, the encoder's last kernel, stride 1 or padding 0 (as runs record it).
DECODER_LAYER_KEYS = ("decoder_channels", "decoder_kernel", "decoder_stride", "decoder_padding")
ALL_EMPTY = "all four decoder_channels/kernel/stride/padding empty: mirror the encoder"
HE_NONLINEARITY = {"relu": ("relu", 0.0), "leaky_relu": ("leaky_relu", 0.2), "elu": ("relu", 0.0),
                   "gelu": ("relu", 0.0), "silu": ("relu", 0.0), "tanh": ("tanh", 0.0)}


@dataclass
class ConvNetConfig:
    channels: list[int] = param([8, 16, 32], "output channels of each encoder conv layer (one per layer)",
                                low=1, high=4096)
    kernel: list[int] = param([3], "kernel size of each conv layer (one value: every layer)", low=1, high=15)
    stride: list[int] = param([2], "stride of each conv layer (one value: every layer)", low=1, high=8)
    padding: list[int] = param([1, 1, 0], "padding of each conv layer (one value: every layer); a layer whose windows "
                               "would skip the last rows or columns also pads its end to read them (14 -> 7 at "
                               "kernel 3, stride 2, padding 0, where torch's Conv2d gives 6)", low=0, high=16)
    hidden: list[int] = param([128], "hidden linear layers between the convolutions and the latent", low=1,
                              high=65536)
    latent_dim: int = param(4, "size of the latent code", low=1, high=4096)
    activation: str = param("relu", "activation between layers", choices=tuple(ACTIVATIONS))
    batch_norm: bool = param(False, "batch norm after each hidden conv layer")
    dropout: float = param(0.0, "dropout probability before each hidden linear layer", low=0.0, high=0.95)
    dropout_decoder: bool = param(False, "dropout in the decoder's linear layers too (else encoder only)")
    decoder_channels: list[int] = param([], "decoder: output channels of each transposed conv but the last "
                                        f"(empty: one transposed conv; {ALL_EMPTY})", low=1, high=4096)
    decoder_kernel: list[int] = param([], "decoder: kernel of each transposed conv (empty: the encoder's last "
                                      f"kernel; {ALL_EMPTY})", low=1, high=15)
    decoder_stride: list[int] = param([], f"decoder: stride of each transposed conv (empty: 1; {ALL_EMPTY})",
                                      low=1, high=8)
    decoder_padding: list[int] = param([], f"decoder: padding of each transposed conv (empty: 0; {ALL_EMPTY})",
                                       low=0, high=16)
    decoder_hidden: list[int] = param([], "decoder: hidden linear layers (empty: mirror the encoder's)", low=1,
                                      high=65536)
    weight_init: str = param("torch", INIT_HELP, choices=INITS)


class Dropout(nn.Dropout):
    """nn.Dropout whose probability is read from a tensor buffer (`rate`), so trials that differ only
    in dropout train together in one vectorised step (zoo.training.multitrial)."""

    def __init__(self, p: float):
        super().__init__(p)
        hyper_buffer(self, "rate", p, key="dropout")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        keep = 1.0 - self.rate
        return x * (torch.rand_like(x) < keep).to(x.dtype) / keep


class Conv2d(nn.Conv2d):
    """nn.Conv2d that first zero-pads its bottom and right edges by `pad_end` (rows, columns), so its
    windows reach the last rows and columns. A plain layer's parameter names stay the same."""

    def __init__(self, *args, pad_end: tuple[int, int] = (0, 0), **kwargs):
        super().__init__(*args, **kwargs)
        self.pad_end = tuple(pad_end)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = self.pad_end
        if rows or cols:
            x = F.pad(x, (0, cols, 0, rows))
        return super().forward(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", pad_end={self.pad_end}" if any(self.pad_end) else "")


class ConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d that drops its last `crop_end` (rows, columns): the mirror of a `Conv2d` that
    padded them."""

    def __init__(self, *args, crop_end: tuple[int, int] = (0, 0), **kwargs):
        super().__init__(*args, **kwargs)
        self.crop_end = tuple(crop_end)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        rows, cols = self.crop_end
        if not (rows or cols):
            return y
        return y[..., : y.shape[-2] - rows, : y.shape[-1] - cols]

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", crop_end={self.crop_end}" if any(self.crop_end) else "")


class GatedConv2d(nn.Module):
    """A same-size conv whose output is gated by a sigmoid of a second one's, h ⊙ σ(g) (Dauphin et al. 2017;
    the VampPrior paper's GatedConv2d): one conv of twice the channels, split in two."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, g = self.conv(x).chunk(2, dim=1)
        return h * torch.sigmoid(g)


def build_pixel_head(image_channels: int, width: int, layers: int, cfg) -> nn.Sequential:
    """`layers` gated 3×3 convs of `width` channels at the image's full resolution, then a 1×1 conv back to
    logits: read on top of a decoder's logits, as the VampPrior paper's convHVAE reads the image-sized output of
    its dense layers (four of 64 channels there). Each output pixel then depends on its neighbours' decoded
    values too, which the transposed convs' few channels at full resolution cannot express."""
    convs = [GatedConv2d(image_channels if i == 0 else width, width) for i in range(layers)]
    head = nn.Sequential(*convs, nn.Conv2d(width, image_channels, 1))
    init_weights(head, cfg)
    return head


def _per_layer(values: list[int], n: int, key: str, counted_by: str = "channels") -> list[int]:
    """One value per layer, from one for all or one each: `n` layers, as `counted_by` gives them."""
    if len(values) == 1:
        return values * n
    if len(values) != n:
        layers = f"{n} {'transposed ' if key.startswith('decoder_') else ''}conv layer{'s' * (n != 1)}"
        raise ConfigError(f"{key}={values} has {len(values)} values, and {counted_by} gives {layers}",
                          f"Its values are one for all layers or one per layer: set {key} to one (--set "
                          f"{key}={values[0]})" + (f" or to {n}" if n > 1 else "") +
                          f" beside {counted_by.split(' (')[0]} (zoo info MODEL shows their defaults).")
    return list(values)


def _out_size(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def _end_padding(size: int, k: int, s: int, p: int) -> int:
    """Extra rows of zeros after the input so the layer's windows read its last rows: none when they
    already do; else enough for one more window, if that window starts on a real row."""
    out = _out_size(size, k, s, p)
    last_row = p + size - 1                      # in the padded input
    if (out - 1) * s + k - 1 >= last_row or out * s > last_row:
        return 0
    return out * s + k - (size + 2 * p)


def _transposed_size(size: int, k: int, s: int, p: int) -> int:
    return (size - 1) * s - 2 * p + k


def activation(cfg) -> nn.Module:
    return ACTIVATIONS[cfg.activation]()


def build_encoder(cfg: ConvNetConfig, shape: tuple[int, int, int], out_features: int):
    """Conv stack + linear layers ending in `out_features` (no activation). Returns (module, geometry): the
    sizes, kernels, strides, paddings and end paddings the mirrored decoder follows back."""
    c, h, w = shape
    n = len(cfg.channels)
    if n == 0:
        raise ConfigError("channels must list at least one conv layer")
    ks, ss, ps = (_per_layer(v, n, k) for v, k in ((cfg.kernel, "kernel"), (cfg.stride, "stride"),
                                                   (cfg.padding, "padding")))
    sizes = [(h, w)]
    layers: list[nn.Module] = []
    in_c = c
    pad_end: list[tuple[int, int]] = []
    for i, (out_c, k, s, p) in enumerate(zip(cfg.channels, ks, ss, ps)):
        ih, iw = sizes[-1]
        if min(_out_size(ih, k, s, p), _out_size(iw, k, s, p)) < 1:
            raise ConfigError(
                f"conv layer {i + 1} (kernel {k}, stride {s}, padding {p}) reduces {ih}×{iw} images to nothing",
                "Use fewer conv layers, smaller strides or kernels, or more padding; for a folder of small "
                "images, --set image_size=28 reads them larger.")
        end = (_end_padding(ih, k, s, p), _end_padding(iw, k, s, p))
        nh, nw = _out_size(ih + end[0], k, s, p), _out_size(iw + end[1], k, s, p)
        layers.append(Conv2d(in_c, out_c, k, stride=s, padding=p, pad_end=end))
        pad_end.append(end)
        if cfg.batch_norm:
            layers.append(nn.BatchNorm2d(out_c))
        layers.append(activation(cfg))
        sizes.append((nh, nw))
        in_c = out_c
    layers.append(nn.Flatten())
    flat = in_c * sizes[-1][0] * sizes[-1][1]
    layers += _linear_stack([flat, *cfg.hidden, out_features], cfg, dropout=cfg.dropout)
    geometry = {"sizes": sizes, "kernel": ks, "stride": ss, "padding": ps, "pad_end": pad_end,
                "channels": [c, *cfg.channels]}
    encoder = nn.Sequential(*layers)
    init_weights(encoder, cfg)
    return encoder, geometry


def init_weights(module: nn.Module, cfg) -> None:
    """Initialise every conv and linear layer in `module` by `cfg.weight_init`: `torch` leaves PyTorch's default
    (a uniform draw of a third of the He variance, which shrinks the signal layer after layer), `he` draws
    Kaiming normal weights and zero biases, with the gain of the activation that follows the layer in its
    nn.Sequential (batch norm between them allowed), and gain 1 for a layer no activation follows (the heads
    of codes and logits, which the activation's gain would start far from the prior). docs/model-zoo.md has
    what it changes (the hierarchical VAE's validation −ELBO after 4 epochs: 139.79 under torch, 105.85 under he)."""
    if cfg.weight_init != "he":
        return
    nonlinearity, slope = HE_NONLINEARITY[cfg.activation]
    act = type(activation(cfg))
    activated = set()
    for seq in module.modules():
        if isinstance(seq, nn.Sequential):
            children = [c for c in seq if not isinstance(c, (nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout))]
            activated |= {id(a) for a, b in zip(children, children[1:]) if type(b) is act}
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            if id(layer) in activated:
                nn.init.kaiming_normal_(layer.weight, a=slope, nonlinearity=nonlinearity)
            else:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="linear")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def _linear_stack(widths: list[int], cfg, dropout: float, final_activation: bool = False) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        if i > 0 and dropout > 0:
            layers.append(Dropout(dropout))
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2 or final_activation:
            layers.append(activation(cfg))
    return layers


def build_decoder(cfg: ConvNetConfig, geometry: dict, in_features: int) -> nn.Sequential:
    """Linear layers then transposed convs back to the input shape; outputs logits (no final activation)."""
    sizes, chans = geometry["sizes"], geometry["channels"]
    last_c, (lh, lw) = chans[-1], sizes[-1]
    hidden = cfg.decoder_hidden or list(reversed(cfg.hidden))
    layers = _linear_stack([in_features, *hidden, last_c * lh * lw], cfg,
                           dropout=cfg.dropout if cfg.dropout_decoder else 0.0, final_activation=True)
    layers.append(nn.Unflatten(1, (last_c, lh, lw)))
    explicit = any(getattr(cfg, key) for key in DECODER_LAYER_KEYS)
    hint = "Change the decoder's kernels, strides or paddings, or leave all four of decoder_channels, " \
        "decoder_kernel, decoder_stride and decoder_padding empty to mirror the encoder."
    if explicit:
        empty = {"decoder_kernel": "the encoder's last kernel", "decoder_stride": "stride 1",
                 "decoder_padding": "padding 0"}
        empty = [f"{key} (empty: {meaning})" for key, meaning in empty.items() if not getattr(cfg, key)]
        if empty:  # what the user did not set, said: it is not the mirror they may expect
            hint = f"With {'/'.join(k for k in DECODER_LAYER_KEYS if getattr(cfg, k))} set, the decoder does not " \
                f"mirror the encoder: {', '.join(empty)}. " + hint
        n = len(cfg.decoder_kernel) or len(cfg.decoder_channels) + 1
        by = "decoder_kernel" if cfg.decoder_kernel else \
            f"decoder_channels ({len(cfg.decoder_channels)} value{'s' * (len(cfg.decoder_channels) != 1)}: a " \
            "transposed conv layer more than its values)"
        ks = _per_layer(cfg.decoder_kernel or geometry["kernel"][-1:], n, "decoder_kernel", by)
        ss = _per_layer(cfg.decoder_stride or [1], n, "decoder_stride", by)
        ps = _per_layer(cfg.decoder_padding or [0], n, "decoder_padding", by)
        outs = list(cfg.decoder_channels) + [chans[0]]
        if len(outs) != n:
            raise ConfigError(f"decoder_channels needs {n - 1} values for {n} transposed conv layers")
        targets = [None] * (n - 1) + [sizes[0]]  # only the last layer must land on the image size
        crops = [(0, 0)] * n
    else:
        ks, ss, ps = (list(reversed(geometry[k])) for k in ("kernel", "stride", "padding"))
        outs = list(reversed(chans[:-1]))
        targets = list(reversed(sizes[:-1]))
        crops = list(reversed(geometry["pad_end"]))  # what the encoder padded, the decoder crops
        n = len(ks)
    cur, in_c = (lh, lw), last_c
    for i in range(n):
        k, s, p, crop = ks[i], ss[i], ps[i], crops[i]
        natural = (_transposed_size(cur[0], k, s, p) - crop[0], _transposed_size(cur[1], k, s, p) - crop[1])
        target = targets[i] or natural
        op = (target[0] - natural[0], target[1] - natural[1])
        _check_transposed(i, k, s, p, cur, natural, target, op, hint)
        layers.append(ConvTranspose2d(in_c, outs[i], k, stride=s, padding=p, output_padding=op, crop_end=crop))
        if i < n - 1:
            if cfg.batch_norm:
                layers.append(nn.BatchNorm2d(outs[i]))
            layers.append(activation(cfg))
        cur, in_c = target, outs[i]
    decoder = nn.Sequential(*layers)
    init_weights(decoder, cfg)
    return decoder


def _check_transposed(i: int, k: int, s: int, p: int, cur, natural, target, op, hint: str) -> None:
    """A transposed layer must land on its target, and its output padding may only take back rows its
    padding cropped: rows past those no kernel reaches, so they would hold the bias, the same for every code
    (a kernel smaller than its stride leaves such gaps anyway)."""
    where = (f"decoder layer {i + 1} (kernel {k}, stride {s}, padding {p}) turns {cur[0]}×{cur[1]} into "
             f"{natural[0]}×{natural[1]}")
    if min(op) < 0 or max(op) >= max(s, 1) or min(natural) < 1:
        raise ConfigError(f"{where}, and cannot reach {target[0]}×{target[1]}", hint)
    if k >= s and max(op) > p:
        raise ConfigError(f"{where}; growing that to {target[0]}×{target[1]} would leave its last {max(op) - p} "
                          "rows or columns to the bias alone, the same for every code", hint)
