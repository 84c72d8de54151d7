//! The persona's KV cache, kept on disk between runs.
//!
//! Every conversation starts with the same system prompt, so its keys and
//! values are the same every time Workly starts. Warm-up saves them once per
//! model and persona (llama.cpp's sequence-state file, with the tokens it
//! holds) and later starts load them instead of prefilling again, which is
//! most of what stands between starting `workly chat -p` and its first token.
//! A file is only trusted when its tokens match the prompt exactly and its key
//! matches everything that shapes the cache: Workly and llama.cpp versions, the
//! model file (name, size, modification time) and the cache layout.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Saved prompts kept at most; older ones are removed first.
const MAX_FILES: usize = 8;
/// File name extension of saved prompt states.
const EXTENSION: &str = "kvstate";

/// Where the state of `tokens` for this model and layout is saved.
/// `layout` names the cache settings that change a state's bytes.
pub fn path_for(dir: &Path, model: &Path, tokens: &[i32], layout: &str) -> PathBuf {
    let mut hasher = Sha256::new();
    hasher.update(concat!("workly ", env!("CARGO_PKG_VERSION"), " llama-cpp-2 0.1.160\n"));
    if let Ok(metadata) = std::fs::metadata(model) {
        hasher.update(metadata.len().to_le_bytes());
        if let Ok(modified) = metadata.modified().map(|m| m.duration_since(std::time::UNIX_EPOCH)) {
            hasher.update(modified.unwrap_or_default().as_nanos().to_le_bytes());
        }
    }
    hasher.update(model.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
    hasher.update(layout.as_bytes());
    for token in tokens {
        hasher.update(token.to_le_bytes());
    }
    dir.join(format!("{}.{EXTENSION}", hex::encode(&hasher.finalize()[..16])))
}

/// A temporary name beside `path`, renamed into place once written, so a
/// crash never leaves a half-written state under the real name.
pub fn temporary_path(path: &Path) -> PathBuf {
    path.with_extension(format!("{EXTENSION}.tmp{}", std::process::id()))
}

/// Removes the oldest saved states beyond [`MAX_FILES`].
pub fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|e| e == EXTENSION))
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .collect();
    if files.len() <= MAX_FILES {
        return;
    }
    files.sort();
    for (_, path) in &files[..files.len() - MAX_FILES] {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_tokens_layout_and_model() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.gguf");
        std::fs::write(&model, b"GGUF").unwrap();
        let base = path_for(dir.path(), &model, &[1, 2, 3], "a");
        assert_eq!(base, path_for(dir.path(), &model, &[1, 2, 3], "a"));
        assert_ne!(base, path_for(dir.path(), &model, &[1, 2, 4], "a"));
        assert_ne!(base, path_for(dir.path(), &model, &[1, 2, 3], "b"));
        std::fs::write(&model, b"GGUF and more").unwrap();
        assert_ne!(base, path_for(dir.path(), &model, &[1, 2, 3], "a"));
    }

    #[test]
    fn prune_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        for index in 0..MAX_FILES + 3 {
            let path = dir.path().join(format!("{index:02}.{EXTENSION}"));
            std::fs::write(&path, b"x").unwrap();
            let time = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000 + index as u64);
            std::fs::File::options().write(true).open(&path).unwrap().set_modified(time).unwrap();
        }
        std::fs::write(dir.path().join("other.txt"), b"kept").unwrap();
        prune(dir.path());
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left.len(), MAX_FILES + 1);
        assert_eq!(left[0], format!("03.{EXTENSION}"));
        assert!(left.contains(&"other.txt".to_owned()));
    }
}
