"""zoo's encoder and decoder nets wrapped in pythae's classes, so that a benchmark times pythae's models on
the very same layers as zoo's (the benchmarks run as scripts, so `import pythae_nets` finds this file)."""

from __future__ import annotations

import torch
from torch import nn


def wrap(encoder: nn.Module, decoder: nn.Module, variational: bool):
    """pythae (BaseEncoder, BaseDecoder) instances around zoo's nets: the encoder gives an embedding, or a
    variational one's (μ, log σ²) halves; the decoder gives sigmoid pixels."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = encoder

        def forward(self, x):
            if not variational:
                return ModelOutput(embedding=self.net(x))
            mu, logvar = self.net(x).chunk(2, dim=1)
            return ModelOutput(embedding=mu, log_covariance=logvar)

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = decoder

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    return Encoder(), Decoder()
