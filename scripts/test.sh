#!/usr/bin/env bash
# Sets up Workly with both test models and runs the whole test suite: format,
# lints, unit and integration tests (which drive the real binary on the real
# models). Everything builds in release mode, so llama.cpp is compiled once.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
scripts/setup.sh --tests
cargo fmt --all -- --check
cargo clippy --release --all-targets --quiet -- -D warnings
# One test at a time: each engine already uses every core, and llama.cpp's
# OpenMP threads spin while they wait, so parallel engines would starve each other.
cargo test --release -- --test-threads=1
