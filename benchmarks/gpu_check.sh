#!/usr/bin/env bash
# The GPU figures of issues 2 and 4, prepared to run on a GPU machine without a network:
#   bash benchmarks/gpu_check.sh mnist      # carry .whl .data/mnist; about 5 minutes on an H100 / H200:
#       the recorded-step tests on the GPU (cuda_graph: single models, vectorised trials); the lab-basic
#       ConvAE against the reference loop and pythae's trainer (zoo eager, cuda_graph, cuda_graph without
#       channels-last, cuda_graph with compiled layers);
#       64 same-shape trials at once (eager vmap and recorded)
#   bash benchmarks/gpu_check.sh fashion    # carry .whl .data/fashion-mnist (about 61 of the 64 MiB a call
#                                           # may send, with the working tree); at most 5.5 minutes:
#       the Fashion-MNIST report's random search, 80 trials x 30 epochs, wall time
#   bash benchmarks/gpu_check.sh likelihood # carry .whl .data/mnist; at most 9 minutes (issue 15): the
#       IWAE-50 and PIWAE rows of docs/model-zoo.md, 40 epochs each recorded in a CUDA graph, and their
#       -log p(x) over the 10,000 binarised test images with K = 1,000 (benchmarks/model_zoo.py)
#   bash benchmarks/gpu_check.sh tracking   # carry .whl .data/mnist; at most 4 minutes (issue 16): the lab
#       ConvAE with TensorBoard on and off, side by side, recorded in a CUDA graph (the logging cost)
# Prepare them with benchmarks/gpu_prepare.sh. Logs go to $OUT (or ./gpu-check).
set -uo pipefail
export PYTHONUNBUFFERED=1 ZOO_DATA_DIR=$PWD/.data
out=${OUT:-gpu-check}
mkdir -p "$out"
part=${1:?say which part: mnist, fashion, likelihood or tracking}
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
    tests/test_graphstep.py -k gpu  # -P: import the installed zoo, not ./zoo
  step "lab-basic ConvAE, batch 256" timeout 150 python3 benchmarks/bench_convae.py --device cuda --epochs 6 \
    --ref-epochs 3 --pythae --variant eager: --variant graph:cuda_graph=true \
    --variant graph-nchw:cuda_graph=true,channels_last=false --variant graph-compiled:cuda_graph=true,compile=true
  step "64 same-shape trials" timeout 150 python3 benchmarks/bench_trials.py --device cuda --trials 64 --epochs 3 \
    --cuda-graph
elif [ "$part" = likelihood ]; then
  for row in iwae-k50 piwae; do
    step "likelihood row $row" timeout 260 python3 benchmarks/model_zoo.py $row --k 1000 --out "$out/$row" \
      --set device=cuda --set cuda_graph=true
  done
elif [ "$part" = tracking ]; then
  step "logging cost, TensorBoard on and off" timeout 230 python3 benchmarks/bench_convae.py --device cuda \
    --epochs 6 --ref-epochs 1 --rounds 5 --variant plain:cuda_graph=true,plot_every=1 \
    --variant tensorboard:cuda_graph=true,loggers=tensorboard,plot_every=1
else
  step "Fashion-MNIST report search, 80 trials x 30 epochs" timeout 330 zoo search convae \
    --space report-000-fashion-random --vectorize 80 --set cuda_graph=true --device cuda --out "$out/fashion80"
fi
