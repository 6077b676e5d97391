"""Classifier-feature FID of runs sampled from their own prior and from latent samplers fitted on their
training codes, one markdown row per run: FID (precision / recall) per way of sampling, and the floor.

    python benchmarks/sampler_fid.py NAME [NAME ...] [--samplers gmm,maf,two-stage] [--no-prior]

Each figure is `zoo eval NAME --fid [--sampler S]`'s (10,000 samples against the test images, seed 0);
fitted samplers are saved, and reused, under ./zoo-outputs/NAME/ as `zoo eval` does. Two experiments,
which change the samplers for this process only (docs/benchmarks.md, "Sample quality of the likelihood
models"):

    --two-stage-noise   the two-stage VAE's draws with its decoder's noise added (dec(u) + sqrt(γ) ε)
    --binarised-codes   a run trained under dynamic binarisation fitted on the codes of one fixed
                        binarisation of its training images instead of the grey images'

`--two-stage-units` prints, instead of FIDs, what a two-stage VAE fitted on each run's training codes
learned: its decoder variance γ, how many of its latent units carry information (KL ≥ 0.01 nats, over
5,000 training codes), and how widely its draws spread in each code unit against the codes themselves.

An experiment refits its samplers in a fresh folder of its own (./zoo-outputs is then left alone).
"""

from __future__ import annotations

import argparse
import os
import tempfile

import torch

from zoo.analysis import latent_samplers
from zoo.tasks.sample_quality import sample_quality


def two_stage_with_noise() -> None:
    from zoo.plugins import flow_samplers as fs
    means = fs.TwoStageVae._from_noise

    def with_noise(self, u):
        z = means(self, u)
        return z + self.net.log_gamma.detach().exp().to(u.device).sqrt() * torch.randn(z.shape, device=u.device)
    fs.TwoStageVae._from_noise = with_noise


def binarised_training_codes() -> None:
    grey_split = latent_samplers.run_split

    def run_split(run, split, data_dir=None):
        data, _, _ = grey_split(run, split, data_dir)
        return (data, *data.measured(split))  # the training images binarised with static binarisation's seed
    latent_samplers.run_split = run_split


def two_stage_units(name: str) -> None:
    from zoo.plugins.flow_samplers import TwoStageVae
    from zoo.runs.loading import load
    codes, _, _ = latent_samplers.split_codes(load(name), "train")
    sampler = TwoStageVae().fit(codes)
    standardised = ((codes[:5000].double() - sampler.mean) / sampler.std).float()  # as the sampler was fitted
    with torch.no_grad():
        mu, logvar = sampler.net.enc(standardised).chunk(2, -1)
        kl = 0.5 * (mu ** 2 + logvar.exp() - logvar - 1).mean(0)
        spread = sampler.sample(5000, torch.Generator().manual_seed(0)).std(0) / codes.std(0)
    gamma = float(sampler.net.log_gamma.detach().exp())
    print(f"{name}: γ {gamma:.2f}, {int((kl >= 0.01).sum())} of {kl.numel()} units "
          f"in use, draws' spread {float(spread.min()):.2f} to {float(spread.max()):.2f} of the codes'", flush=True)


def cell(result: dict) -> str:
    s = result["samples_vs_test"]
    return f"{s['fid']:.1f} ({s['precision']:.3f} / {s['recall']:.3f})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="+")
    ap.add_argument("--samplers", default="gmm,maf,two-stage")
    ap.add_argument("--no-prior", action="store_true", help="leave out the model's own prior")
    ap.add_argument("--two-stage-noise", action="store_true")
    ap.add_argument("--binarised-codes", action="store_true")
    ap.add_argument("--two-stage-units", action="store_true")
    args = ap.parse_args()
    if args.two_stage_units:
        for name in args.names:
            two_stage_units(name)
        return
    if args.two_stage_noise or args.binarised_codes:
        os.chdir(tempfile.mkdtemp(prefix="sampler-fid-"))  # never reuse, nor overwrite, the plain samplers
    if args.two_stage_noise:
        torch.manual_seed(0)  # the noise comes from the global generator
        two_stage_with_noise()
    if args.binarised_codes:
        binarised_training_codes()
    samplers = [s for s in args.samplers.split(",") if s]
    ways = ([] if args.no_prior else [None]) + samplers
    print("| run | " + " | ".join(w or "its prior" for w in ways) + " | floor |")
    print("| --- " * (len(ways) + 2) + "|")
    for name in args.names:
        results = [sample_quality(name, sampler=way, save=False) for way in ways]
        floor = results[0]["floor_test_vs_train"]["fid"]
        print(f"| {name} | " + " | ".join(cell(r) for r in results) + f" | {floor:.2f} |", flush=True)


if __name__ == "__main__":
    main()
