//! A real `workly serve` for the tests that talk to it over HTTP.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// A running `workly serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `workly serve --port 0` with `extra` flags; returns once it listens
/// (not once the model is ready).
pub fn start(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_workly"))
        .args(["serve", "--port", "0", "--model"])
        .arg(super::default_model())
        .args(extra)
        .env("WORKLY_DATA_DIR", dir.path().join("data"))
        .env("WORKLY_CACHE_DIR", dir.path().join("cache"))
        .env("WORKLY_CONFIG", dir.path().join("config.toml"))
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
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Server { child, address, _dir: dir }
}
