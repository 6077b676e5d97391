"""Classifier-feature FID of the same weights and sampler over several seeds: how far one figure moves when
only the random draws change (which samples, which training images form the floor), one markdown row each.

    python benchmarks/fid_seeds.py NAME[:SAMPLER] [NAME[:SAMPLER] ...] [--seeds 0,1,2,3,4] [--n 10000]

Each figure is `zoo eval NAME --fid [--sampler SAMPLER]` with `seed=S` (10,000 samples against the test
images); nothing is saved, and a sampler is read from where `zoo eval` keeps it (a bundled model's shipped
file), or fitted once if there is none. The row gives each seed's FID, their median and their range.
"""

from __future__ import annotations

import argparse
import statistics
import time

from zoo.tasks.sample_quality import sample_quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="+", help="NAME or NAME:SAMPLER (a run folder or a catalogued name)")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"| weights | sampler | {' | '.join(f'seed {s}' for s in seeds)} | median | range | s per figure |")
    print(f"| --- | --- | {' | '.join('---' for _ in seeds)} | --- | --- | --- |")
    for row in args.rows:
        name, _, sampler = row.partition(":")
        fids, start = [], time.perf_counter()
        for seed in seeds:
            result = sample_quality(name, sampler=sampler or None, seed=seed, n=args.n, save=False, progress=False)
            fids.append(result["samples_vs_test"]["fid"])
        each = (time.perf_counter() - start) / len(seeds)
        print(f"| `{name}` | {sampler or 'its prior'} | {' | '.join(f'{f:.1f}' for f in fids)} | "
              f"**{statistics.median(fids):.1f}** | {min(fids):.1f}-{max(fids):.1f} | {each:.0f} |", flush=True)


if __name__ == "__main__":
    main()
