"""How far a −log p(x) figure moves with the random draw that binarises the test set: the same model, the
same 10,000 grey test images, binarised with other seeds (zoo's fixed one first, as `zoo eval` does).
The papers and pythae binarised the same test digits with draws of their own, so this spread is part of
any gap between their figures and zoo's.

    python benchmarks/binarisation_draws.py vampprior-mnist --draws 5 --k 200 [--limit N]
"""

import argparse
import statistics
import time

import torch

import zoo
from zoo.data.datasets import BINARIZE_SEED, binarized
from zoo.training.batching import growing_spans, to_batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--draws", type=int, default=5, help="binarisations: zoo's own, then seeds 1, 2, ...")
    ap.add_argument("--k", type=int, default=200, help="importance samples of the bound")
    ap.add_argument("--limit", type=int, default=None, help="only the first N test images")
    args = ap.parse_args()
    run = zoo.load(args.run)
    grey, y = run.dataset(grey=True).split("test")
    if args.limit:
        grey, y = grey[:args.limit], y[:args.limit]
    metric = f"nll_iwae_k{args.k}_nats"
    means = []
    for draw in range(args.draws):
        seed = BINARIZE_SEED + 1 if draw == 0 else draw  # zoo's test binarisation first
        x = binarized(grey, seed)
        torch.manual_seed(0)
        start, total = time.perf_counter(), 0.0
        with torch.no_grad():
            for a, b in growing_spans(len(x)):
                total += float(run.model.metrics(to_batch(x[a:b], y[a:b]), iwae_k=args.k)[metric].double().sum())
        means.append(total / len(x))
        print(f"binarisation seed {seed}: {means[-1]:.4f} nats ({len(x)} images, K = {args.k}, "
              f"{time.perf_counter() - start:.0f} s)", flush=True)
    print(f"over {len(means)} binarisations: mean {statistics.mean(means):.4f}, standard deviation "
          f"{statistics.stdev(means):.4f}, range {max(means) - min(means):.4f} nats")


if __name__ == "__main__":
    main()
