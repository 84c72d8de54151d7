//! `workly::model::pull` against a real HTTP server on localhost.
//!
//! The server is a few dozen lines of `std::net` in a thread: it serves files
//! from memory, answers `Range: bytes=N-` with 206 (or 416 past the end), can
//! ignore ranges, and can cut a response short to simulate a dropped
//! connection. It records every request so tests can see what was asked for.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use sha2::{Digest, Sha256};
use workly::error::{Class, Classify};
use workly::model::{self, LocateError, PullError, PullOptions};

/// URL path under which the default model is served.
const MODEL_URL_PATH: &str = "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The default model's bytes, read once for all tests.
fn model_bytes() -> Arc<Vec<u8>> {
    static BYTES: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    BYTES.get_or_init(|| Arc::new(std::fs::read(common::small_model()).expect("read the default model"))).clone()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The default model's SHA-256, computed from the source file.
fn model_sha256() -> String {
    static SHA: OnceLock<String> = OnceLock::new();
    SHA.get_or_init(|| sha256_hex(&model_bytes())).clone()
}

fn file_sha256(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).expect("read the download"))
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct SeenRequest {
    path: String,
    range: Option<String>,
}

#[derive(Default)]
struct ServerState {
    files: HashMap<String, Arc<Vec<u8>>>,
    /// Cut the next response body after this many bytes (once).
    cut_next_after_bytes: Option<usize>,
    /// Answer range requests with the whole file (200), like servers without range support.
    ignore_ranges: bool,
    requests: Vec<SeenRequest>,
}

struct TestServer {
    base_url: String,
    state: Arc<Mutex<ServerState>>,
}

impl TestServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        let base_url = format!("http://{}", listener.local_addr().expect("local address"));
        let state = Arc::new(Mutex::new(ServerState::default()));
        let accept_state = Arc::clone(&state);
        // The accept loop lives until the test process ends.
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&accept_state);
                thread::spawn(move || handle(stream, &state));
            }
        });
        Self { base_url, state }
    }

    fn serve(&self, url_path: &str, bytes: Arc<Vec<u8>>) {
        self.lock().files.insert(url_path.to_owned(), bytes);
    }

    fn url(&self, url_path: &str) -> String {
        format!("{}{url_path}", self.base_url)
    }

    fn cut_next_response_after(&self, bytes: usize) {
        self.lock().cut_next_after_bytes = Some(bytes);
    }

    fn ignore_ranges(&self) {
        self.lock().ignore_ranges = true;
    }

    fn requests(&self) -> Vec<SeenRequest> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ServerState> {
        self.state.lock().expect("server state lock")
    }
}

fn handle(stream: TcpStream, state: &Mutex<ServerState>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut range = None;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {
                if let Some((name, value)) = line.split_once(':')
                    && name.trim().eq_ignore_ascii_case("range")
                {
                    range = Some(value.trim().to_owned());
                }
            }
        }
    }

    let (file, cut_after, ignore_ranges) = {
        let mut state = state.lock().expect("server state lock");
        state.requests.push(SeenRequest { path: path.clone(), range: range.clone() });
        let file = state.files.get(&path).cloned();
        let cut_after = if file.is_some() { state.cut_next_after_bytes.take() } else { None };
        (file, cut_after, state.ignore_ranges)
    };
    let mut stream = stream;
    let Some(file) = file else {
        let body = b"not found";
        let _ = write!(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        let _ = stream.write_all(body);
        return;
    };
    let start = range
        .filter(|_| !ignore_ranges)
        .and_then(|range| range.strip_prefix("bytes=")?.strip_suffix('-')?.parse::<usize>().ok());
    let head = match start {
        Some(start) if start >= file.len() => {
            let _ = write!(
                stream,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n",
                file.len()
            );
            return;
        }
        Some(start) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            file.len() - 1,
            file.len(),
            file.len() - start
        ),
        None => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            file.len()
        ),
    };
    let body = &file[start.unwrap_or(0)..];
    let body = &body[..cut_after.map_or(body.len(), |cut| cut.min(body.len()))];
    // The client may hang up early; that is its business.
    if stream.write_all(head.as_bytes()).is_ok() && stream.write_all(body).is_ok() {
        let _ = stream.flush();
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// A server with the default model on it and an empty download directory.
fn setup() -> (TestServer, tempfile::TempDir) {
    let server = TestServer::start();
    server.serve(MODEL_URL_PATH, model_bytes());
    (server, tempfile::tempdir().expect("temp dir"))
}

fn quiet(sha256: Option<String>) -> PullOptions {
    PullOptions { sha256, progress: false }
}

fn part_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().expect("file name").to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

fn final_path(dir: &Path) -> PathBuf {
    dir.join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

#[test]
fn full_download_checks_sha256_and_lands_in_place() {
    let (server, dir) = setup();
    let expected = model_sha256().to_ascii_uppercase();
    let path = model::pull(&server.url(MODEL_URL_PATH), dir.path(), &quiet(Some(expected))).expect("download");
    assert_eq!(path, final_path(dir.path()));
    assert_eq!(file_sha256(&path), model_sha256());
    assert!(!part_of(&path).exists(), "the .part file is renamed away");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, MODEL_URL_PATH);
    assert_eq!(requests[0].range, None);
}

#[test]
fn a_dropped_connection_is_resumed_with_a_range_request() {
    let (server, dir) = setup();
    let url = server.url(MODEL_URL_PATH);
    let cut_bytes = 30_000_000;
    server.cut_next_response_after(cut_bytes);
    let error = model::pull(&url, dir.path(), &quiet(Some(model_sha256()))).expect_err("cut off");
    assert!(matches!(error, PullError::Network { .. }), "{error}");
    assert!(error.to_string().contains("resume"), "{error}");
    let dest = final_path(dir.path());
    assert!(!dest.exists(), "nothing lands in place after a failure");
    let partial_bytes = std::fs::metadata(part_of(&dest)).expect("the .part file is kept").len();
    assert!(partial_bytes > 0 && partial_bytes <= cut_bytes as u64, "{partial_bytes}");

    let path = model::pull(&url, dir.path(), &quiet(Some(model_sha256()))).expect("resumed download");
    assert_eq!(path, dest);
    assert_eq!(file_sha256(&path), model_sha256());
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].range, Some(format!("bytes={partial_bytes}-")));
}

#[test]
fn a_server_ignoring_ranges_makes_the_download_start_over() {
    let (server, dir) = setup();
    server.ignore_ranges();
    let dest = final_path(dir.path());
    std::fs::write(part_of(&dest), vec![0xEE; 4096]).expect("write a stale .part");
    let path =
        model::pull(&server.url(MODEL_URL_PATH), &dest, &quiet(Some(model_sha256()))).expect("download from scratch");
    assert_eq!(file_sha256(&path), model_sha256());
    assert_eq!(server.requests()[0].range.as_deref(), Some("bytes=4096-"));
}

#[test]
fn a_complete_part_file_is_finished_after_a_416() {
    let (server, dir) = setup();
    let dest = dir.path().join("sub").join("model.gguf");
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    std::fs::write(part_of(&dest), model_bytes().as_slice()).expect("write a complete .part");
    let path = model::pull(&server.url(MODEL_URL_PATH), &dest, &quiet(None)).expect("finish");
    assert_eq!(path, dest);
    assert_eq!(file_sha256(&path), model_sha256());
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].range, Some(format!("bytes={}-", model_bytes().len())));
}

#[test]
fn a_wrong_sha256_is_an_error_and_leaves_no_file() {
    let (server, dir) = setup();
    let wrong = "0".repeat(64);
    let error = model::pull(&server.url(MODEL_URL_PATH), dir.path(), &quiet(Some(wrong.clone())))
        .expect_err("checksum mismatch");
    let message = error.to_string();
    assert!(matches!(error, PullError::Checksum { .. }), "{message}");
    assert_eq!(error.class(), Class::Failure, "the bytes that arrived are wrong, not the request");
    assert!(message.contains(&wrong) && message.contains(&model_sha256()), "{message}");
    assert!(!message.contains('\n'));
    let dest = final_path(dir.path());
    assert!(!dest.exists());
    assert!(!part_of(&dest).exists(), "the bad download is deleted");
}

#[test]
fn a_missing_file_gives_a_clear_http_error() {
    let (server, dir) = setup();
    let error = model::pull(&server.url("/models/nope.gguf"), dir.path(), &quiet(None)).expect_err("404");
    let message = error.to_string();
    assert!(matches!(error, PullError::HttpStatus { .. }), "{message}");
    assert_eq!(error.class(), Class::Failure);
    assert!(message.contains("404 Not Found") && message.contains("/models/nope.gguf"), "{message}");
    assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0, "nothing written");
}

#[test]
fn a_file_that_is_not_gguf_is_rejected() {
    let (server, dir) = setup();
    let page = b"<!DOCTYPE html><html><body>Sign in to download</body></html>".to_vec();
    server.serve("/models/fake.gguf", Arc::new(page));
    let error = model::pull(&server.url("/models/fake.gguf"), dir.path(), &quiet(None)).expect_err("not GGUF");
    let message = error.to_string();
    assert!(matches!(error, PullError::NotGguf { .. }), "{message}");
    assert_eq!(error.class(), Class::BadInput);
    assert!(message.contains("not a GGUF file"), "{message}");
    assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0, "nothing left behind");
}

#[test]
fn a_bad_sha256_value_is_refused_before_downloading() {
    let (server, dir) = setup();
    let error =
        model::pull(&server.url(MODEL_URL_PATH), dir.path(), &quiet(Some("abc".into()))).expect_err("bad sha256");
    assert!(matches!(error, PullError::BadSha256 { .. }), "{error}");
    assert_eq!(error.class(), Class::BadInput);
    assert!(server.requests().is_empty());
}

#[test]
fn resolve_downloads_a_url_once() {
    let (server, dir) = setup();
    let models_dir = dir.path().join("models");
    let url = server.url(MODEL_URL_PATH);
    let path = model::resolve(Some(&url), &models_dir).expect("download through resolve");
    assert_eq!(path, final_path(&models_dir));
    assert_eq!(file_sha256(&path), model_sha256());
    let again = model::resolve(Some(&url), &models_dir).expect("already there");
    assert_eq!(again, path);
    assert_eq!(server.requests().len(), 1, "the second resolve does not download");

    let error = model::resolve(Some(&server.url("/models/gone.gguf")), &models_dir).expect_err("404 through resolve");
    assert!(matches!(error, LocateError::Pull(PullError::HttpStatus { .. })), "{error}");
    assert_eq!(error.class(), Class::Failure, "a download that fails is a failure, through resolve too");
}

#[test]
fn the_exit_code_says_whether_the_request_or_the_download_failed() {
    let (server, dir) = setup();
    let pull = |args: &[&str]| {
        common::workly_in(dir.path()).args(["model", "pull"]).args(args).arg("--no-progress").output().unwrap()
    };
    let bad = pull(&[&server.url(MODEL_URL_PATH), "--sha256", "abc"]);
    common::assert_bad_input(&bad, &["abc", "hex"]);
    let missing = pull(&[&server.url("/models/nope.gguf")]);
    let stderr = common::text(&missing.stderr);
    assert_eq!(missing.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("404 Not Found") && stderr.trim_end().lines().count() == 1, "{stderr}");
    assert!(
        server.requests().iter().all(|request| request.path == "/models/nope.gguf"),
        "no download for a bad checksum"
    );
}
