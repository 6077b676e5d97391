#!/usr/bin/env bash
# Prepare, on a machine with a network, what benchmarks/gpu_check.sh needs on a GPU machine without one:
# the MNIST and Fashion-MNIST files in .data/ and wheels in .whl/: zoo as committed (HEAD, without its
# bundled weights, which the benchmarks do not use), Optuna and pythae (the speed comparison's other
# library) and TensorBoard (the logging cost, issue 16) with what they need beyond the GPU machine's packages. Both folders are git-ignored. Carry .whl and .data/mnist for `gpu_check.sh mnist`, .whl and .data/fashion-mnist for
# `gpu_check.sh fashion` (one data set a call).
#
# A call carries the tracked working tree too, and since the bundled weights grew (67 MiB tracked since 2026-12-04)
# the tree alone is over the 64 MiB: for the call, take the GAN weight folders (36 MB, which no benchmark
# reads) out of git's index, and put them back after:
#   git rm -r -q --cached zoo/weights/gan-mnist zoo/weights/gan-fashion-mnist zoo/weights/cgan-mnist \
#     zoo/weights/cgan-fashion-mnist && printf '/zoo/weights/%s/\n' gan-mnist gan-fashion-mnist cgan-mnist \
#     cgan-fashion-mnist >> .git/info/exclude            # before the call
#   git reset -q && sed -i '/zoo\/weights\//d' .git/info/exclude       # after it
#
#   bash benchmarks/gpu_prepare.sh [DATASETS_DIR]      # default ../shared/datasets
set -euo pipefail
src=${1:-../shared/datasets}
mkdir -p .data .whl
rm -rf .data/mnist .data/fashion-mnist .whl/*.whl
cp -r "$src/mnist" "$src/fashion-mnist" .data/
tree=$(mktemp -d)
git archive HEAD | tar -x -C "$tree"
rm -rf "$tree"/zoo/weights/*
python3 -m pip wheel -q --no-deps -w .whl "$tree"
rm -rf "$tree"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl optuna alembic sqlalchemy greenlet colorlog mako pythae pydantic pydantic-core annotated-types \
  typing-inspection typing-extensions tensorboard protobuf absl-py
du -sh .data .whl
git ls-files -z | xargs -0 stat -c %s | awk '{t += $1} END {printf "tracked working tree (a call carries it too): %.1f MiB\n", t / 1048576}'
