"""Two evaluations of the same images, compared image by image: each one's mean ± standard error, and
their difference's mean ± its paired standard error (the spread of the per-image differences over √N),
which is far smaller than either standard error when the two models find the same images hard.

    zoo eval iwae50-mnist --iwae-k 1000 --per-image iwae50.csv
    zoo eval piwae-mnist --iwae-k 1000 --per-image piwae.csv
    python benchmarks/paired_difference.py iwae50.csv piwae.csv [--metric nll_iwae_k1000_nats]
"""

import argparse
import csv
import math


def read(path: str, metric: str) -> dict[int, tuple[str, float]]:
    with open(path, newline="") as fh:
        return {int(r["index"]): (r["label"], float(r[metric])) for r in csv.DictReader(fh)}


def mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, sd / math.sqrt(n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--metric", default="nll_iwae_k1000_nats")
    args = ap.parse_args()
    a, b = read(args.a, args.metric), read(args.b, args.metric)
    if a.keys() != b.keys() or any(a[i][0] != b[i][0] for i in a):
        raise SystemExit("the two files do not hold the same images (indices and labels differ)")
    order = sorted(a)
    va, vb = [a[i][1] for i in order], [b[i][1] for i in order]
    for name, v in ((args.a, va), (args.b, vb)):
        m, se = mean_se(v)
        print(f"{name}: {m:.3f} ± {se:.3f} ({len(v)} images)")
    m, se = mean_se([x - y for x, y in zip(va, vb)])
    below = sum(x < y for x, y in zip(va, vb)) / len(va)
    print(f"a - b: {m:.3f} ± {se:.3f} (paired); a below b on {below:.1%} of the images")


if __name__ == "__main__":
    main()
