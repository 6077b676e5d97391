"""Throughput of many same-shape trials trained together (zoo.training.multitrial) against one model at a time.

    python benchmarks/bench_trials.py                                  # CPU: 8 trials, 1 epoch
    python benchmarks/bench_trials.py --device cuda --trials 64 --epochs 3 --cuda-graph

Every trial is the lab-basic ConvAE (preset convae-lab) on MNIST at batch 256, with its own learning
rate, weight decay and seed: the shape of a random search over optimiser settings. Rows:
one model trained alone by the engine (eager, and with cuda_graph when asked), then the K trials in one
vectorised step (eager vmap, and recorded in a CUDA graph when asked). images/s counts the training
images of every trial together: K × 54,000 an epoch over the epoch's training seconds (medians, the
first epoch left out when there are 3 or more).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

import torch

import zoo
from zoo.training import multitrial
from zoo.api import resolve_config
from zoo.runs.run import training_data


def median_seconds(history: list[dict], trials: int) -> float:
    # multitrial records each trial's share of an epoch's seconds; the engine the whole epoch
    times = [r["seconds"] * trials for r in history]
    times = times[1:] if len(times) > 2 else times
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-dir", default="")
    ap.add_argument("--cuda-graph", action="store_true", help="also time the recorded-step variants")
    args = ap.parse_args()

    from zoo.device import pick_device

    device = pick_device(args.device)
    base = {"preset": "convae-lab", "dataset": "mnist", "data_dir": args.data_dir, "epochs": args.epochs,
            "device": str(device)}
    cls, model_cfg, train_cfg = resolve_config("convae", overrides={k: v for k, v in base.items() if k != "preset"},
                                               preset="convae-lab")
    data = training_data(train_cfg, device)
    n = data.train_x.shape[0]
    graph_modes = [False, True] if args.cuda_graph else [False]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:  # the single-model runs' folders: not kept
        for graph in graph_modes:
            result = zoo.train("convae", progress=False, log=lambda m: None, cuda_graph=graph,
                               out=Path(tmp) / f"graph-{graph}", **base)
            rows.append((f"1 model{' (graph)' if graph else ''}", 1, median_seconds(result.history, 1)))
    trials = [dataclasses.replace(train_cfg, lr=1e-3 * (0.9 ** k), weight_decay=1e-5 * (k % 4), seed=k)
              for k in range(args.trials)]
    for graph in graph_modes:
        cfgs = [dataclasses.replace(t, cuda_graph=graph) for t in trials]
        results = multitrial.train_together(cls, model_cfg, cfgs, data)
        rows.append((f"{args.trials} trials vmap{' (graph)' if graph else ''}", args.trials,
                     median_seconds(results[0].history, args.trials)))
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"model: convae-lab (latent 4), batch 256, {n} training images an epoch per trial, {args.epochs} epochs")
    print(f"{'run':<24} {'s/epoch':>9} {'images/s (all trials)':>22} {'vs 1 model':>11}")
    one = n / rows[0][2]
    for name, k, seconds in rows:
        ips = k * n / seconds
        print(f"{name:<24} {seconds:>9.3f} {ips:>22,.0f} {ips / one:>10.2f}x")


if __name__ == "__main__":
    main()
