"""GAN: a DCGAN-style generator and discriminator with batch norm, sized for the data set's images.

The generator maps z ~ N(0, I) through a linear layer to a small feature map (H/2^k × W/2^k, the
largest k that leaves an integer side of at least 4: 7×7 for 28×28, 4×4 for 32×32), then k stride-2
transposed convolutions (kernel 4, padding 1) with batch norm and ReLU, and a tanh. The discriminator
mirrors it: k stride-2 convolutions with LeakyReLU(0.2) and batch norm (not after the first), and a
linear layer to one logit (with `spectral_norm`: spectral normalisation of every discriminator layer
instead of its batch norm, as in SNGAN). Images are scaled from [0, 1] to [-1, 1] for both networks.

The loss: `ns`, the DCGAN's non-saturating loss; `hinge`, SNGAN's (Miyato et al. 2018; with
`spectral_norm`, the `sngan` preset); `wgan-gp`, the Wasserstein loss with a gradient penalty on points
between real and fake images (Gulrajani et al. 2017; its critic has no batch norm, which would make
the penalty per batch instead of per image; the `wgan-gp` preset trains it as the paper: 5 critic
steps a generator step, Adam 1e-4, betas 0 / 0.9). `d_steps` is n_critic, `g_lr_scale` and
`d_lr_scale` the two time scales.

With `ema` > 0 the model keeps an exponential moving average of the generator's weights
(`ema_generator`) and samples from it: the raw generator oscillates from step to step with the
adversarial game, and its average makes much cleaner digits (lower FID). The average keeps its own
batch-norm statistics, refreshed by running it (without gradients) on each training step's codes,
because the live generator's running statistics do not match the averaged weights. Old runs, whose
config has no `ema`, load without it (the config default is 0); new trainings get `train_defaults`'s.

With `clusters` = K > 0 the GAN conditions itself without labels (a self-conditioned GAN, Liu et al.
2020, clustering pixels rather than discriminator features): an online k-means (plugins/clusters.py)
finds K clusters of the training images as they come, both networks take an image's cluster as the
class-conditional GAN takes its class (one-hot beside z; the projection discriminator), and sampling
draws clusters by their size. Each sample then commits to one kind of image, instead of drifting between
digits, which is what the unconditional generator gets wrong most. New trainings default to 50 clusters
(`train_defaults`; MNIST after 6 epochs: FID 75 against 437 without after 10); `--set clusters=0` is the
plain DCGAN, and runs saved before the option load without it.

Training alternates `d_steps` discriminator steps (optimizer "d") and one generator step (optimizer
"g"). NaN/inf is the engine's business; a collapse (the discriminator's loss pinned near zero, so the
generator has stopped learning) is detected here, with a counter kept on the device and read only
every few steps, and ends training with `TrainingDiverged`.

A GAN has no validation loss that says one epoch is better than another (val_d_loss and val_g_loss are of
the game between the two networks, not of the samples' quality): there is no early stopping (`--patience`
is refused), every epoch trains and the last one is kept; `zoo eval --fid` measures the samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zoo import ZooModel, hookimpl, param, step_state_buffer
from zoo.console import to_stderr
from zoo.errors import ConfigError, TrainingDiverged
from zoo.plugins.clusters import OnlineKMeans
from zoo.plugins.conditional import one_hot

MIN_BASE = 4      # smallest side of the generator's first feature map
MAX_UPSAMPLE = 6  # at most 6 doublings (a 256×256 image starts at 4×4)
CHECK_EVERY = 50  # read the collapse flag from the device every this many steps


@dataclass
class GANConfig:
    latent_dim: int = param(100, "size of the latent code z the generator maps to an image", low=1, high=4096)
    g_channels: int = param(64, "generator width: channels of its last hidden layer, doubled toward the "
                                "base feature map", low=1, high=1024)
    d_channels: int = param(64, "discriminator width: channels of its first conv layer, doubled at each "
                                "further layer", low=1, high=1024)
    loss: str = param("ns", "adversarial loss: ns (non-saturating, the DCGAN loss), hinge (SNGAN), or wgan-gp "
                            "(Wasserstein with a gradient penalty; its critic has no batch norm)",
                      choices=("ns", "hinge", "wgan-gp"))
    gp_weight: float = param(10.0, "wgan-gp: weight λ of the gradient penalty (Gulrajani et al.: 10)",
                             low=0.0, high=1e6)
    beta1: float = param(0.5, "Adam beta1 for both networks (DCGAN: 0.5)", low=0.0, high=0.9999)
    beta2: float = param(0.999, "Adam beta2 for both networks", low=0.0, high=0.99999)
    d_steps: int = param(1, "discriminator steps per generator step (each on the same real batch, fresh codes z)",
                         low=1, high=100)
    g_lr_scale: float = param(1.0, "generator learning rate = lr × this", low=0.0, high=1000.0)
    d_lr_scale: float = param(1.0, "discriminator learning rate = lr × this", low=0.0, high=1000.0)
    collapse_steps: int = param(500, "stop with an error after this many consecutive steps with the "
                                     "discriminator loss below collapse_threshold (0: never; not checked with "
                                     "loss=wgan-gp, whose critic loss has no floor)",
                                low=0, high=1_000_000_000)
    collapse_threshold: float = param(0.01, "discriminator loss below which a step counts toward collapse",
                                      low=0.0, high=10.0)
    ema: float = param(0.0, "decay of the exponential moving average of the generator's weights that sampling "
                            "uses (0: off, sample the raw generator); new trainings default to 0.999",
                       low=0.0, high=0.99999)
    upsample: str = param("transposed", "generator upsampling: transposed (kernel-4 stride-2 transposed convs, "
                                        "DCGAN) or nearest (nearest-neighbour ×2, then a 3×3 conv: no "
                                        "checkerboard traces, Odena et al. 2016)", choices=("transposed", "nearest"))
    spectral_norm: bool = param(False, "spectral normalisation on the discriminator's layers instead of its batch "
                                       "norm (SNGAN; pair it with loss=hinge)")
    clusters: int = param(0, "self-conditioning: condition both networks on the k-means cluster of each real "
                             "image, found online from the training batches without labels, and sample clusters "
                             "by their size (0: off)", low=0, high=1024)


def upsamplings(height: int, width: int) -> int:
    """The number k of stride-2 layers: the largest k with H/2^k and W/2^k integers >= MIN_BASE."""
    k = 0
    while (k < MAX_UPSAMPLE and height % 2 ** (k + 1) == 0 and width % 2 ** (k + 1) == 0
           and height // 2 ** (k + 1) >= MIN_BASE and width // 2 ** (k + 1) >= MIN_BASE):
        k += 1
    return k


def _init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) weights, batch-norm scales N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    def __init__(self, latent_dim: int, width: int, shape: tuple[int, int, int], upsample: str = "transposed"):
        super().__init__()
        c, h, w = shape
        k = upsamplings(h, w)
        self.base = (h // 2 ** k, w // 2 ** k)
        self.base_channels = width * 2 ** max(k - 1, 0)
        self.project = nn.Sequential(
            nn.Linear(latent_dim, self.base_channels * self.base[0] * self.base[1], bias=False),
        )
        self.project_norm = nn.Sequential(nn.BatchNorm2d(self.base_channels), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        ch = self.base_channels
        for i in range(k):
            last = i == k - 1
            out = c if last else ch // 2
            if upsample == "nearest":
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, out, 3, padding=1, bias=last)]
            else:
                layers.append(nn.ConvTranspose2d(ch, out, 4, stride=2, padding=1, bias=last))
            if not last:
                layers += [nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            ch = out
        if k == 0:  # an image too small (or odd) to halve: one 3×3 conv to the image's channels
            layers.append(nn.Conv2d(ch, c, 3, padding=1))
        layers.append(nn.Tanh())
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(z.shape[0], self.base_channels, *self.base)
        return self.body(self.project_norm(h))


class Discriminator(nn.Module):
    def __init__(self, width: int, shape: tuple[int, int, int], spectral: bool = False, batch_norm: bool = True):
        super().__init__()
        c, h, w = shape
        k = upsamplings(h, w)
        sn = nn.utils.spectral_norm if spectral else (lambda m: m)
        layers: list[nn.Module] = []
        ch = c
        for i in range(k):
            out = width * 2 ** i
            layers.append(sn(nn.Conv2d(ch, out, 4, stride=2, padding=1, bias=i == 0 or spectral)))
            if i > 0 and batch_norm and not spectral:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            ch = out
        if k == 0:
            layers += [sn(nn.Conv2d(ch, width, 3, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
            ch = width
        self.body = nn.Sequential(*layers)
        self.head = sn(nn.Linear(ch * (h // 2 ** k) * (w // 2 ** k), 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.body(x).flatten(1)).squeeze(1)


class ProjectionDiscriminator(Discriminator):
    """D(x, y) = ψ(φ(x)) + ⟨embed(y), φ(x)⟩ over the flattened features φ(x) of the conv body (Miyato &
    Koyama 2018): the unconditional logit plus the projection of the features on the condition's embedding."""

    def __init__(self, width: int, shape: tuple[int, int, int], spectral: bool, conditions: int,
                 batch_norm: bool = True):
        super().__init__(width, shape, spectral, batch_norm)
        features = self.head.in_features
        self.embed = nn.Embedding(conditions, features)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)  # small, like the other layers: the sum starts near ψ
        if spectral:
            self.embed = nn.utils.spectral_norm(self.embed)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.body(x).flatten(1)
        return self.head(h).squeeze(1) + (self.embed(labels) * h).sum(1)


class GAN(ZooModel):
    name = "gan"
    description = ("DCGAN: transposed-conv generator against a conv discriminator, both with batch norm, "
                   "self-conditioned on 50 clusters it finds (clusters=0: plain); no early stopping (no "
                   "validation loss says which epoch is better: the last is kept)")
    Config = GANConfig
    # `ema` and `clusters` here, not in GANConfig: runs saved before they existed must still load as saved.
    train_defaults = {"lr": 2e-4, "batch_size": 128, "epochs": 30, "plot_every": 5, "ema": 0.999, "clusters": 50}
    monitor = None  # no validation loss means "better" for a GAN: keep the last epoch
    # `loss` switches the formula of every metric (the non-saturating BCE, the hinge, a Wasserstein critic's value;
    # d_real/d_fake are sigmoids of logits that only `ns` trains as probabilities): none compares two of them.
    loss_keys = {"loss": ()}

    def __init__(self, config: GANConfig, shape, num_classes: int = 0):
        super().__init__(config, shape, num_classes)
        c, h, w = self.shape
        if h < 1 or w < 1 or c < 1:
            raise ConfigError(f"gan: cannot build for images of shape {self.shape}")
        # With `clusters`, the clusters of the real images that both networks are conditioned on.
        self.kmeans = OnlineKMeans(config.clusters, c * h * w) if config.clusters else None
        inputs = config.latent_dim + self.condition_size()
        self.generator = Generator(inputs, config.g_channels, self.shape, config.upsample)
        self.discriminator = self.build_discriminator()
        self.apply(_init_weights)
        # The averaged generator that sampling uses (no optimizer: `_update_ema` moves it).
        self.ema_generator = None
        if config.ema > 0:
            self.ema_generator = Generator(inputs, config.g_channels, self.shape, config.upsample)
            self.ema_generator.load_state_dict(self.generator.state_dict())
            self.ema_generator.requires_grad_(False)
            # Steps averaged so far (saved, so a resumed run continues the same average).
            self.ema_generator.register_buffer("steps", torch.zeros((), dtype=torch.long))
        # Collapse bookkeeping stays on the device (no sync per step) and out of the weights file. The streak
        # of low-loss steps runs across epochs, so it is step state that a checkpoint carries to a resumed run;
        # int64, not step_state_buffer's float, so that it counts every step exactly.
        step_state_buffer(self, "_low_streak", ())
        self._low_streak = torch.zeros((), dtype=torch.long)
        # Latched when the streak reaches collapse_steps, read at the checks (never past an epoch's end).
        self.register_buffer("_collapsed", torch.zeros((), dtype=torch.bool), persistent=False)

    def check_training(self, train, data) -> None:
        """Refuse what a GAN cannot train with (a batch of one image through the generator's first batch norm),
        and say what it ignores: early stopping, and the loss's and optimizer's settings this configuration does
        not use. Said, not refused: a run trained with them before must still resume, where they cannot change."""
        if train.patience:
            to_stderr(f"note: {self.name} has no validation loss that says one epoch is better than another "
                      "(val_d_loss and val_g_loss are of the game between its networks, not of its samples): "
                      f"--patience {train.patience} never stops it; every epoch trains and the last is kept "
                      "(zoo eval --fid measures the samples)")
        self._check_batch_norm(train, data)
        self._check_unused()

    def _check_batch_norm(self, train, data) -> None:
        """Images of 1×1 give the generator a 1×1 first feature map, and batch norm cannot normalise one value
        per channel: a batch (the last of an epoch included) must hold two images or more."""
        if self.generator.base != (1, 1):
            return
        n, size = int(data.train_x.shape[0]), int(train.batch_size)
        sizes = {min(size, n), n % size if size < n else 0}
        if 1 in sizes:
            raise ConfigError(f"{self.name} on {self.shape[1]}×{self.shape[2]} images normalises its generator's "
                              "first feature map (1×1) over the batch, and a batch of one image gives batch norm "
                              f"one value per channel ({n} training images in batches of {size} leave a batch of "
                              "one)",
                              "Use a batch size of 2 or more that leaves no last batch of one image (--batch-size), "
                              "or larger images (--set image_size=N).")

    def _check_unused(self) -> None:
        """Settings the configuration takes but never reads are said, not trained on silently as if they had done
        something. (The collapse settings with loss=wgan-gp are taken, and said in their help to be unchecked: a
        preset's run may switch the check off by its loss.)"""
        c, default = self.config, GANConfig()
        if c.loss != "wgan-gp" and c.gp_weight != default.gp_weight:
            to_stderr(f"note: gp_weight {c.gp_weight:g} weighs the gradient penalty of loss=wgan-gp, and this run's "
                      f"loss is {c.loss}: it changes nothing")

    # ------------------------------------------------------------------ what a conditional GAN changes
    def condition_size(self) -> int:
        """How many values the condition of both networks takes: the clusters with `clusters`, else none
        (plugins/cgan.py: the classes)."""
        return self.config.clusters

    def real_condition(self, batch, learn: bool = False) -> torch.Tensor | None:
        """The condition of the real images, which the fakes of a step are drawn for too, so their mix is
        the data's: none, or with `clusters` their clusters (`learn`: moving the centres toward them)."""
        if self.kmeans is None:
            return None
        return self.kmeans.update(batch.x) if learn else self.kmeans.assign(batch.x)

    def build_discriminator(self) -> nn.Module:
        batch_norm = self.config.loss != "wgan-gp"
        if self.condition_size():
            return ProjectionDiscriminator(self.config.d_channels, self.shape, self.config.spectral_norm,
                                           self.condition_size(), batch_norm=batch_norm)
        return Discriminator(self.config.d_channels, self.shape, self.config.spectral_norm, batch_norm=batch_norm)

    def generate(self, net: nn.Module, codes: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Images in [-1, 1] from `net` (the live or the averaged generator), given the condition as one-hot."""
        if labels is None:
            return net(codes)
        return net(torch.cat([codes, one_hot(labels, self.condition_size(), codes.dtype)], dim=1))

    # ------------------------------------------------------------------ training
    @property
    def sampler(self) -> nn.Module:
        """The generator that makes samples: the weight average when there is one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def configure_optimizers(self, make_optimizer):
        betas = (self.config.beta1, self.config.beta2)
        opts = {"d": self._optimizer(make_optimizer, self.discriminator, betas, self.config.d_lr_scale),
                "g": self._optimizer(make_optimizer, self.generator, betas, self.config.g_lr_scale)}
        return opts

    @staticmethod
    def _optimizer(make_optimizer, net: nn.Module, betas, scale: float):
        try:
            opt = make_optimizer(net.parameters(), betas=betas)
        except TypeError:  # an optimizer without betas (sgd, adagrad): the user's choice of optimizer wins ...
            default = GANConfig()
            if betas != (default.beta1, default.beta2):  # ... but betas set for it are not dropped unsaid
                to_stderr(f"note: beta1 {betas[0]:g} and beta2 {betas[1]:g} are Adam's (and AdamW's) settings, and "
                          "the optimizer chosen takes none: they change nothing")
            opt = make_optimizer(net.parameters())
        for group in opt.param_groups:
            group["lr"] = group["lr"] * scale
        return opt

    def prior_codes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        # drawn in float32 and cast: a half or double generator draws the same codes as the float32 one
        return torch.randn(n, self.config.latent_dim, generator=generator, device=self.device).to(self.dtype)

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        real_logits, fake_logits = real_logits.float(), fake_logits.float()
        if self.config.loss == "wgan-gp":  # the critic's estimate of the Wasserstein distance, negated
            return fake_logits.mean() - real_logits.mean()
        if self.config.loss == "hinge":
            return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        fake_logits = fake_logits.float()
        if self.config.loss in ("hinge", "wgan-gp"):
            return -fake_logits.mean()
        return F.softplus(-fake_logits).mean()

    def training_step(self, batch, step):
        real = batch.x * 2 - 1
        n = real.shape[0]
        labels = self.real_condition(batch, learn=True)
        for _ in range(self.config.d_steps):
            fake = self.generate(self.generator, self.prior_codes(n), labels)
            real_logits = self.discriminator(real, labels)
            fake_logits = self.discriminator(fake.detach(), labels)
            d_loss = self.d_loss(real_logits, fake_logits)
            if self.config.loss == "wgan-gp":
                d_loss = d_loss + self.config.gp_weight * self.gradient_penalty(real, fake.detach(), labels)
            step.optimize(d_loss, "d")
        # The generator step reuses the last fake batch against the updated discriminator.
        self.discriminator.requires_grad_(False)  # no gradients for D's weights in the G step
        try:
            g_loss = self.g_loss(self.discriminator(fake, labels))
            step.optimize(g_loss, "g")
        finally:
            self.discriminator.requires_grad_(True)
        self._update_ema(fake.shape[0], labels)
        d_loss = d_loss.detach()
        self._watch_collapse(d_loss, step)
        return {"loss": g_loss.detach(), "d_loss": d_loss, "g_loss": g_loss.detach(),
                "d_real": torch.sigmoid(real_logits.detach().float()).mean(),
                "d_fake": torch.sigmoid(fake_logits.detach().float()).mean()}

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor, labels) -> torch.Tensor:
        """(‖∇D(x̂)‖₂ − 1)² at random points x̂ between real and fake images (Gulrajani et al. 2017), which
        keeps the critic near 1-Lipschitz. A conditional critic is asked about the pair's condition."""
        mix = torch.rand((real.shape[0], 1, 1, 1), device=real.device, dtype=real.dtype)
        points = (mix * real + (1 - mix) * fake).requires_grad_(True)
        scores = self.discriminator(points, labels)
        grads, = torch.autograd.grad(scores.float().sum(), points, create_graph=True)
        return (grads.flatten(1).norm(2, dim=1) - 1).pow(2).mean()

    @torch.no_grad()
    def _update_ema(self, n: int, labels: torch.Tensor | None = None) -> None:
        """Move the averaged weights toward the generator's, then run the average once in train mode on
        fresh codes so that its batch-norm running statistics are those of the averaged weights. The
        decay warms up as min(ema, (1 + t) / (10 + t)) over the steps t, so that the early average is not
        dominated by the random initial weights (with 0.999 they would still weigh 66 % after an epoch)."""
        if self.ema_generator is None:
            return
        t = self.ema_generator.steps
        decay = torch.clamp((1.0 + t) / (10.0 + t), max=self.config.ema)
        for avg, live in zip(self.ema_generator.parameters(), self.generator.parameters()):
            avg.lerp_(live.detach(), (1.0 - decay).to(avg.dtype))
        t.add_(1)
        self.ema_generator.train()
        self.generate(self.ema_generator, self.prior_codes(n), labels)

    def _watch_collapse(self, d_loss: torch.Tensor, step) -> None:
        limit = self.config.collapse_steps
        if not limit or self.config.loss == "wgan-gp":  # a critic's loss is negative by design: no floor
            return
        low = d_loss < self.config.collapse_threshold
        self._low_streak.copy_(torch.where(low, self._low_streak + 1, torch.zeros_like(self._low_streak)))
        self._collapsed.logical_or_(self._low_streak >= limit)  # latched: a check between streaks sees it
        # Read at places fixed by the step's position in the whole training, not by a count of this process's
        # steps, so that a resumed run checks where the uninterrupted one did; and at each epoch's last step, so
        # that no collapse crosses the epoch's checkpoint unread.
        done = (step.epoch - 1) * step.steps_per_epoch + step.step + 1
        last = step.step + 1 >= step.steps_per_epoch
        if (done % min(CHECK_EVERY, limit) == 0 or last) and bool(self._collapsed):
            self._low_streak.zero_()
            self._collapsed.zero_()
            raise TrainingDiverged(
                f"GAN collapse: the discriminator loss stayed below {self.config.collapse_threshold:g} for "
                f"{limit} consecutive steps (epoch {step.epoch}, step {step.step + 1} of the epoch), so the "
                "generator is no longer learning. The run's model.safetensors keeps the weights of the last "
                "finished epoch.",
                "Train a new run (another --out) with a lower discriminator learning rate (--set d_lr_scale=0.5), "
                "fewer d_steps, loss=hinge, or another --seed; --set collapse_steps=0 turns this check off. "
                "--resume keeps the run's settings, so none of these can be applied to this run.")

    @torch.no_grad()
    def validation_step(self, batch):
        real = batch.x * 2 - 1
        labels = self.real_condition(batch)
        fake = self.generate(self.generator, self.prior_codes(real.shape[0]), labels)
        real_logits, fake_logits = self.discriminator(real, labels), self.discriminator(fake, labels)
        return {"d_loss": self.d_loss(real_logits, fake_logits), "g_loss": self.g_loss(fake_logits),
                "d_real": torch.sigmoid(real_logits.float()).mean(),
                "d_fake": torch.sigmoid(fake_logits.float()).mean()}

    # ------------------------------------------------------------------ what it can do
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` images in [0, 1]; `generator` (on the model's device) makes them reproducible. With `clusters`,
        each from a cluster drawn by its size."""
        labels = self.kmeans.draw(n, generator) if self.kmeans is not None else None
        return (self.generate(self.sampler, self.prior_codes(n, generator), labels).float() + 1) / 2

    def preview(self, x: torch.Tensor):
        n = x.shape[0] or 16
        gen = torch.Generator(device=self.device).manual_seed(0)
        return [("samples (fixed codes z)", self.sample(n, generator=gen))]


@hookimpl
def zoo_models():
    return [GAN]
