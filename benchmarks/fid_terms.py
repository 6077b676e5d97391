"""Where a run's classifier-feature FID comes from: its mean and covariance terms, the norm and spread
of the samples' features against the test images', and the pixel statistics behind them.

    python benchmarks/fid_terms.py RUN [--raw] [--n 10000]

`--raw`: a GAN's raw generator instead of the weight average it samples from (`zoo eval --fid` measures
the average). The FID printed equals `zoo eval RUN --fid`'s for the same samples (seed 0).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from zoo.analysis import quality
from zoo.runs.loading import load


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--raw", action="store_true")
    ap.add_argument("--n", type=int, default=10_000)
    args = ap.parse_args()
    run = load(args.run, device="cpu")
    feat = load("features-" + run.record["train"]["dataset"], device="cpu").model
    _, test_x, _ = run.data("test", None)
    gen = torch.Generator().manual_seed(0)
    model = run.model
    with torch.no_grad():
        if args.raw:
            draw = lambda k: (model.generate(model.generator, model.prior_codes(k, gen), None) + 1) / 2  # noqa: E731
        else:
            draw = lambda k: run.sample(k, generator=gen)  # noqa: E731
        xs = torch.cat([draw(min(1000, args.n - i)).float().clamp(0, 1) for i in range(0, args.n, 1000)])
    fs, ft = quality.embed(feat, xs), quality.embed(feat, test_x[:args.n])
    mean_term = float(((fs.mean(0) - ft.mean(0)) ** 2).sum())
    fid = quality.frechet_distance(fs, ft)
    print(f"FID {fid:.1f} = mean term {mean_term:.1f} + covariance term {fid - mean_term:.1f}")
    print(f"feature variance (trace): samples {np.trace(np.cov(fs, rowvar=False)):.0f}, "
          f"test {np.trace(np.cov(ft, rowvar=False)):.0f}")
    print(f"feature norm (mean): samples {np.linalg.norm(fs, axis=1).mean():.1f}, "
          f"test {np.linalg.norm(ft, axis=1).mean():.1f}")
    real = test_x[:args.n].float() / 255
    print(f"pixel mean: samples {float(xs.mean()):.3f}, test {float(real.mean()):.3f}; pixels below 0.01: "
          f"samples {float((xs < 0.01).float().mean()):.3f}, test {float((real < 0.01).float().mean()):.3f}")


if __name__ == "__main__":
    main()
