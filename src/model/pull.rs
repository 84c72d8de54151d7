//! Downloading GGUF models over HTTP(S).
//!
//! [`pull`] owns the download protocol: it writes to `<dest>.part`, resumes a
//! partial file with a `Range` request, shows progress on stderr, checks an
//! optional SHA-256, validates the result as GGUF and only then renames it into
//! place, so the final path never holds a partial or corrupt model.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};
use thiserror::Error;
use ureq::http::StatusCode;

use super::gguf::{GgufError, GgufFile};

/// How long to wait for a connection to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one read from the server may stall before the download fails
/// (the partial file is kept, so running again resumes).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Size of the copy and hashing buffer.
const CHUNK_BYTES: usize = 1 << 20;

/// Length of a SHA-256 digest written in hex.
const SHA256_HEX_LEN: usize = 64;

/// Settings for one download.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullOptions {
    /// Expected SHA-256 of the whole file, in hex (either case).
    pub sha256: Option<String>,
    /// Whether to draw a progress bar on stderr.
    pub progress: bool,
}

/// Why a download failed; each message is one line.
#[derive(Debug, Error)]
pub enum PullError {
    /// The URL does not name a file to save.
    #[error("cannot download {url}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The expected checksum is not a SHA-256 hex digest.
    #[error("the expected sha256 {value:?} is not {SHA256_HEX_LEN} hex digits")]
    BadSha256 {
        /// The value given.
        value: String,
    },
    /// The server answered with an error status.
    #[error("download of {url} failed: the server answered HTTP {status}")]
    HttpStatus {
        /// The URL.
        url: String,
        /// The status line's code and reason, e.g. `404 Not Found`.
        status: String,
    },
    /// The connection failed or broke off; what arrived is kept for a resume.
    #[error("download of {url} failed: {detail}{}", resume_hint(*.kept_bytes))]
    Network {
        /// The URL.
        url: String,
        /// What went wrong.
        detail: String,
        /// Bytes kept in the `.part` file, which the next attempt resumes from.
        kept_bytes: u64,
    },
    /// A local file could not be written, read or renamed.
    #[error("cannot write the download to {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The downloaded bytes do not have the expected SHA-256; the file was deleted.
    #[error(
        "checksum mismatch for {url}: expected sha256 {expected} but the download has {actual} \
         (the file was deleted)"
    )]
    Checksum {
        /// The URL.
        url: String,
        /// The digest that was asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// The download is not a valid GGUF model; the file was deleted.
    #[error("{url} is not a usable GGUF model (the file was deleted): {source}")]
    NotGguf {
        /// The URL.
        url: String,
        /// What the GGUF reader found.
        #[source]
        source: GgufError,
    },
}

impl crate::error::Classify for PullError {
    /// Bad input when the URL, the checksum asked for or the file is; a
    /// failure when the server, the network or the disk is.
    fn class(&self) -> crate::error::Class {
        use crate::error::Class;
        match self {
            Self::BadUrl { .. } | Self::BadSha256 { .. } | Self::NotGguf { .. } => Class::BadInput,
            Self::HttpStatus { .. } | Self::Network { .. } | Self::Io { .. } | Self::Checksum { .. } => Class::Failure,
        }
    }
}

/// Downloads the GGUF model at `url` to `dest` and returns the final path.
///
/// If `dest` is an existing directory the file keeps the name from the URL's
/// last path segment. Bytes go to `<file>.part` first; an existing `.part` is
/// resumed with a `Range` request. The finished file is checked against
/// `options.sha256` (if given) and validated as GGUF before it is renamed into
/// place; a file failing either check is deleted so a retry starts clean.
pub fn pull(url: &str, dest: &Path, options: &PullOptions) -> Result<PathBuf, PullError> {
    let expected_sha256 = options.sha256.as_deref().map(normalize_sha256).transpose()?;
    let final_path = if dest.is_dir() { dest.join(file_name_from_url(url)?) } else { dest.to_path_buf() };
    let part_path = part_path_for(&final_path).ok_or_else(|| PullError::BadUrl {
        url: url.to_owned(),
        reason: format!("{} is not a file path", final_path.display()),
    })?;
    if let Some(parent) = final_path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|source| io_error(parent, source))?;
    }

    let agent = agent();
    download(&agent, url, &part_path, options.progress)?;

    if let Some(expected) = expected_sha256 {
        let actual = sha256_file(&part_path)?;
        if actual != expected {
            remove_quietly(&part_path);
            return Err(PullError::Checksum { url: url.to_owned(), expected, actual });
        }
    }
    if let Err(source) = GgufFile::open(&part_path) {
        remove_quietly(&part_path);
        return Err(PullError::NotGguf { url: url.to_owned(), source });
    }
    fs::rename(&part_path, &final_path).map_err(|source| io_error(&final_path, source))?;
    tracing::info!(url, path = %final_path.display(), "model downloaded");
    Ok(final_path)
}

/// The file name a download of `url` is saved under: its last path segment,
/// without query or fragment.
pub fn file_name_from_url(url: &str) -> Result<String, PullError> {
    let bad = |reason: &str| PullError::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
    let (_, after_scheme) = url.split_once("://").ok_or_else(|| bad("it is not an http:// or https:// URL"))?;
    let without_suffix = after_scheme.split(['?', '#']).next().unwrap_or(after_scheme);
    let (_, url_path) = without_suffix.split_once('/').ok_or_else(|| bad("it has no path naming a file"))?;
    let name = url_path.rsplit('/').next().unwrap_or(url_path);
    let unsafe_name = name.is_empty() || name == "." || name == ".." || name.contains(['\\', '\0', ':']);
    if unsafe_name {
        return Err(bad("its last path segment is not a usable file name"));
    }
    Ok(name.to_owned())
}

/// Tells the user a partial download will be resumed, if there is one.
fn resume_hint(kept_bytes: u64) -> String {
    if kept_bytes > 0 {
        format!(" ({kept_bytes} bytes are kept; run the same command again to resume)")
    } else {
        String::new()
    }
}

/// `<file>.part` next to `final_path`.
fn part_path_for(final_path: &Path) -> Option<PathBuf> {
    let mut name = final_path.file_name()?.to_os_string();
    name.push(".part");
    Some(final_path.with_file_name(name))
}

/// Lower-case hex, after checking the value is a SHA-256 digest.
fn normalize_sha256(value: &str) -> Result<String, PullError> {
    let trimmed = value.trim();
    if trimmed.len() == SHA256_HEX_LEN && trimmed.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(trimmed.to_ascii_lowercase())
    } else {
        Err(PullError::BadSha256 { value: value.to_owned() })
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        // Statuses are handled here: 206 and 416 are part of resuming.
        .http_status_as_error(false)
        // Range offsets count raw bytes, so compression must stay off.
        .accept_encoding("identity")
        .user_agent(concat!("workly/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(READ_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        .build()
        .new_agent()
}

fn io_error(path: &Path, source: io::Error) -> PullError {
    PullError::Io { path: path.to_path_buf(), source }
}

/// Deletes a file that failed a check; failing to delete it is only logged,
/// because the check's own error is the one worth reporting.
fn remove_quietly(path: &Path) {
    if let Err(error) = fs::remove_file(path) {
        tracing::warn!(path = %path.display(), %error, "could not delete a bad download");
    }
}

/// How the server answered the request for the rest of the file.
enum Plan {
    /// Write the body from byte `start_bytes` on (0: from scratch).
    Write { start_bytes: u64, total_bytes: Option<u64> },
    /// The `.part` file already holds the whole file.
    Complete,
    /// The partial file cannot be resumed; delete it and ask again from the start.
    Restart,
}

/// Fills `part_path` with the whole file, resuming what is already there.
fn download(agent: &ureq::Agent, url: &str, part_path: &Path, progress: bool) -> Result<(), PullError> {
    // At most two rounds: a resume attempt, then (if the server cannot resume)
    // one from scratch, which never asks for a range and so never restarts.
    for _ in 0..2 {
        let existing_bytes = match fs::metadata(part_path) {
            Ok(metadata) => metadata.len(),
            Err(error) if error.kind() == io::ErrorKind::NotFound => 0,
            Err(error) => return Err(io_error(part_path, error)),
        };
        let mut request = agent.get(url);
        if existing_bytes > 0 {
            tracing::info!(url, existing_bytes, "resuming a partial download");
            request = request.header("Range", format!("bytes={existing_bytes}-"));
        }
        let response = request.call().map_err(|error| PullError::Network {
            url: url.to_owned(),
            detail: error.to_string(),
            kept_bytes: existing_bytes,
        })?;
        match plan(url, &response, existing_bytes)? {
            Plan::Complete => return Ok(()),
            Plan::Restart => {
                tracing::info!(url, "the server cannot resume; starting over");
                fs::remove_file(part_path).map_err(|error| io_error(part_path, error))?;
            }
            Plan::Write { start_bytes, total_bytes } => {
                let body = response.into_body().into_reader();
                return write_body(url, body, part_path, start_bytes, total_bytes, progress);
            }
        }
    }
    Err(PullError::Network {
        url: url.to_owned(),
        detail: "the server keeps refusing to send the file from the start".to_owned(),
        kept_bytes: 0,
    })
}

/// Decides what to do with a response to a request for bytes `existing_bytes..`.
fn plan(url: &str, response: &ureq::http::Response<ureq::Body>, existing_bytes: u64) -> Result<Plan, PullError> {
    let header = |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok());
    let content_length = header("content-length").and_then(|value| value.trim().parse::<u64>().ok());
    match response.status() {
        // A full body: either no range was asked for, or the server ignores
        // ranges and the partial file must be overwritten.
        StatusCode::OK => Ok(Plan::Write { start_bytes: 0, total_bytes: content_length }),
        StatusCode::PARTIAL_CONTENT if existing_bytes > 0 => {
            match header("content-range").and_then(parse_content_range) {
                Some((start_bytes, total_bytes)) if start_bytes == existing_bytes => Ok(Plan::Write {
                    start_bytes,
                    total_bytes: total_bytes.or_else(|| content_length.map(|length| start_bytes + length)),
                }),
                _ => Ok(Plan::Restart),
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE if existing_bytes > 0 => {
            // The range starts at or past the end: the file is complete unless
            // the server says it is shorter than what is already here. Any other
            // damage is caught by the checksum and GGUF checks that follow.
            let total_bytes = header("content-range").and_then(parse_unsatisfied_range);
            match total_bytes {
                Some(total) if total != existing_bytes => Ok(Plan::Restart),
                _ => Ok(Plan::Complete),
            }
        }
        status => Err(PullError::HttpStatus {
            url: url.to_owned(),
            status: match status.canonical_reason() {
                Some(reason) => format!("{} {reason}", status.as_u16()),
                None => status.as_u16().to_string(),
            },
        }),
    }
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`) → `(START, TOTAL)`.
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let range = value.trim().strip_prefix("bytes ")?;
    let (span, total) = range.split_once('/')?;
    let (start, _) = span.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let total = total.trim().parse().ok();
    Some((start, total))
}

/// `bytes */TOTAL` (the form sent with 416) → TOTAL.
fn parse_unsatisfied_range(value: &str) -> Option<u64> {
    value.trim().strip_prefix("bytes */")?.trim().parse().ok()
}

/// Streams `body` into `part_path` starting at `start_bytes`.
fn write_body(
    url: &str,
    mut body: impl Read,
    part_path: &Path,
    start_bytes: u64,
    total_bytes: Option<u64>,
    progress: bool,
) -> Result<(), PullError> {
    let mut file =
        if start_bytes > 0 { OpenOptions::new().append(true).open(part_path) } else { File::create(part_path) }
            .map_err(|error| io_error(part_path, error))?;

    let bar = progress_bar(part_path, total_bytes, progress);
    bar.set_position(start_bytes);
    let mut written_bytes = start_bytes;
    let mut buffer = vec![0; CHUNK_BYTES];
    let outcome = loop {
        let read_len = match body.read(&mut buffer) {
            Ok(0) => break Ok(()),
            Ok(read_len) => read_len,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                break Err(PullError::Network {
                    url: url.to_owned(),
                    detail: format!("the connection broke after {written_bytes} bytes: {error}"),
                    kept_bytes: written_bytes,
                });
            }
        };
        if let Err(error) = file.write_all(&buffer[..read_len]) {
            break Err(io_error(part_path, error));
        }
        written_bytes += read_len as u64;
        bar.set_position(written_bytes);
    };
    // Whatever arrived stays on disk for a resume, so flush it even on failure.
    let synced = file.sync_all().map_err(|error| io_error(part_path, error));
    bar.finish_and_clear();
    outcome?;
    synced?;
    match total_bytes {
        Some(total) if written_bytes < total => Err(PullError::Network {
            url: url.to_owned(),
            detail: format!("the connection closed after {written_bytes} of {total} bytes"),
            kept_bytes: written_bytes,
        }),
        _ => Ok(()),
    }
}

fn progress_bar(part_path: &Path, total_bytes: Option<u64>, progress: bool) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total_bytes, ProgressDrawTarget::stderr());
    let template = if total_bytes.is_some() {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}"
    } else {
        "{msg} {bytes} {binary_bytes_per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let name = part_path
        .file_name()
        .map(|name| name.to_string_lossy().trim_end_matches(".part").to_owned())
        .unwrap_or_default();
    bar.set_message(name);
    bar
}

/// SHA-256 of a file's contents, in lower-case hex.
fn sha256_file(path: &Path) -> Result<String, PullError> {
    let mut file = File::open(path).map_err(|error| io_error(path, error))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; CHUNK_BYTES];
    loop {
        let read_len = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read_len) => read_len,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(io_error(path, error)),
        };
        hasher.update(&buffer[..read_len]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_come_from_the_last_path_segment() {
        let name = |url: &str| file_name_from_url(url).ok();
        assert_eq!(
            name("https://huggingface.co/org/repo/resolve/main/model.Q4_K_M.gguf?download=true"),
            Some("model.Q4_K_M.gguf".to_owned())
        );
        assert_eq!(name("http://127.0.0.1:8080/a/b.gguf#x"), Some("b.gguf".to_owned()));
        assert_eq!(name("https://example.com"), None);
        assert_eq!(name("https://example.com/"), None);
        assert_eq!(name("https://example.com/dir/"), None);
        assert_eq!(name("https://example.com/.."), None);
        assert_eq!(name("example.com/model.gguf"), None);
    }

    #[test]
    fn sha256_values_are_checked_and_normalized() {
        let upper = "AB".repeat(32);
        assert_eq!(normalize_sha256(&upper).ok(), Some("ab".repeat(32)));
        assert!(matches!(normalize_sha256("abc"), Err(PullError::BadSha256 { .. })));
        assert!(normalize_sha256(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn content_ranges_are_parsed() {
        assert_eq!(parse_content_range("bytes 100-199/200"), Some((100, Some(200))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_unsatisfied_range("bytes */200"), Some(200));
        assert_eq!(parse_unsatisfied_range("bytes 1-2/200"), None);
    }

    #[test]
    fn part_files_sit_next_to_the_final_file() {
        assert_eq!(part_path_for(Path::new("/m/model.gguf")), Some(PathBuf::from("/m/model.gguf.part")));
        assert_eq!(part_path_for(Path::new("/")), None);
    }
}
