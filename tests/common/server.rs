//! A real `workly serve` for the tests that talk to it over HTTP, and a
//! client for its `/v1/events` WebSocket.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A running `workly serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub address: SocketAddr,
    /// What it said about the page's conversation (its second line).
    pub resuming: String,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Sends `signal` (`KILL`, `TERM`...) to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits up to `limit` for the server to exit; its status, or `None` if it is still running.
    pub fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts `workly serve --port 0` with `extra` flags and its state in a
/// temporary directory; returns once it listens (not once the model is ready).
pub fn start(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_in(&dir.path().join("data"), dir.path(), extra);
    server._dir = Some(dir);
    server
}

/// Starts `workly serve --port 0` with `extra` flags (the default model
/// unless they name one or a back-end), its data (the
/// conversation store) in `data` and its cache and config in `scratch`, both
/// left in place when it stops so a test can start it again on them.
pub fn start_in(data: &Path, scratch: &Path, extra: &[&str]) -> Server {
    let mut command = Command::new(super::workly_binary());
    command.args(["serve", "--port", "0"]);
    if !extra.contains(&"--model") && !extra.contains(&"--backend") {
        command.arg("--model").arg(super::small_model());
    }
    let mut child = command
        .args(extra)
        .env("WORKLY_DATA_DIR", data)
        .env("WORKLY_CACHE_DIR", scratch.join("cache"))
        .env("WORKLY_CONFIG", scratch.join("config.toml"))
        .env_remove("WORKLY_API_KEY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("workly starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let address = line.split("http://").nth(1).and_then(|rest| rest.split('/').next()).and_then(|a| a.parse().ok());
    let Some(address) = address else {
        // Not left running behind the failed test.
        let _ = child.kill();
        let _ = child.wait();
        panic!("no address in {line:?}");
    };
    let mut resuming = String::new();
    stderr.read_line(&mut resuming).unwrap();
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Server { child, address, resuming, _dir: None }
}

/// A `/v1/events` client.
pub type Events = tungstenite::WebSocket<TcpStream>;

/// Connects to `/v1/events`; returns the socket and the first (status) event.
pub fn connect_events(address: SocketAddr) -> (Events, serde_json::Value) {
    let stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let (mut socket, _) =
        tungstenite::client(format!("ws://{address}/v1/events"), stream).expect("the upgrade is accepted");
    let first = read_until(&mut socket, |_| true).remove(0);
    assert_eq!(first["type"], "status", "{first}");
    (socket, first)
}

/// Connects to `/v1/events` and waits until the model is ready.
pub fn ready_events(address: SocketAddr) -> Events {
    let (mut socket, first) = connect_events(address);
    if first["status"] == "loading" {
        let ready = read_until(&mut socket, |event| event["type"] == "status");
        assert_eq!(ready.last().unwrap()["status"], "ready");
    }
    socket
}

/// Reads WebSocket text messages as JSON until `until` matches one; returns all.
pub fn read_until(socket: &mut Events, until: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
    let mut seen = Vec::new();
    loop {
        let message = socket.read().expect("the event stream stays open");
        if let tungstenite::Message::Text(text) = message {
            let event: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            let done = until(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
}

/// Sends a chat message over `socket`.
pub fn say(socket: &mut Events, text: &str) {
    let message = serde_json::json!({"type": "chat", "text": text}).to_string();
    socket.send(tungstenite::Message::text(message)).unwrap();
}

/// Whether `event` ends a reply (done or failed).
pub fn ends_reply(event: &serde_json::Value) -> bool {
    event["type"] == "reply_done" || event["type"] == "error"
}

/// The reply text carried by `events`' tokens.
pub fn reply_text(events: &[serde_json::Value]) -> String {
    events.iter().filter(|e| e["type"] == "token").map(|e| e["text"].as_str().unwrap()).collect()
}
