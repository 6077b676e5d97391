"""The GAN plugin: network shapes, a real (tiny) training run, sampling through the API and the CLI,
no reconstruction, and collapse detection."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import assert_clean_error, assert_ok, invoke, is_png, quiet, read_config, read_metrics, run_zoo, weights

import zoo
from zoo.api import generate
from zoo.data.datasets import load_dataset
from zoo.errors import TrainingDiverged

# Narrow networks: an epoch of digits (~1300 images) takes well under a second on one thread.
SMALL = {"g_channels": 8, "d_channels": 8, "latent_dim": 16, "device": "cpu"}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    """A finished 2-epoch tiny GAN run on digits with a progress grid every epoch. Read-only."""
    out = tmp_path_factory.mktemp("gan") / "run"
    zoo.train("gan", dataset="digits", epochs=2, out=out, progress=False, log=quiet, plot_every=1, **SMALL)
    return out


# ------------------------------------------------------------------------------------------ networks

@pytest.mark.parametrize("shape, base", [((1, 28, 28), (7, 7)), ((3, 32, 32), (4, 4))])
def test_generator_shape_and_range(shape, base):
    torch.manual_seed(0)
    model = zoo.create("gan", shape=shape, g_channels=8, d_channels=8, clusters=0)
    assert model.generator.base == base
    model.eval()
    with torch.no_grad():
        x = model.sample(5)
        logits = model.discriminator(x * 2 - 1)
    assert tuple(x.shape) == (5, *shape)
    assert x.min() >= 0 and x.max() <= 1
    assert logits.shape == (5,)


def test_capabilities_and_config():
    info = zoo.model_info("gan")
    assert info["capabilities"] == ["sample"]
    params = {p["name"]: p for p in info["params"]}
    assert params["latent_dim"]["default"] == 100
    assert params["loss"]["default"] == "ns" and "hinge" in params["loss"]["range"]
    assert (params["beta1"]["default"], params["beta2"]["default"]) == (0.5, 0.999)
    assert params["d_steps"]["default"] == 1
    train = {p["name"]: p for p in info["train_params"]}
    assert train["lr"]["default"] == 2e-4 and train["batch_size"]["default"] == 128


def test_optimizers_use_betas_and_lr_scales():
    from zoo.runs.config import TrainConfig
    from zoo.training.optim import make_optimizer

    model = zoo.create("gan", g_channels=8, d_channels=8, beta1=0.3, g_lr_scale=0.5)
    opts = model.configure_optimizers(lambda params, **kw: make_optimizer(params, TrainConfig(lr=1e-3), **kw))
    assert set(opts) == {"d", "g"}
    assert opts["d"].param_groups[0]["betas"] == (0.3, 0.999)
    assert opts["d"].param_groups[0]["lr"] == pytest.approx(1e-3)
    assert opts["g"].param_groups[0]["lr"] == pytest.approx(5e-4)
    g_params = {id(p) for p in model.generator.parameters()}
    assert {id(p) for p in opts["g"].param_groups[0]["params"]} == g_params
    assert not g_params & {id(p) for p in opts["d"].param_groups[0]["params"]}


# ------------------------------------------------------------------------------------------ a real run

def test_training_writes_a_run(gan_run):
    for name in ("model.safetensors", "checkpoint.safetensors", "config.json", "samples.png", "loss.png"):
        assert (gan_run / name).is_file(), name
    assert not (gan_run / "reconstructions.png").exists()
    assert is_png(gan_run / "progress" / "epoch_0001.png") and is_png(gan_run / "progress" / "epoch_0002.png")
    records = read_metrics(gan_run)
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        for key in ("train_d_loss", "train_g_loss", "train_d_real", "train_d_fake", "val_d_loss", "val_g_loss"):
            assert key in r and r[key] == r[key], key
        assert 0 <= r["train_d_real"] <= 1 and 0 <= r["train_d_fake"] <= 1
    assert read_config(gan_run)["config"]["g_channels"] == 8
    # Only network weights and cluster centres (new runs keep the generator's weight average, `ema`, and
    # self-condition on `clusters`, both on by default):
    # the collapse counters are not part of the model file.
    keys = weights(gan_run / "model.safetensors")
    assert read_config(gan_run)["config"]["ema"] == 0.999 and read_config(gan_run)["config"]["clusters"] == 50
    assert all(k.startswith(("generator.", "discriminator.", "ema_generator.", "kmeans.")) for k in keys)
    assert any(k.startswith("ema_generator.") for k in keys)


def test_generate_is_reproducible(gan_run, tmp_path):
    png = generate(gan_run, n=16, seed=0, out=tmp_path / "s.png")
    assert is_png(png)
    a = weights(generate(gan_run, n=16, seed=0, out=tmp_path / "a.safetensors"))["images"]
    b = weights(generate(gan_run, n=16, seed=0, out=tmp_path / "b.safetensors"))["images"]
    c = weights(generate(gan_run, n=16, seed=1, out=tmp_path / "c.safetensors"))["images"]
    assert tuple(a.shape) == (16, 1, 28, 28)
    assert a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)


def test_loaded_model_samples_like_the_trained_one(gan_run):
    model = zoo.load(gan_run)
    assert model.can("sample") and not model.can("reconstruct") and not model.can("encode")
    with torch.no_grad():
        x = model.sample(3, generator=torch.Generator().manual_seed(5))
        y = model.sample(3, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(x, y)


def test_cli_generate_and_reconstruct(gan_run, tmp_path):
    out = tmp_path / "cli.png"
    assert_ok(run_zoo("generate", gan_run, "--n", "8", "--out", out))
    assert is_png(out)
    # In-process (a second subprocess costs seconds): the same click app and error handling.
    assert_clean_error(invoke("reconstruct", str(gan_run)), "cannot reconstruct")


# ------------------------------------------------------------------------------------------ failure

def test_collapse_is_detected(tmp_path):
    # The generator cannot learn (lr × 0) while the discriminator learns fast: its loss goes to ~0.
    with pytest.raises(TrainingDiverged, match="collapse") as e:
        zoo.train("gan", dataset="digits", epochs=20, out=tmp_path / "run", progress=False, log=quiet,
                  lr=0.01, g_lr_scale=0.0, collapse_steps=5, collapse_threshold=0.05, **SMALL)
    assert "discriminator loss" in str(e.value)
    assert "consecutive steps" in str(e.value)


def test_collapse_check_can_be_turned_off(tmp_path):
    result = zoo.train("gan", dataset="digits", epochs=1, out=tmp_path / "run", progress=False, log=quiet,
                       lr=0.01, g_lr_scale=0.0, collapse_steps=0, collapse_threshold=10.0, **SMALL)
    assert result.stopped == "completed"


def test_ema_is_what_samples_and_old_configs_load_without_it():
    torch.manual_seed(0)
    assert zoo.create("gan", g_channels=8, d_channels=8).config.ema == 0.999  # the default for new models
    plain = zoo.create("gan", g_channels=8, d_channels=8, ema=0.0)  # what a run saved without `ema` builds
    assert plain.ema_generator is None and plain.sampler is plain.generator
    model = zoo.create("gan", g_channels=8, d_channels=8, ema=0.9, clusters=0)
    assert model.sampler is model.ema_generator
    with torch.no_grad():
        model.generator.project[0].weight.add_(1.0)
    before = model.ema_generator.project[0].weight.clone()
    model._update_ema(4)  # first step: the warm-up decay min(0.9, 1/10) moves it 90 % of the way
    torch.testing.assert_close(model.ema_generator.project[0].weight, before + 0.9)
    model.ema_generator.steps.fill_(1000)  # warmed up: the configured decay
    before = model.ema_generator.project[0].weight.clone()
    with torch.no_grad():
        model.generator.project[0].weight.add_(1.0)
    model._update_ema(4)
    torch.testing.assert_close(model.ema_generator.project[0].weight,
                               before + 0.1 * (model.generator.project[0].weight - before))


def test_spectral_norm_hinge_trains(tmp_path):
    result = zoo.train("gan", dataset="digits", epochs=1, out=tmp_path / "run", progress=False, log=quiet,
                       loss="hinge", spectral_norm=True, **SMALL)
    assert result.stopped == "completed"
    model = zoo.load(tmp_path / "run").model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.discriminator.modules())


def test_two_d_steps_train_the_discriminator_twice_a_generator_step(tmp_path, monkeypatch):
    from zoo.plugins.gan import GAN

    calls = {"d": 0, "g": 0}
    d_loss, g_loss = GAN.d_loss, GAN.g_loss

    def counting(kind, loss):
        def wrapped(self, *args):
            calls[kind] += self.training  # the training steps only, not validation
            return loss(self, *args)
        return wrapped

    monkeypatch.setattr(GAN, "d_loss", counting("d", d_loss))
    monkeypatch.setattr(GAN, "g_loss", counting("g", g_loss))
    result = zoo.train("gan", dataset="digits", epochs=1, out=tmp_path / "run", progress=False, log=quiet,
                       loss="hinge", d_steps=2, **SMALL)
    assert result.stopped == "completed" and calls["g"] > 0
    assert calls["d"] == 2 * calls["g"]


def test_the_gradient_penalty_is_zero_for_a_unit_gradient_critic_and_grows_away_from_it():
    """WGAN-GP's penalty (‖∇D(x̂)‖ − 1)²: a linear critic D(x) = w·x has gradient w everywhere."""
    model = zoo.create("gan", loss="wgan-gp", g_channels=8, d_channels=8)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.discriminator.modules())

    class LinearCritic(torch.nn.Module):
        def __init__(self, norm: float):
            super().__init__()
            w = torch.randn(28 * 28)
            self.w = w / w.norm() * norm

        def forward(self, x, labels=None):
            return x.flatten(1) @ self.w

    real, fake = torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28)
    model.discriminator = LinearCritic(1.0)
    assert float(model.gradient_penalty(real, fake, None)) == pytest.approx(0.0, abs=1e-10)
    model.discriminator = LinearCritic(3.0)
    assert float(model.gradient_penalty(real, fake, None)) == pytest.approx(4.0, rel=1e-5)


@pytest.mark.parametrize("preset, expected", [
    ("sngan", {"loss": "hinge", "spectral_norm": True, "d_steps": 1}),
    ("wgan-gp", {"loss": "wgan-gp", "gp_weight": 10.0, "d_steps": 5, "beta1": 0.0, "beta2": 0.9}),
])
def test_the_sngan_and_wgan_gp_presets_train(tmp_path, preset, expected):
    """A collapse check that any step trips (threshold 10) is off for WGAN-GP, whose critic loss is
    unbounded below by design; SNGAN keeps it."""
    from dataclasses import asdict

    from zoo.api import resolve_config

    _, model_cfg, train_cfg = resolve_config("gan", preset=preset)
    merged = {**asdict(model_cfg), **asdict(train_cfg)}
    assert {k: merged[k] for k in expected} == expected
    kw = {**SMALL, "collapse_steps": 1, "collapse_threshold": 10.0}

    def train():
        return zoo.train("gan", preset=preset, dataset="digits", epochs=1, out=tmp_path / "run", progress=False,
                         log=quiet, **kw)

    if preset == "sngan":
        with pytest.raises(TrainingDiverged):
            train()
    else:
        assert train().stopped == "completed"


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 27, 27)])
def test_nearest_upsampling_makes_images_of_the_data_size_from_the_codes(shape):
    """upsample=nearest (upsampling then a 3×3 conv): the data's shape, and every pixel moves with z."""
    model = zoo.create("gan", shape=shape, upsample="nearest", g_channels=8, d_channels=8).eval()
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.generator.modules())
    with torch.no_grad():
        images = model.sample(64, generator=torch.Generator().manual_seed(0))
    assert images.shape == (64, *shape)
    assert bool((images.std(0) > 0).all())


# ------------------------------------------------------------------------------------------ self-conditioning

def test_online_kmeans_finds_the_means_of_separated_groups_and_draws_by_size():
    from zoo.plugins.clusters import OnlineKMeans

    gen = torch.Generator().manual_seed(0)
    # Three groups of 4×4 "images" around 0, 0.5 and 1, of 300, 200 and 100 images, fed in shuffled batches.
    centres = torch.tensor([0.0, 0.5, 1.0])
    group = torch.cat([torch.full((n,), g) for g, n in enumerate((300, 200, 100))])
    images = centres[group][:, None, None, None] + 0.02 * torch.randn(600, 1, 4, 4, generator=gen)
    order = torch.randperm(600, generator=gen)
    images, group = images[order], group[order]
    kmeans = OnlineKMeans(3, 16)
    # The first batch holds all three groups, so each centre starts in its own group.
    first = torch.cat([torch.nonzero(group == g)[0] for g in range(3)])
    rest = torch.tensor([i for i in range(600) if i not in set(first.tolist())])
    order = torch.cat([first, rest])
    for batch in order.split(50):
        kmeans.update(images[batch])
    assert kmeans.counts.sum() == 600
    found = kmeans.assign(images)
    for g in range(3):  # every group is one cluster, whose centre is the group's mean
        members = found[group == g]
        assert (members == members[0]).all()
        torch.testing.assert_close(kmeans.centres[members[0]], images[group == g].flatten(1).mean(0))
    assert sorted(kmeans.counts.tolist()) == [100.0, 200.0, 300.0]
    draws = kmeans.draw(6000, generator=torch.Generator().manual_seed(1))
    share = torch.bincount(draws, minlength=3).float() / 6000
    torch.testing.assert_close(share, kmeans.counts / 600, atol=0.03, rtol=0)


def test_a_kmeans_centre_with_no_image_takes_one_from_the_next_batch():
    from zoo.plugins.clusters import OnlineKMeans

    kmeans = OnlineKMeans(4, 1)
    kmeans.update(torch.tensor([[0.0], [0.0]]).view(2, 1, 1, 1))  # a batch of 2 for 4 centres, all alike
    assert (kmeans.counts > 0).sum() == 1  # one centre holds both, three are still empty
    kmeans.update(torch.tensor([[5.0], [9.0], [0.0]]).view(3, 1, 1, 1))
    assert (kmeans.counts > 0).sum() == 3 and sorted(kmeans.centres.flatten().tolist())[-2:] == [5.0, 9.0]


def test_a_self_conditioned_gan_saves_its_clusters_and_samples_them_reproducibly(tmp_path):
    out = tmp_path / "run"
    zoo.train("gan", dataset="digits", epochs=2, out=out, progress=False, log=quiet, clusters=6, **SMALL)
    saved = weights(out / "model.safetensors")
    train_images = load_dataset("digits").train_x.shape[0]
    assert saved["kmeans.counts"].sum() == 2 * train_images  # every training image, once an epoch
    model = zoo.load(out).model
    torch.testing.assert_close(model.kmeans.centres, saved["kmeans.centres"])
    assert model.discriminator.embed.num_embeddings == 6 and not model.can("sample_class")
    a = weights(generate(out, n=8, seed=4, out=tmp_path / "a.safetensors"))["images"]
    b = weights(generate(out, n=8, seed=4, out=tmp_path / "b.safetensors"))["images"]
    torch.testing.assert_close(a, b)
    assert_clean_error(invoke("generate", str(out), "--class", "1", "--out", str(tmp_path / "c.png")),
                       "not conditional")


def test_cgan_refuses_clusters(tmp_path):
    result = invoke("train", "cgan", "--dataset", "digits", "--epochs", "1", "--set", "clusters=3",
                    "--out", str(tmp_path / "run"))
    assert_clean_error(result, "conditioned on the class labels", "gan --set clusters")
    assert not (tmp_path / "run").exists()


def test_a_gan_runs_model_card_shows_only_the_commands_a_gan_can_run(gan_run):
    card = (gan_run / "README.md").read_text()
    usage = card[card.index("## Use it"):card.index("## Training configuration")]
    assert f"zoo generate {gan_run} --n 64" in usage
    assert f"zoo eval {gan_run} --fid" not in usage  # no feature network is catalogued for digits: it would fail
    assert "run.sample(n)" in usage
    assert "reconstruct" not in usage and "run.encode" not in usage


def test_info_of_a_gan_saved_before_ema_and_clusters_existed_shows_it_has_neither(tmp_path):
    """An older GAN (no ema, no clusters in its config.json) loads as saved, without them; zoo info said only
    `epochs` differed from the defaults, hiding the two settings that most change what it is."""
    import json

    old = tmp_path / "old"  # as an older zoo trained it: no EMA generator, no clusters, neither key written
    zoo.train("gan", dataset="digits", epochs=1, out=old, progress=False, log=quiet, ema=0.0, clusters=0, **SMALL)
    record = read_config(old)
    for key in ("ema", "clusters"):
        record["config"].pop(key)
    (old / "config.json").write_text(json.dumps(record))
    changed = json.loads(assert_ok(invoke("info", old, "--json")))["changed"]
    assert changed["ema"] == 0.0 and changed["clusters"] == 0
    loaded = zoo.load(old).model.config
    assert (loaded.ema, loaded.clusters) == (0.0, 0)


def test_a_pushed_gans_card_lists_no_learning_rate_among_its_training_metrics(gan_run, tmp_path):
    """lr_d and lr_g, the two optimizers' learning rates, were listed on the card as training metrics."""
    assert_ok(invoke("push", gan_run, f"file://{tmp_path / 'hub'}"))
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "lr_d" not in card and "lr_g" not in card and "d_fake" in card
