"""The engine's per-step cost where Python overhead dominates: a tiny ConvAE on `digits` (8×8 images,
batch 32, 45 steps an epoch) for 15 epochs on one thread. Prints the median and the fastest epoch in
wall seconds, the process CPU seconds and the last validation loss (equal across versions that compute
the same thing). The fastest epoch is the figure least disturbed by other work on a shared machine.

    OMP_NUM_THREADS=1 python benchmarks/step_overhead.py LABEL

Alternate it between two checkouts (one on PYTHONPATH) to compare them.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import zoo


def main() -> None:
    torch.set_num_threads(1)
    out = Path(tempfile.mkdtemp()) / "run"
    start = time.process_time()
    zoo.train("convae", dataset="digits", epochs=15, out=out, progress=False, log=lambda message: None,
              device="cpu", channels=[4, 8, 8], hidden=[16], batch_size=32, seed=0)
    cpu = time.process_time() - start
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    seconds = [r["seconds"] for r in rows[1:]]  # the first epoch also warms up
    print(json.dumps({"label": sys.argv[1] if len(sys.argv) > 1 else "", "epoch_s": statistics.median(seconds),
                      "min_s": min(seconds), "cpu_s": round(cpu, 2), "val_loss": rows[-1]["val_loss"],
                      "zoo": zoo.__file__}))


if __name__ == "__main__":
    main()
