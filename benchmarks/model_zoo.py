"""Re-measure a row of docs/model-zoo.md: train the row's model on dynamically binarised MNIST with its
command, then estimate −log p(x) over the whole binarised test set (fixed seed) with the IWAE bound.
Prints the row's figures as JSON and as the table's markdown line.

    OMP_NUM_THREADS=1 python benchmarks/model_zoo.py ROW [--epochs N] [--k 5000] [--out DIR]
    python benchmarks/model_zoo.py ROW --run DIR [--k 1000]       # only the bound, of a run trained before
    python benchmarks/model_zoo.py ROW --resume --out DIR [--k 1000]  # finish a run a time limit stopped; the bound
    python benchmarks/model_zoo.py ROW --resume --out DIR --epochs N   # train a finished run on to epoch N; the bound
    python benchmarks/model_zoo.py --list

The published figures beside each row are the papers' and pythae's reproduction (its README table);
they are quoted, never computed here.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import zoo
from zoo.errors import ZooError

# Shared by every row: the `vae-mnist` conv net at latent 32, dynamically binarised MNIST, KL warm-up.
COMMON = {"preset": "vae-mnist", "dataset": "mnist", "binarize": "dynamic", "latent_dim": 32, "kl_warmup": 5}

# Each row's epochs are the table's; "gpu": the table's figure was trained on the H200, recorded in a CUDA graph
# (--set device=cuda --set cuda_graph=true), far beyond a CPU session. MIWAE and CIWAE reached their epochs in
# resumed stages ("stages", which --list prints), each restarting the cosine schedule: one run of 65 is another.
ROWS = {
    "vae": {"model": "vae", "epochs": 40, "set": {},
            "paper": "88.56 (VampPrior paper); 86.76 (Burda et al., 1 layer)", "pythae": "89.78"},
    "iwae-k5": {"model": "iwae", "epochs": 40, "set": {"k": 5},
                "paper": "85.54 (Burda et al., 1 layer, K = 5)", "pythae": "—"},
    "iwae-k50": {"model": "iwae", "epochs": 85, "gpu": True, "set": {"k": 50},
                 "paper": "84.78 (Burda et al., 1 layer); 82.90 (2 layers)", "pythae": "86.82"},
    "miwae": {"model": "iwae", "epochs": 65, "stages": (20, 35, 45, 55, 65), "set": {"bound": "miwae", "m": 8, "k": 8},
              "paper": "84.97 (Rainforth et al., M = K = 8)", "pythae": "85.09"},
    "piwae": {"model": "iwae", "epochs": 208, "gpu": True, "set": {"bound": "piwae", "m": 8, "k": 8},
              "paper": "84.46", "pythae": "84.58"},
    # The paper's and pythae's CIWAE figures are at β = 0.05 (the ELBO's share); the paper's β = 0.5 gave 85.24.
    "ciwae": {"model": "iwae", "epochs": 65, "stages": (20, 35, 45, 55, 65),
              "set": {"bound": "ciwae", "k": 64, "ciwae_beta": 0.05},
              "paper": "84.57 (Rainforth et al., β = 0.05)", "pythae": "84.74"},
    "ciwae-beta05": {"model": "iwae", "epochs": 20, "set": {"bound": "ciwae", "k": 64, "ciwae_beta": 0.5},
                     "paper": "85.24 (Rainforth et al., β = 0.5)", "pythae": "—"},
    "vampprior": {"model": "vampprior", "epochs": 80, "set": {"batch_norm": False, "weight_init": "he"},
                  "paper": "85.57", "pythae": "85.79"},
    "hvae-vampprior": {"model": "hvae", "epochs": 80, "set": {"batch_norm": False, "prior": "vampprior",
                                                              "free_bits": 4},
                       "paper": "83.19 (HVAE); ≈ 81.1 (convHVAE), VampPrior paper", "pythae": "—"},
    # The same with the paper's convHVAE decoder: four gated 3×3 convs of 64 channels at full resolution on top.
    "convhvae-vampprior": {"model": "hvae", "epochs": 80, "gpu": True,
                           "set": {"batch_norm": False, "prior": "vampprior", "free_bits": 4, "pixel_layers": 4,
                                   "pixel_channels": 64},
                           "paper": "≈ 81.1 (convHVAE), VampPrior paper", "pythae": "—"},
}


def settings(row_set: dict, sets: list[str]) -> dict:
    """A row's training settings: the common ones, the row's own, then each `--set KEY=VALUE` (strings, which
    zoo parses as the CLI's --set does). A malformed --set ends the script with one message."""
    out = {**{k: v for k, v in COMMON.items() if k not in ("preset", "dataset")}, **row_set}
    for item in sets:
        key, eq, value = item.partition("=")
        if not eq or not key:
            sys.exit(f"--set {item!r}: give KEY=VALUE, e.g. --set device=cuda")
        if key in ("preset", "dataset", "epochs", "out", "resume"):  # the script's own: given once, its way
            sys.exit(f"--set {item!r}: {key} is the row's protocol or the script's option, not a setting beside it"
                     + (" (give --epochs N)" if key == "epochs" else " (give --out RUN)" if key == "out" else ""))
        out[key] = value
    return out


def differences(row: dict, run: Path) -> list[str]:
    """What a run given with --run was trained with otherwise than the row's protocol (its data set, and the
    common and the row's settings): its figure is then no figure of the row, and the table line says so."""
    record = json.loads((run / "config.json").read_text())
    trained = {**record.get("config", {}), **record.get("train", {})}
    wanted = {"dataset": COMMON["dataset"], **settings(row["set"], [])}
    return [f"{k}={trained.get(k)!r}" for k, v in wanted.items() if str(trained.get(k)).lower() != str(v).lower()]


def saved_model(run: Path) -> str | None:
    """The plugin a run folder was trained with; None when it has no readable config.json (zoo then says why)."""
    try:
        return json.loads((run / "config.json").read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return None


def command(row: dict, epochs: int, out: str) -> str:
    """The row's `zoo train` line."""
    sets = " ".join(f"--set {k}={str(v).lower() if isinstance(v, bool) else v}"
                    for k, v in settings(row["set"], []).items())
    return (f"zoo train {row['model']} --preset {COMMON['preset']} --dataset {COMMON['dataset']} {sets} "
            f"--epochs {epochs} --out {shlex.quote(out)}")


def restarts(history: list[dict]) -> list[int]:
    """The epochs after which a finished run was trained on (`--resume --epochs N`): where the learning rate
    rose, which a cosine schedule only does when its epochs were raised. Empty for a run trained in one go."""
    return [prev["epoch"] for prev, cur in zip(history, history[1:]) if cur.get("lr", 0) > prev.get("lr", 0)]


def train_line(row: dict, history: list[dict], run: str) -> str:
    """How the run in `history` was trained: the row's `zoo train` line, then each `--resume --epochs N`."""
    ends = restarts(history) + [len(history)]
    resumed = "".join(f", then `zoo train --resume {shlex.quote(run)} --epochs {end}`" for end in ends[1:])
    return f"`{command(row, ends[0], run)}`{resumed}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("row", nargs="?", choices=sorted(ROWS))
    ap.add_argument("--list", action="store_true", help="print every row's training command")
    ap.add_argument("--epochs", type=int, default=None, help="epochs (default: the row's in docs/model-zoo.md)")
    ap.add_argument("--k", type=int, default=5000,
                    help="importance samples of the bound (default 5000, the issue's protocol: over the whole test set "
                         "that is about an hour or two of one CPU thread after the training; 1000 is a fifth of it)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N test images (a quick check)")
    ap.add_argument("--out", default=None, help="run folder (default: runs/model-zoo-ROW)")
    ap.add_argument("--run", default=None, help="a run trained before: measure its bound only")
    ap.add_argument("--resume", action="store_true",
                    help="continue the run in --out (stopped before its epochs, e.g. by a time limit) to its planned "
                         "epochs, or with --epochs N on to epoch N (a cosine schedule then restarts over the new "
                         "epochs, as `zoo train --resume RUN --epochs N` does), then measure")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a training setting beside the row's (device=cuda, cuda_graph=true, ...)")
    args = ap.parse_args()
    if args.list or args.row is None:
        for name, row in ROWS.items():
            gpu = " --device cuda --set cuda_graph=true" if row.get("gpu") else ""
            first, *more = row.get("stages", (row["epochs"],))
            then = "".join(f"; zoo train --resume runs/model-zoo-{name} --epochs {e}" for e in more)
            print(f"{name:20s} {command(row, first, f'runs/model-zoo-{name}')}{gpu}{then}")
        return
    row = ROWS[args.row]
    epochs = args.epochs or row["epochs"]
    run = Path(args.run or args.out or f"runs/model-zoo-{args.row}")
    if args.resume and (args.run or args.set):
        ap.error("--resume continues the run in --out with its own settings: leave out --run and --set")
    if args.run and not (run / "metrics.jsonl").is_file():
        ap.error(f"--run {run}: not a run folder (no metrics.jsonl); train it first, or give the folder of one")
    if args.resume or args.run:
        trained = saved_model(run)
        if trained not in (None, row["model"]):
            ap.error(f"{run} holds a {trained} run, not the row {args.row}'s {row['model']}: name its row")
    stages = [epochs] if args.epochs else list(row.get("stages", (epochs,)))  # the table's restarts, in order
    if row.get("gpu") and args.run is None and not any(s.startswith("device=cuda") for s in args.set):
        print(f"note: the table's {args.row} figure was trained on a GPU (--set device=cuda --set cuda_graph=true); "
              "on a CPU its epochs take hours to days (docs/model-zoo.md gives the times)", file=sys.stderr)
    try:
        if args.resume:
            zoo.train(resume=run, progress=False, **({"epochs": args.epochs} if args.epochs else {}))
        elif args.run is None:
            zoo.train(row["model"], preset=COMMON["preset"], dataset=COMMON["dataset"], epochs=stages[0], out=run,
                      progress=False, **settings(row["set"], args.set))
            for more in stages[1:]:  # each a --resume with more epochs, restarting the cosine schedule
                zoo.train(resume=run, epochs=more, progress=False)
    except ZooError as e:
        sys.exit(f"{e}")
    other = differences(row, run) if args.run else []
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train_s = sum(r.get("seconds", 0.0) for r in history)
    start = time.perf_counter()
    result = zoo.evaluate(str(run), options={"iwae_k": args.k}, limit=args.limit, progress=False)
    eval_s = time.perf_counter() - start
    nll = result["metrics"][f"nll_iwae_k{args.k}_nats"]
    images = result["images"]
    figures = {"row": args.row, "nll_nats": round(nll, 2), "k": args.k, "test_images": images,
               "epochs": len(history), "train_s": round(train_s), "eval_s": round(eval_s), "run": str(run),
               **({"not_the_rows_protocol": other} if other else {})}
    print(json.dumps(figures))
    how = f"{run} (not the row's protocol: {', '.join(other)})" if other else train_line(row, history, str(run))
    print(f"| {args.row} | **{nll:.2f}** (K = {args.k:,}, {images:,} {result['dataset']} test images) | "
          f"{row['paper']} | {row['pythae']} | {len(history)} | {train_s / 60:.0f} min | {how} |")


if __name__ == "__main__":
    main()
