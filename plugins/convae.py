"""ConvAE: a convolutional autoencoder, the zoo's reference plugin."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from zoo import ZooModel, hookimpl, param
from zoo.errors import ConfigError
from zoo.plugins.conv import ConvNetConfig, build_decoder, build_encoder


@dataclass
class ConvAEConfig(ConvNetConfig):
    sigmoid_output: bool = param(True, "squash the output to [0, 1] with a sigmoid")
    loss: str = param("mse", "reconstruction loss", choices=("mse", "bce"))


class ConvAE(ZooModel):
    name = "convae"
    description = "Convolutional autoencoder: conv encoder -> latent code -> transposed-conv decoder"
    Config = ConvAEConfig

    def __init__(self, config: ConvAEConfig, shape, num_classes: int = 0):
        super().__init__(config, shape, num_classes)
        if config.loss == "bce" and not config.sigmoid_output:
            raise ConfigError("loss 'bce' needs sigmoid_output = true")
        self.encoder, geometry = build_encoder(config, self.shape, config.latent_dim)
        self.decoder = build_decoder(config, geometry, config.latent_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decoder(z)
        return torch.sigmoid(out) if self.config.sigmoid_output else out

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def reconstruction_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "bce":
            return F.binary_cross_entropy_with_logits(logits.float(), target)
        out = torch.sigmoid(logits) if self.config.sigmoid_output else logits
        return F.mse_loss(out.float(), target)

    def reconstruction_error(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The training loss's pixel error, on reconstructions in [0, 1] (for zoo's callbacks)."""
        if self.config.loss == "bce":
            return F.binary_cross_entropy(recon.float().clamp(1e-6, 1 - 1e-6), x)
        return F.mse_loss(recon.float(), x)

    def loss(self, batch):
        return {"loss": self.reconstruction_loss(self.decode_logits(self.encode(batch.x)), batch.x)}

    def validation_step(self, batch):
        logits = self.decode_logits(self.encode(batch.x))
        out = torch.sigmoid(logits) if self.config.sigmoid_output else logits
        return {"loss": self.reconstruction_loss(logits, batch.x), "mse": F.mse_loss(out.float(), batch.x)}


@hookimpl
def zoo_models():
    return [ConvAE]
