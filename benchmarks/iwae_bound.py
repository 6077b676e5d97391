"""The cost of the IWAE bound −log p(x) that `zoo eval --iwae-k K` computes: the bundled `vae-mnist` on
the first N test images, on one thread. Prints wall, user and system seconds (a bound that allocates and
frees large buffers over and over shows as system time) and the bound itself.

    OMP_NUM_THREADS=1 python benchmarks/iwae_bound.py LABEL [--k 1000] [--limit 500]

Alternate it between two checkouts (one on PYTHONPATH) to compare them in one run.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

import zoo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("label")
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--limit", type=int, default=500)
    args = ap.parse_args()
    torch.set_num_threads(1)
    zoo.load("vae-mnist")  # loading and data reading are not what is timed
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    result = zoo.evaluate("vae-mnist", options={"iwae_k": args.k}, limit=args.limit, save=False, progress=False)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"label": args.label, "k": args.k, "images": args.limit, "wall_s": round(wall, 2),
                      "user_s": round(after.ru_utime - before.ru_utime, 2),
                      "sys_s": round(after.ru_stime - before.ru_stime, 2),
                      "nll": round(result["metrics"][f"nll_iwae_k{args.k}_nats"], 3), "zoo": zoo.__file__}))


if __name__ == "__main__":
    main()
