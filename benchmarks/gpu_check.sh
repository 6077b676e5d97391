#!/usr/bin/env bash
# The GPU figures of issues 2 and 4, prepared to run on a GPU machine without a network:
#   bash benchmarks/gpu_check.sh mnist      # carry .whl .data/mnist; about 5 minutes on an H100 / H200:
#       the recorded-step tests on the GPU (cuda_graph: single models, vectorised trials); the lab-basic
#       ConvAE against the reference loop and pythae's trainer (zoo eager, cuda_graph, cuda_graph without
#       channels-last, cuda_graph with compiled layers);
#       64 same-shape trials at once (eager vmap and recorded)
#   bash benchmarks/gpu_check.sh fashion    # carry .whl .data/fashion-mnist (with the working tree, over the
#                                           # 64 MiB a call may send: see gpu_prepare.sh); at most 5.5 minutes:
#       the Fashion-MNIST report's random search, 80 trials x 30 epochs, wall time
#   bash benchmarks/gpu_check.sh likelihood # carry .whl .data/mnist; at most BUDGET_S (default 540) seconds
#       (issue 15): the recorded-step tests on the GPU (the likelihood models' steps among them; TESTS=0 skips
#       them); each likelihood model's epoch against the plain VAE's (benchmarks/likelihood_epoch.py, the
#       models in PROBE); then the rows of docs/model-zoo.md named in ROWS (default "convhvae-vampprior", the
#       one target still open after 2026-12-04's second GPU session), recorded in a CUDA graph, each for the
#       epochs its measured epoch time allows in an equal share of the time left, less its bound's time;
#       each row's -log p(x) over the 10,000 binarised test images with
#       K = 1,000 (benchmarks/model_zoo.py). A row stopped at its time still has its best epoch's weights, which are
#       then measured. Each run folder comes back as $OUT/ROW.tar (the files a bundled entry needs).
#   bash benchmarks/gpu_check.sh tracking   # carry .whl .data/mnist; at most 4 minutes (issue 16): the lab
#       ConvAE with TensorBoard on and off, side by side, recorded in a CUDA graph (the logging cost)
#   bash benchmarks/gpu_check.sh long       # carry .whl .data/mnist (and .runs, from the second call on, if the
#       machine was given back between calls); at most BUDGET_S (default 520) seconds a call: ROW (default
#       convhvae-vampprior) for EPOCHS (default 340: 1.6 s an epoch on the H200) across calls, resumed each call,
#       then its K = 1,000 bound; the run comes back each call as $OUT/ROW.tar, checkpoint included. A dry run here:
#       DEVICE=cpu ROW=vae EPOCHS=3 BUDGET_S=45 LIMIT=200 (LIMIT: only the first N test images in the bound)
# Prepare them with benchmarks/gpu_prepare.sh. Logs go to $OUT (or ./gpu-check).
set -uo pipefail
export PYTHONUNBUFFERED=1 ZOO_DATA_DIR=$PWD/.data
out=${OUT:-gpu-check}
mkdir -p "$out"
part=${1:?say which part: mnist, fashion, likelihood, long or tracking}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site || exit 1
export PATH=/tmp/site/bin:$PATH
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
step() {
  local name=$1 start=$SECONDS; shift
  echo "== $name" | tee -a "$out/log.txt"
  "$@" 2>&1 | tee -a "$out/log.txt"
  echo "($name: $((SECONDS - start)) s wall)" | tee -a "$out/log.txt"
}
if [ "$part" = mnist ]; then
  step "recorded steps on the GPU" timeout 120 python3 -P -m pytest -q -p no:cacheprovider \
    tests/test_graphstep.py tests/test_eval_resume.py -k gpu  # -P: import the installed zoo, not ./zoo
  step "lab-basic ConvAE, batch 256" timeout 150 python3 benchmarks/bench_convae.py --device cuda --epochs 6 \
    --ref-epochs 3 --pythae --variant eager: --variant graph:cuda_graph=true \
    --variant graph-nchw:cuda_graph=true,channels_last=false --variant graph-compiled:cuda_graph=true,compile=true
  step "64 same-shape trials" timeout 150 python3 benchmarks/bench_trials.py --device cuda --trials 64 --epochs 3 \
    --cuda-graph
elif [ "$part" = likelihood ]; then
  deadline=$((SECONDS + ${BUDGET_S:-540}))
  left() { echo $((deadline - SECONDS)); }
  gpu=(--set device=${DEVICE:-cuda} --set cuda_graph=true)  # DEVICE=cpu: a dry run of this script
  # A row's seconds beside its epochs: the process's start, the first epoch's recording and the K = 1,000 bound
  # (the pixel layers' bound took 67 s on the H200, 2026-12-04; every other row's 15-19 s).
  overhead() { case $1 in convhvae-*) echo 120 ;; *) echo 60 ;; esac; }
  row() {  # ROW SECONDS [model_zoo.py options]: train and measure; if stopped at its time, measure its best epoch
    local name=$1 cap=$2; shift 2
    if [ "$cap" -lt 30 ]; then echo "likelihood row $name: no time left, not run" | tee -a "$out/log.txt"; return; fi
    step "likelihood row $name" timeout "$cap" python3 benchmarks/model_zoo.py "$name" --k 1000 \
      ${LIMIT:+--limit "$LIMIT"} --out "/tmp/runs/$name" "${gpu[@]}" "$@"
    if ! grep -q "\"row\": \"$name\"" "$out/log.txt" && [ -f "/tmp/runs/$name/model.safetensors" ]; then
      step "likelihood row $name, best epoch so far" timeout "$(overhead "$name")" python3 benchmarks/model_zoo.py \
        "$name" --k 1000 ${LIMIT:+--limit "$LIMIT"} --run "/tmp/runs/$name"
    fi
    tar -C /tmp/runs -cf "$out/$name.tar" --exclude=checkpoint.safetensors --exclude='*.png' --exclude=.zoo.lock "$name"
  }
  fit() {  # MODEL SECONDS RESERVE: the epochs of MODEL's measured epoch time that fit in SECONDS less RESERVE
           # (the process's start, the first epoch's recording and the bound); 0 when its time was not measured
    python3 -c "import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')]
s = [r['model_epoch_s'] for r in rows if r['model'] == sys.argv[2]]
print(min(400, int((float(sys.argv[3]) - float(sys.argv[4])) / s[0])) if s else 0)" "$out/epochs.jsonl" "$1" "$2" "$3"
  }
  if [ "${TESTS:-1}" != 0 ]; then  # 7 passed in 56 s on 2026-12-04 (second GPU session)
    step "recorded steps on the GPU" timeout 90 python3 -P -m pytest -q -p no:cacheprovider \
      tests/test_graphstep.py tests/test_eval_resume.py -k gpu
  fi
  step "epoch times against the VAE's" timeout 100 python3 benchmarks/likelihood_epoch.py --epochs 2 "${gpu[@]}" \
    --models "${PROBE:-convhvae-vampprior,hvae-vampprior,hvae-vampprior-d128,hvae-vampprior-d128-r10}" | tee "$out/epochs.jsonl"
  # The rows in ROWS, in turn, each given an equal share of the time left and trained for the epochs its measured
  # epoch time allows there (a cosine schedule ends where it is planned to: better than a longer run cut short; a
  # row not measured, or with under 10 epochs' time, trains its own epochs and is stopped at its share).
  set -- ${ROWS:-convhvae-vampprior}
  while [ $# -gt 0 ]; do
    name=$1; shift
    case $name in piwae|miwae) probe=$name-8x8 ;; *) probe=$name ;; esac
    share=$(( $(left) / ($# + 1) ))
    epochs=$(fit "$probe" $share "$(overhead "$name")")
    echo "$name: $epochs epochs fit in $share s" | tee -a "$out/log.txt"
    if [ "$epochs" -ge 10 ]; then row "$name" $((share + 20)) --epochs "$epochs"; else row "$name" "$share"; fi
  done
elif [ "$part" = long ]; then
  # One row trained across calls, for a schedule longer than one call (the convHVAE, issue 15): the first call
  # trains ROW for EPOCHS until BUDGET_S and returns the run with its checkpoint as $OUT/ROW.tar; each next call
  # resumes it, from /tmp/runs on a warm machine, or on a fresh one from the tar carried back unpacked in .runs/;
  # once its epochs are done, the K = 1,000 bound over the test set (67 s for the convHVAE on the H200).
  name=${ROW:-convhvae-vampprior}
  run=/tmp/runs/$name
  mkdir -p /tmp/runs
  if [ ! -f "$run/checkpoint.safetensors" ] && [ -f ".runs/$name/checkpoint.safetensors" ]; then
    cp -r ".runs/$name" /tmp/runs/
  fi
  if [ -f "$run/checkpoint.safetensors" ]; then
    step "long row $name, resumed" timeout "${BUDGET_S:-520}" python3 benchmarks/model_zoo.py "$name" --k 1000 \
      ${LIMIT:+--limit "$LIMIT"} --resume --out "$run"
  else
    step "long row $name" timeout "${BUDGET_S:-520}" python3 benchmarks/model_zoo.py "$name" --k 1000 \
      ${LIMIT:+--limit "$LIMIT"} --epochs "${EPOCHS:-340}" --out "$run" --set device="${DEVICE:-cuda}" \
      --set cuda_graph=true
  fi
  tar -C /tmp/runs -cf "$out/$name.tar" --exclude='*.png' --exclude=.zoo.lock "$name"
elif [ "$part" = tracking ]; then
  step "logging cost, TensorBoard on and off" timeout 230 python3 benchmarks/bench_convae.py --device cuda \
    --epochs 6 --ref-epochs 1 --rounds 5 --variant plain:cuda_graph=true,plot_every=1 \
    --variant tensorboard:cuda_graph=true,loggers=tensorboard,plot_every=1
else
  step "Fashion-MNIST report search, 80 trials x 30 epochs" timeout 330 zoo search convae \
    --space report-000-fashion-random --vectorize 80 --set cuda_graph=true --device cuda --out "$out/fashion80"
fi
