//! Workly's page, end to end: a real `workly serve` on the real model, its
//! page, modules, default avatar and doctor report over HTTP, then the page in
//! headless Chromium (driven by `tests/browser/page.mjs` with playwright-core):
//! the default avatar loads, a chat reply streams in, emotion events and
//! sliders move the avatar's expressions, the sample VRM 1.0 avatars load
//! from the file input, and the stored conversation is back after a reload;
//! and the memory panel (`tests/browser/memory.mjs`) shows what Kira learns,
//! edits it and forgets it; and Kira talks through the page
//! (`tests/browser/voice.mjs`): a fake microphone asks a question, she
//! answers aloud with her mouth moving, and Esc stops her. The browser test
//! saves a screenshot to its temporary directory and to
//! `target/page-screenshot.png`.

mod common;

use common::server::start;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `GET path` (HTTP/1.0, so the body is not chunked): status, head and body.
fn get(address: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|window| window == b"\r\n\r\n").expect("a complete response");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap();
    (status, head, raw[split + 4..].to_vec())
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_page_its_modules_the_avatar_and_the_doctor_report_are_served() {
    let server = start(&[]);
    let (status, head, body) = get(server.address, "/");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"));
    let policy = head.lines().find(|line| line.starts_with("content-security-policy:")).expect("a CSP");
    assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"), "{policy}");
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("/app/app.js") && html.contains("\"@pixiv/three-vrm\""));
    assert!(!html.contains("id=\"missing-modules\">"), "built with its modules (run scripts/setup.sh)");

    for path in [
        "/app/app.js",
        "/app/avatar.js",
        "/app/style.css",
        "/vendor/three/three.module.js",
        "/vendor/three/three.core.js",
        "/vendor/three/addons/loaders/GLTFLoader.js",
        "/vendor/three-vrm/three-vrm.module.min.js",
    ] {
        let (status, head, body) = get(server.address, path);
        assert_eq!(status, 200, "{path}");
        assert!(head.contains("x-content-type-options: nosniff"), "{path}");
        assert!(body.len() > 1000, "{path} has content");
    }
    assert_eq!(get(server.address, "/vendor/three/nothing.js").0, 404);
    assert_eq!(get(server.address, "/app/../Cargo.toml").0, 404);

    let (status, head, body) = get(server.address, "/avatar/default.vrm");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: model/gltf-binary"));
    assert_eq!(&body[..4], b"glTF");

    // Ready within a minute; the report then names the engine's settings.
    let mut report = serde_json::Value::Null;
    for _ in 0..600 {
        let (status, _, body) = get(server.address, "/v1/workly/doctor");
        assert_eq!(status, 200);
        report = serde_json::from_slice(&body).unwrap();
        if report["status"] == "ready" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(report["status"], "ready", "{report}");
    assert_eq!(report["model"], "SmolLM2-135M-Instruct.Q4_1");
    assert!(report["engine"]["context_size"].as_u64().unwrap() > 0);
    assert!(report["engine"]["threads_decode"].as_u64().unwrap() > 0);
    assert!(report["engine"]["gpu_layers"].is_u64());
    assert!(report["doctor"]["cpu"]["logical_cores"].as_u64().unwrap() > 0);
    assert!(report["doctor"]["memory"]["total_bytes"].as_u64().unwrap() > 0);
    assert!(report["doctor"]["gpus"].is_array());
}

/// Chromium, as `scripts/setup.sh --tests` installs it.
fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(path.is_file(), "{} is missing: run scripts/test.sh (it installs chromium)", path.display());
    path
}

/// The project's sample VRM files, in `shared/assets/vrm` beside the
/// repository. A clone elsewhere (CI clones to a temporary directory) finds
/// them beside the repository it was cloned from; `WORKLY_SHARED_DIR` names
/// the shared directory outright.
fn sample_avatars() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("WORKLY_SHARED_DIR").map(PathBuf::from).into_iter().collect();
    candidates.push(repo().join("../shared"));
    let origin = Command::new("git").args(["config", "--get", "remote.origin.url"]).current_dir(repo()).output();
    if let Ok(origin) = origin {
        let url = String::from_utf8_lossy(&origin.stdout).trim().to_owned();
        let path = Path::new(url.strip_prefix("file://").unwrap_or(&url));
        if path.is_absolute() {
            candidates.push(path.join("../shared"));
        }
    }
    let found = candidates.iter().map(|shared| shared.join("assets/vrm")).find(|dir| dir.is_dir());
    found.unwrap_or_else(|| {
        panic!("the sample avatars (shared/assets/vrm) are missing; looked in {candidates:?}; set WORKLY_SHARED_DIR")
    })
}

/// `web/`, with playwright-core installed.
fn web() -> PathBuf {
    let web = repo().join("web");
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run scripts/test.sh (it runs npm ci in web/)"
    );
    web
}

/// Runs `node tests/browser/SCRIPT ARGS...`; its log, once it passed.
fn browser_test(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let output = Command::new("node")
        .arg(repo().join("tests/browser").join(script))
        .args(args)
        .env("WORKLY_WEB_DIR", web())
        .env("CHROMIUM", chromium())
        .output()
        .expect("node runs (scripts/setup.sh installs it)");
    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the browser test failed:\n{log}");
    assert!(log.contains("all good"), "{log}");
    log
}

#[test]
fn the_page_asks_for_the_api_key_a_server_wants() {
    let server = start(&["--api-key", "kira-key"]);
    let base = format!("http://{}/", server.address);
    browser_test("key.mjs", &[base.as_ref(), "kira-key".as_ref()]);
}

#[test]
fn the_page_shows_edits_and_forgets_what_kira_remembers() {
    // The smallest model: the test is about the panel, not the reply.
    let model = common::small_model();
    let server = start(&["--model", model.to_str().unwrap()]);
    let base = format!("http://{}/", server.address);
    browser_test("memory.mjs", &[base.as_ref()]);
}

#[test]
fn the_page_chats_and_moves_the_avatar_in_a_browser() {
    let samples = sample_avatars();
    let server = start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let screenshot = dir.path().join("page.png");
    let lead_copy = repo().join("target/page-screenshot.png");
    let base = format!("http://{}/", server.address);
    browser_test("page.mjs", &[base.as_ref(), samples.as_os_str(), screenshot.as_os_str(), lead_copy.as_os_str()]);
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(lead_copy.is_file());
}

#[test]
fn the_page_talks_with_kira_through_a_microphone_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::link_voice(&data);
    // The person's question, recorded in another voice: Chromium's fake
    // microphone plays it once.
    let question = dir.path().join("question.wav");
    let said = common::workly_in(&data)
        .args(["say", "Kira, what is your favourite colour?", "--voice", "michael", "--out"])
        .arg(&question)
        .output()
        .unwrap();
    assert!(said.status.success(), "{}", String::from_utf8_lossy(&said.stderr));
    // The page starts from the config file's voice settings.
    std::fs::write(dir.path().join("config.toml"), "[voice]\nspeed = 1.1\nvolume = 0.8\n").unwrap();
    let server = common::server::start_in(&data, dir.path(), &[]);
    let base = format!("http://{}/", server.address);
    let log = browser_test("voice.mjs", &[base.as_ref(), question.as_os_str()]);
    let seen: serde_json::Value =
        serde_json::from_str(log.lines().find(|line| line.starts_with('{')).expect("what the page saw")).unwrap();

    // The store holds what was heard as the person's message, and only
    // what she said of the interrupted reply, marked.
    let (status, _, body) = get(server.address, "/v1/workly/conversation");
    assert_eq!(status, 200);
    let messages = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["messages"].as_array().unwrap().clone();
    let content = |index: usize| messages[index]["content"].as_str().unwrap().to_owned();
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(content(0), seen["heard"].as_str().unwrap());
    assert!(!content(1).is_empty());
    assert_eq!(content(3), seen["kept"].as_str().unwrap());
    assert!(content(3).ends_with("(interrupted)"));

    // The spoken turns' stages reached /metrics.
    let (_, _, metrics) = get(server.address, "/metrics");
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.contains("workly_voice_total_seconds_count 2"), "{metrics}");
    assert!(metrics.contains("workly_voice_transcript_seconds_count 1"), "{metrics}");
}
