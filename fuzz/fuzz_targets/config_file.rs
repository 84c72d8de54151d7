//! The config file parser on arbitrary text, read both as a config file
//! (`cli::FileConfig`) and as a persona file (`config::PersonaConfig`).
//!
//! Checks that it never panics and that every error is one line naming the
//! file, as Workly prints it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use workly::cli::FileConfig;
use workly::config::{ConfigError, PersonaConfig, parse_toml};

fn check_error<T>(result: Result<T, ConfigError>) {
    if let Err(error) = result {
        let message = error.to_string();
        assert!(message.starts_with("invalid config file `fuzz.toml`: "), "{message:?}");
        assert!(!message.contains('\n'), "{message:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("fuzz.toml");
    check_error(FileConfig::parse(path, text));
    check_error(parse_toml::<PersonaConfig>(path, text));
});
