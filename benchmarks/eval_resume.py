"""`zoo eval --iwae-k K` stopped with a real SIGINT and run again goes on to the result of an evaluation
that never stopped: the same command run whole in one fresh folder, and in another stopped after
--stop-after seconds, then run again. Prints the wall times, what each run said on stderr, and whether
every metric is equal.

    ZOO_DATA_DIR=... ZOO_OFFLINE=1 OMP_NUM_THREADS=1 python benchmarks/eval_resume.py vae-mnist --k 500 \\
        --limit 1500 --stop-after 30
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import tempfile
import time
from pathlib import Path


def default_sigint() -> None:
    """A child of a backgrounded shell starts with SIGINT ignored: give it back the default, as a terminal's."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--k", type=int, default=500)
    ap.add_argument("--limit", type=int, default=1500)
    ap.add_argument("--stop-after", type=float, default=30.0, help="seconds before the SIGINT")
    args = ap.parse_args()
    cmd = ["zoo", "eval", args.name, "--iwae-k", str(args.k), "--limit", str(args.limit), "--json"]
    whole_dir, stopped_dir = (Path(tempfile.mkdtemp(prefix=f"eval-resume-{p}-")) for p in ("whole", "stopped"))

    def run(folder: Path) -> tuple[subprocess.CompletedProcess, float]:
        t = time.perf_counter()
        done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, preexec_fn=default_sigint)
        return done, time.perf_counter() - t

    whole, seconds = run(whole_dir)
    print(f"uninterrupted: {seconds:.1f} s, exit {whole.returncode}", flush=True)

    t = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=stopped_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=default_sigint)
    time.sleep(args.stop_after)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate()
    print(f"stopped: {time.perf_counter() - t:.1f} s, exit {child.returncode}\n{err}", flush=True)

    again, seconds = run(stopped_dir)
    print(f"again: {seconds:.1f} s, exit {again.returncode}\n{again.stderr}", flush=True)
    a, b = json.loads(whole.stdout)["metrics"], json.loads(again.stdout)["metrics"]
    print(f"every metric equal: {a == b}\n{json.dumps(a, indent=1)}")


if __name__ == "__main__":
    main()
