#!/usr/bin/env bash
# Sets up Workly with both test models and runs the whole test suite of the
# workspace (Workly and its developer benchmarks, `bench/`): format, lints,
# unit and integration tests (which drive the real binaries on the real
# models). Everything builds in release mode, so llama.cpp is compiled once.
# The `vulkan` feature is built too, in its own target folder, and its tests
# (tests/vulkan.rs) run it on Mesa's software Vulkan device: there is no GPU
# here.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
scripts/setup.sh --tests --vulkan
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets --quiet -- -D warnings
# In its own target directory, beside the default one, so both stay warm.
# With the Vulkan headers and glslc setup.sh put in the cache where the system's are too old.
cache_dir=${WORKLY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/workly}
# shellcheck source=scripts/vulkan-env.sh
. scripts/vulkan-env.sh
vulkan_target="${CARGO_TARGET_DIR:-$repo/target}-vulkan"
CARGO_TARGET_DIR="$vulkan_target" cargo build --release --features vulkan --bins --quiet
export WORKLY_VULKAN_BINARY="$vulkan_target/release/workly"
# One test at a time: each engine already uses every core, and llama.cpp's
# OpenMP threads spin while they wait, so parallel engines would starve each other.
cargo test --release --workspace -- --test-threads=1
