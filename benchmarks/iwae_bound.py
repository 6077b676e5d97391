"""The cost of the IWAE bound −log p(x) that `zoo eval --iwae-k K` computes: a model (the bundled `vae-mnist`
unless --model names another, or a run folder) on the first N test images, on one thread. Prints wall, user
and system seconds (a bound that allocates and frees large buffers over and over shows as system time) and
the bound itself.

    OMP_NUM_THREADS=1 python benchmarks/iwae_bound.py LABEL [--k 1000] [--limit 500] [--model NAME_OR_RUN]
                                                            [--chunk-images N]

Alternate it between two checkouts (one on PYTHONPATH), or between --chunk-images values (the decoded images a
chunk of the bound holds on the CPU; default: the model's own `chunk_images`), to compare them in one run.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import torch

import zoo
from zoo.errors import ZooError


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("label")
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--model", default="vae-mnist", help="a bundled name or a run folder")
    ap.add_argument("--chunk-images", type=int, default=None, help="decoded images a chunk (default: the model's)")
    args = ap.parse_args()
    if args.chunk_images is not None and args.chunk_images < 1:
        ap.error(f"--chunk-images must be at least 1, got {args.chunk_images}")
    torch.set_num_threads(1)
    try:
        run = zoo.load(args.model)  # loading is not what is timed
    except ZooError as e:
        sys.exit(f"{e}")
    if args.chunk_images:
        run.model.chunk_images = args.chunk_images
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    result = zoo.evaluate(run, options={"iwae_k": args.k}, limit=args.limit, save=False, progress=False)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"label": args.label, "model": args.model, "chunk_images": run.model.chunk_images,
                      "k": args.k, "images": args.limit, "wall_s": round(wall, 2),
                      "user_s": round(after.ru_utime - before.ru_utime, 2),
                      "sys_s": round(after.ru_stime - before.ru_stime, 2),
                      "nll": round(result["metrics"][f"nll_iwae_k{args.k}_nats"], 3), "zoo": zoo.__file__}))


if __name__ == "__main__":
    main()
