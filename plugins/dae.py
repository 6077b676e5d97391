"""DAE: a denoising convolutional autoencoder, trained to map noisy images to clean ones.

The corruption is a noise model (`gaussian:0.3`, `salt-pepper:0.1`, `occlusion:8:1`, or a plugin's),
drawn afresh for every training batch on the training device; validation draws the same noise every epoch on
the CPU and CUDA (zoo.training.epochs.fixed_draws), so that its figure moves with the weights alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from zoo.plugins.convae import ConvAE, ConvAEConfig

from zoo import hookimpl, hyper_buffer, param
from zoo.analysis.metrics import reconstruction_metrics
from zoo.data.noise import noised, parse_noise


@dataclass
class DAEConfig(ConvAEConfig):
    noise: str = param("gaussian:0.3", "training corruption: gaussian:SIGMA, salt-pepper:FRACTION, "
                                       "occlusion:SIZE:COUNT, or one a plugin adds (zoo list)")

    def __post_init__(self):
        # Kept as zoo writes it: GAUSSIAN:0.3, "gaussian:" (its default level) and gaussian:0.3 are one noise,
        # and config.json, zoo compare and a resume see them so.
        if isinstance(self.noise, str):
            noise = parse_noise(self.noise)
            self.noise = noise.spec if noise is not None else "none"


class DAE(ConvAE):
    name = "dae"
    description = "Denoising convolutional autoencoder: noisy image in, clean image out"
    Config = DAEConfig
    # Its loss and test mse/bce/psnr are the error of undoing its own noise: two noises, two measures (the
    # lighter noise would always win a search). The clean images' reconstruction error is measured alike.
    loss_keys = {"noise": ("clean_mse",)}
    test_keys = {"noise": ("clean_mse",)}

    def __init__(self, config: DAEConfig, shape, num_classes: int = 0):
        super().__init__(config, shape, num_classes)
        self.noise = parse_noise(config.noise)
        if self.noise is not None:
            self.metrics_note = (f"mse, bce and psnr are of denoising the images corrupted with {self.noise.spec} "
                                 "(its training noise, drawn with a fixed seed); clean_mse of reconstructing the "
                                 "clean images")
        if self.noise is not None and self.noise.vectorized:
            # The first value (the level) in a tensor, named after the noise and its other values: denoisers
            # train together in a vectorised search when only the level differs.
            level, *rest = self.noise.values.items()
            self.level_name = "_".join([self.noise.name, *(f"{k}{v:g}" for k, v in rest), level[0]])
            self.level_name = re.sub(r"\W", "_", self.level_name)
            hyper_buffer(self, self.level_name, level[1], key="noise")

    def training_corruption(self):
        return self.noise

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None, *,
                values: bool = True) -> torch.Tensor:
        """`x` under the training noise, checked (zoo.data.noise.noised); `values=False` in the training steps
        (which may run vmapped or in a CUDA graph), whose noise check_training has checked before the first."""
        if self.noise is None:
            return x
        strength = getattr(self, self.level_name) if self.noise.vectorized else None
        return noised(self.noise, x, generator, strength=strength, values=values)

    def check_training(self, train, data) -> None:
        """The noise's output checked in full on a few training images before anything is written: a plugin's
        noise giving images outside [0, 1], NaN or another shape would train (and be evaluated) on garbage."""
        super().check_training(train, data)
        x = data.train_x[:8].float() / 255
        if self.noise is not None and x.numel():
            self.corrupt(x, torch.Generator(device=x.device).manual_seed(0))

    def loss(self, batch):
        logits = self.decode_logits(self.encode(self.corrupt(batch.x, values=False)))
        return {"loss": self.reconstruction_loss(logits, batch.x)}

    def validation_step(self, batch):
        logits = self.decode_logits(self.encode(self.corrupt(batch.x, values=False)))
        out = torch.sigmoid(logits) if self.config.sigmoid_output else logits
        clean = self.reconstruct(batch.x)  # measured alike whatever the noise (loss_keys)
        return {"loss": self.reconstruction_loss(logits, batch.x), "mse": F.mse_loss(out.float(), batch.x),
                "clean_mse": F.mse_loss(clean.float(), batch.x)}

    def metrics(self, batch, **options) -> dict[str, torch.Tensor]:
        """Denoising metrics at the training noise (mse, bce, psnr), and the clean reconstruction MSE."""
        x = batch.x
        denoised = reconstruction_metrics(x, self.reconstruct(self.corrupt(x)))
        clean = reconstruction_metrics(x, self.reconstruct(x))
        return {**denoised, "clean_mse": clean["mse"]}

    def preview(self, x: torch.Tensor):
        if self.noise is None:  # noise "none": a plain autoencoder's rows, not a "noisy (None)" one
            return super().preview(x)
        noisy = self.corrupt(x, torch.Generator(device=x.device).manual_seed(0))
        return [("clean", x), (f"noisy ({self.noise})", noisy), ("denoised", self.reconstruct(noisy))]


@hookimpl
def zoo_models():
    return [DAE]
