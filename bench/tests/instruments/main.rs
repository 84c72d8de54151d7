//! `workly-bench` end to end: each instrument run, shortened, by the real
//! binary on the real default model (and, for the comparison, the original
//! Python stack), its report checked. One test binary for all of them, so
//! llama.cpp is linked once.

#[path = "../../../tests/common/mod.rs"]
mod common;

mod all;
mod compare;
mod parts;
mod soak;

use std::path::Path;
use std::process::Command;

/// `workly-bench --data-dir DIR`, with nothing read from the user's own settings.
fn bench_in(dir: &Path) -> Command {
    common::binary_in(Path::new(env!("CARGO_BIN_EXE_workly-bench")), dir)
}
