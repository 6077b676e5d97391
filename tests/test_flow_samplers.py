"""The learned-density latent samplers (plugins/flow_samplers.py): a masked autoregressive flow (`maf`)
and the two-stage VAE (`two-stage`): what they learn, that they save, load and refit exactly, that
damaged state is refused; and the refusals of a run with too few codes and of a sampler file fitted
on another run's codes (the file left untouched)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import TINY, assert_clean_error, assert_ok, invoke, quiet, weights
from torch.distributions import MultivariateNormal

import zoo
from zoo.analysis.latent_samplers import get_sampler, sampler_path, samplers
from zoo.errors import RunError
from zoo.plugins.flow_samplers import MaskedAutoregressiveFlow, TwoStageVae, min_codes

F64 = torch.float64


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def two_modes(n: int, gen: torch.Generator) -> torch.Tensor:
    """Two well-separated round Gaussians (std 0.5) at (-3, -3) and (3, 3), weighted 0.3 and 0.7."""
    upper = (torch.rand(n, generator=gen) < 0.7).to(F64)
    centre = (6 * upper - 3)[:, None].expand(n, 2)
    return centre + 0.5 * torch.randn(n, 2, generator=gen, dtype=F64)


def two_modes_log_density(x: torch.Tensor) -> torch.Tensor:
    parts = [MultivariateNormal(torch.full((2,), m, dtype=F64), 0.25 * torch.eye(2, dtype=F64)).log_prob(x) + w.log()
             for m, w in ((-3.0, torch.tensor(0.3, dtype=F64)), (3.0, torch.tensor(0.7, dtype=F64)))]
    return torch.logsumexp(torch.stack(parts), 0)


def quick(name: str, **settings):
    """A sampler with a shorter fit (fewer steps, narrower layers, a faster rate) than its defaults, for
    test time."""
    sampler = get_sampler(name)()
    for key, value in settings.items():
        setattr(sampler, key, value)
    return sampler


@pytest.fixture(scope="module")
def maf() -> MaskedAutoregressiveFlow:
    return quick("maf", steps=300, width=32).fit(two_modes(3000, seeded(0)))


# ------------------------------------------------------------------------------------------ the MAF

def test_both_are_registered_through_the_hook():
    from zoo.registry import load_registry

    found = samplers()
    assert found["maf"] is MaskedAutoregressiveFlow and found["two-stage"] is TwoStageVae
    assert all(found[n].__module__ == "zoo.plugins.flow_samplers" for n in ("maf", "two-stage"))
    assert not [f for f in load_registry().failures if f.entry_point == "flow-samplers"]


def test_maf_learns_two_separated_modes_far_better_than_a_gaussian(maf):
    train, test = two_modes(3000, seeded(0)), two_modes(2000, seeded(9))
    gaussian = get_sampler("gaussian")().fit(train)
    ll_gaussian = float(MultivariateNormal(gaussian.mean, scale_tril=gaussian.chol).log_prob(test).mean())
    ll_maf, ll_true = float(maf.log_prob(test).mean()), float(two_modes_log_density(test).mean())
    # Held out: the Gaussian is ~1.4 nats a point below the truth, the flow within 0.25 of it.
    assert ll_maf > ll_gaussian + 1.0 and ll_maf > ll_true - 0.25, (ll_maf, ll_gaussian, ll_true)
    z = maf.sample(20000, generator=seeded(1))
    assert z.dtype == torch.float32 and z.shape == (20000, 2) and torch.isfinite(z).all()
    side = z.sum(1)
    assert abs(float((side > 0).float().mean()) - 0.7) < 0.03        # each mode's share
    assert float((side.abs() < 3).float().mean()) < 0.03             # hardly anything between the modes
    for sign in (-1, 1):                                             # each mode where it is, as wide as it is
        mode = z[side * sign > 0].double()
        torch.testing.assert_close(mode.mean(0), torch.full((2,), 3.0 * sign, dtype=F64), atol=0.15, rtol=0)
        assert (mode.std(0) - 0.5).abs().max() < 0.2                 # (the codes' overall std is 3)
    g = get_sampler("gaussian")().fit(train).sample(20000, generator=seeded(1)).sum(1)
    assert float((g.abs() < 3).float().mean()) > 0.3                 # what a single Gaussian does instead


def test_maf_saves_loads_and_refits_exactly(maf):
    state = maf.state()
    assert all(isinstance(t, torch.Tensor) for t in state.values())
    assert {"mean", "std", "order.0", "order.4", "made.0.inp.weight", "made.4.out.bias"} <= set(state)
    restored = MaskedAutoregressiveFlow.from_state(state, 2)
    assert torch.equal(restored.sample(500, generator=seeded(3)), maf.sample(500, generator=seeded(3)))
    assert not torch.equal(maf.sample(500, generator=seeded(4)), maf.sample(500, generator=seeded(3)))
    # A refit is the same sampler: every random number of a fit comes from its seed.
    codes = two_modes(600, seeded(5))
    a, b = (quick("maf", steps=30, width=16).fit(codes, seed=7) for _ in range(2))
    assert all(torch.equal(a.state()[k], b.state()[k]) for k in a.state())
    assert not torch.equal(quick("maf", steps=30, width=16).fit(codes, seed=8).state()["made.0.inp.weight"],
                           a.state()["made.0.inp.weight"])


@pytest.mark.parametrize("name", ["maf", "two-stage"])
def test_fitting_reading_and_sampling_leave_the_callers_generator_as_it_was(name):
    """Every random number of theirs comes from their own generators, their networks' initial weights too."""
    torch.manual_seed(11)
    before = torch.get_rng_state()
    fitted = quick(name, steps=20, width=16).fit(two_modes(600, seeded(1)))
    restored = type(fitted).from_state(fitted.state(), 2)
    restored.sample(10, generator=seeded(2))
    assert torch.equal(torch.get_rng_state(), before)


def test_maf_inverts_its_own_density():
    """Sampling runs the flow backwards: the codes it draws map back to the noise they came from."""
    flow = quick("maf", steps=20, width=16).fit(torch.randn(600, 5, generator=seeded(0), dtype=F64) ** 3)
    u = torch.randn(300, 5, generator=seeded(1))
    x = flow.net.inverse(u)
    for made, order in zip(flow.net.made, flow.net.orders):
        x = x[:, order]
        mu, a = made(x)
        x = (x - mu) * torch.exp(-a)
    torch.testing.assert_close(x, u, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------------------ two-stage

def test_two_stage_samples_have_the_codes_mean_and_covariance():
    """Codes near a 2-D plane in 4-D, as an autoencoder's lie near a lower-dimensional set."""
    mix = torch.tensor([[1.0, 0.5], [0.8, -0.6], [0.0, 1.2], [-0.5, 0.3]], dtype=F64)
    gen = seeded(0)
    codes = (torch.randn(2000, 2, generator=gen, dtype=F64) @ mix.T + 0.05 * torch.randn(2000, 4, generator=gen,
             dtype=F64) + torch.tensor([1.0, -2.0, 3.0, 0.0], dtype=F64))
    s = quick("two-stage", steps=1000, width=32, lr=3e-3).fit(codes)
    assert float(s.net.log_gamma.detach().exp()) < 0.1  # the decoder's variance learned small: codes near a plane
    z = s.sample(20000, generator=seeded(1))
    assert z.dtype == torch.float32 and z.shape == (20000, 4) and torch.isfinite(z).all()
    z = z.double()
    torch.testing.assert_close(z.mean(0), codes.mean(0), atol=0.1, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), torch.cov(codes.T), atol=0.15, rtol=0)
    restored = TwoStageVae.from_state(s.state(), 4)
    assert torch.equal(restored.sample(300, generator=seeded(2)), s.sample(300, generator=seeded(2)))


# ------------------------------------------------------------------------------------------ damaged state

def test_damaged_state_is_refused(maf):
    good = maf.state()
    MaskedAutoregressiveFlow.from_state(good, 2)

    def broken(**change):
        return {**good, **change}

    w = good["made.1.mid.weight"]
    for state, error in [
        ({k: v for k, v in good.items() if k != "made.2.out.weight"}, KeyError),        # a weight missing
        ({k: v for k, v in good.items() if k != "std"}, KeyError),
        ({k: v for k, v in good.items() if not k.startswith("order.")}, KeyError),
        (broken(**{"made.1.mid.weight": w[:, :-1]}), ValueError),                       # another shape
        (broken(**{"made.1.mid.weight": w.clone().fill_(float("nan"))}), ValueError),   # not finite
        (broken(mean=torch.zeros(3, dtype=F64)), ValueError),                           # another latent size
        (broken(std=-good["std"]), ValueError),
        (broken(**{"order.1": torch.tensor([0, 0])}), ValueError),                      # not an order
    ]:
        with pytest.raises(error):
            MaskedAutoregressiveFlow.from_state(state, 2)
    with pytest.raises(ValueError):
        MaskedAutoregressiveFlow.from_state(good, 3)                                    # fitted for 2-D codes
    two = quick("two-stage", steps=5, width=8).fit(torch.randn(600, 3, generator=seeded(0), dtype=F64))
    TwoStageVae.from_state(two.state(), 3)
    with pytest.raises(KeyError):
        TwoStageVae.from_state({k: v for k, v in two.state().items() if k != "log_gamma"}, 3)
    with pytest.raises(ValueError):
        TwoStageVae.from_state({**two.state(), "dec.6.weight": torch.zeros(3, 9)}, 3)


def test_too_few_codes_is_refused_as_a_state_of_the_run():
    assert min_codes(4) == 500 and min_codes(128) == 2560
    for name in ("maf", "two-stage"):
        with pytest.raises(RunError, match=r"needs at least 500 training codes .* the run has 499"):
            get_sampler(name)().fit(torch.randn(499, 4, dtype=F64))


# ------------------------------------------------------------------------------------------ in a run

@pytest.fixture(scope="module")
def runs(digits_run, tmp_path_factory) -> dict[str, Path]:
    """Three runs: a private copy of the shared tiny ConvAE run; another run (trained separately,
    one epoch); and one whose training split is a tenth of digits' (val_fraction 0.9: ~130 codes)."""
    root = tmp_path_factory.mktemp("flow-runs")
    own = Path(shutil.copytree(digits_run, root / "own"))
    zoo.train("convae", dataset="digits", epochs=1, out=root / "other", log=quiet, progress=False, **TINY)
    zoo.train("convae", dataset="digits", epochs=1, val_fraction=0.9, out=root / "small", log=quiet,
              progress=False, **TINY)
    return {"own": own, "other": root / "other", "small": root / "small"}


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("name", ["maf", "two-stage"])
def test_a_run_with_too_few_codes_is_refused_before_anything_is_written(runs, tmp_path, name):
    small = runs["small"]
    before = snapshot(small)
    out = tmp_path / "samples.png"
    text = assert_clean_error(invoke("generate", small, "--sampler", name, "--n", "4", "--out", out),
                              f"the '{name}' sampler needs at least 500 training codes", "gaussian or gmm", code=1)
    assert int(re.search(r"the run has (\d+)", text)[1]) < 200, text
    assert snapshot(small) == before and not sampler_path(small, name).exists() and not out.exists()


def test_generate_fits_a_maf_once_saves_it_and_reproduces_seeds(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(MaskedAutoregressiveFlow, "steps", 200)
    own = runs["own"]
    path = sampler_path(own, "maf")

    def images(tag: str, seed: str) -> torch.Tensor:
        assert_ok(invoke("generate", own, "--sampler", "maf", "--n", "6", "--seed", seed,
                         "--out", tmp_path / f"{tag}.safetensors"))
        return weights(tmp_path / f"{tag}.safetensors")["images"]

    first = images("a", "1")
    assert first.shape == (6, 1, 28, 28) and path.is_file()
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    record = json.loads((own / "config.json").read_text())
    assert meta["run"] == f"convae created {record['created']}, run {record['run_id']}" and meta["sampler"] == "maf"
    stamp = path.stat().st_mtime_ns
    assert torch.equal(images("b", "1"), first) and path.stat().st_mtime_ns == stamp  # reused
    assert not torch.equal(images("c", "2"), first)


def test_a_sampler_fitted_on_another_run_is_refused_and_left_untouched(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(MaskedAutoregressiveFlow, "steps", 50)
    own, other = runs["own"], runs["other"]
    assert_ok(invoke("generate", other, "--sampler", "maf", "--n", "2", "--out", tmp_path / "o.png"))
    assert_ok(invoke("generate", own, "--sampler", "gmm", "--n", "2", "--out", tmp_path / "g.png"))
    for name in ("maf", "gmm"):  # the other run's maf, this run's gmm, each put where the other run looks
        source = sampler_path(other if name == "maf" else own, name)
        target = sampler_path(own if name == "maf" else other, name)
        shutil.copy2(source, target)
        before = target.read_bytes(), target.stat().st_mtime_ns
        text = assert_clean_error(invoke("generate", target.parent, "--sampler", name, "--n", "2", "--out",
                                         tmp_path / "x.png"), str(target), "another run's codes", "Delete it",
                                  code=1)  # a file's state, not the command line
        assert "convae created" in text and not (tmp_path / "x.png").exists()
        assert (target.read_bytes(), target.stat().st_mtime_ns) == before
        target.unlink()


def test_a_stale_file_of_the_same_run_and_an_old_file_are_refitted(runs, tmp_path, monkeypatch):
    """This run's own file for other weights (a resumed training) is refitted, as is a file saved
    before runs were recorded, whatever run it came from."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    monkeypatch.setattr(MaskedAutoregressiveFlow, "steps", 50)
    own = runs["own"]
    path = sampler_path(own, "maf")
    assert_ok(invoke("generate", own, "--sampler", "maf", "--n", "2", "--out", tmp_path / "a.png"))
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    meta.pop("zoo_sha256")  # files written by other tools carry no checksum of zoo's
    tensors = load_file(str(path))
    stale = {**meta, "weights_sha256": "0" * 64}                  # this run, before its weights changed
    old = {k: v for k, v in stale.items() if k != "run"}          # saved before runs were recorded
    for saved in (stale, old):
        save_file(tensors, str(path), metadata=saved)
        out = assert_ok(invoke("generate", own, "--sampler", "maf", "--n", "2", "--out", tmp_path / "b.png"))
        assert "fitted the maf sampler" in out
        with safe_open(str(path), "pt") as fh:
            assert fh.metadata()["weights_sha256"] == meta["weights_sha256"] and fh.metadata()["run"] == meta["run"]


def test_two_runs_created_in_the_same_second_have_different_identities(runs, tmp_path):
    from zoo.runs.checkpoint import run_identity

    twin = Path(shutil.copytree(runs["other"], tmp_path / "twin"))
    record = json.loads((twin / "config.json").read_text())
    record["created"] = json.loads((runs["own"] / "config.json").read_text())["created"]  # the same second
    (twin / "config.json").write_text(json.dumps(record))
    assert run_identity(zoo.load(twin).record) != run_identity(zoo.load(runs["own"]).record)
    assert run_identity(zoo.load(twin).record).startswith("convae created ")


def test_a_two_stage_fit_on_gaussian_codes_warns_that_it_collapsed_and_one_near_a_plane_does_not():
    """Independent Gaussian codes leave the second VAE nothing to learn: its decoder variance stays large and its
    samples, the decoder's means, bunch together (as on the IWAEs' codes, docs/benchmarks.md); codes near a
    plane do not."""
    gen = seeded(0)
    gaussian = quick("two-stage", steps=1000, width=32, lr=3e-3).fit(torch.randn(2000, 4, generator=gen, dtype=F64))
    assert float(gaussian.net.log_gamma.detach().exp()) >= 0.5
    assert "use the gmm sampler" in gaussian.fit_warning()
    spread = gaussian.sample(5000, generator=seeded(1)).std(0)
    assert float(spread.max()) < 0.9  # narrower than the codes' unit spread: what the warning says
    plane = torch.randn(2000, 2, generator=gen, dtype=F64) @ torch.randn(2, 4, generator=gen, dtype=F64)
    near_plane = quick("two-stage", steps=1000, width=32, lr=3e-3).fit(plane + 0.05 * torch.randn(2000, 4,
                                                                                                   generator=gen,
                                                                                                   dtype=F64))
    assert near_plane.fit_warning() == ""
    assert TwoStageVae.from_state(gaussian.state(), 4).fit_warning() == gaussian.fit_warning()  # read back, too
