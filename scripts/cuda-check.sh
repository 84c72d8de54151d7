#!/usr/bin/env bash
# Compiles the `cuda` feature as `scripts/setup.sh --cuda` does, in its own
# target folder beside the default one (both stay warm), for one architecture
# (WORKLY_CUDA_ARCHS, 90 unless set), and checks that the binary holds CUDA
# code. It runs nothing on a GPU. The test command leaves it out: from cold it
# takes longer than the whole suite (see docs/PERFORMANCE.md, "GPUs").
#
#   scripts/cuda-check.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
target="${CARGO_TARGET_DIR:-$repo/target}-cuda"
start=$(date +%s)
CARGO_TARGET_DIR="$target" WORKLY_CUDA_ARCHS=${WORKLY_CUDA_ARCHS:-90} "$repo/scripts/setup.sh" --cuda
binary="$target/release/workly"
if ! readelf -SW "$binary" | grep -q '\.nv_fatbin'; then
  printf 'cuda-check: %s holds no CUDA code\n' "$binary" >&2
  exit 1
fi
printf 'cuda-check: %s built with CUDA code in %s s\n' "$binary" "$(($(date +%s) - start))" >&2
