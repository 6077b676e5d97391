"""zoo's engine alone, for comparing two versions of zoo in one session: the lab ConvAE (preset
convae-lab, latent 4) on MNIST for 3 epochs; prints the median wall seconds of epochs 2-3, the process
CPU seconds of the whole training, and the last validation MSE (equal across versions that compute
the same thing).

    OMP_NUM_THREADS=1 python benchmarks/epoch_time.py LABEL [--data-dir DIR]

Alternate it between two checkouts (one on PYTHONPATH) to compare them on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import zoo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("label")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp()) / "run"
    start = time.process_time()
    zoo.train("convae", preset="convae-lab", dataset="mnist", data_dir=args.data_dir, epochs=3, out=out,
              progress=False, log=lambda message: None, latent_dim=4)
    cpu = time.process_time() - start
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    seconds = sorted(r["seconds"] for r in rows[1:])
    print(f"{args.label} s/epoch {seconds[len(seconds) // 2]:.3f} cpu {cpu:.1f} val_mse {rows[-1].get('val_mse')}")


if __name__ == "__main__":
    main()
