//! Running either stack as a child process: a JSON report read from its
//! stdout, the first streamed byte of a reply timed from spawning, or a
//! server waited for until it answers. Every failure says which child failed
//! and ends with the last lines of its log.

use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workly::error::Context as _;

/// Lines of a child's log kept to explain a failure.
const LOG_LINES_KEPT: usize = 8;
/// Longest wait for a server to load its model and answer.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// A running child whose stderr is drained on a thread (a full pipe would
/// stall it), keeping the last lines; killed if still running when dropped.
pub(super) struct Spawned {
    child: Child,
    what: String,
    log: Arc<Mutex<VecDeque<String>>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Spawned {
    /// Spawns `command` (stdin closed, stderr drained); stdout as given.
    pub(super) fn start(command: &mut Command, what: &str, stdout: Stdio) -> workly::error::Result<Self> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        let stderr = child.stderr.take().context("stderr is not piped")?;
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES_KEPT)));
        let kept = Arc::clone(&log);
        let drain = std::thread::Builder::new().name("workly-compare-log".to_owned()).spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut kept) = kept.lock() {
                    if kept.len() == LOG_LINES_KEPT {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                }
            }
        })?;
        Ok(Self { child, what: what.to_owned(), log, drain: Some(drain) })
    }

    /// The child's stdout, once.
    pub(super) fn stdout(&mut self) -> workly::error::Result<std::process::ChildStdout> {
        self.child.stdout.take().context("stdout is not piped")
    }

    /// Waits for the child to exit, successfully.
    pub(super) fn finish(mut self) -> workly::error::Result<()> {
        let status = self.child.wait().with_context(|| format!("cannot wait for {}", self.what))?;
        if !status.success() {
            return Err(self.failure(&format!("exited with {status}")));
        }
        Ok(())
    }

    /// `why` this child failed, with the end of its log (the child is killed).
    pub(super) fn failure(&mut self, why: &str) -> workly::error::Error {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
        let log = self.log.lock().map(|log| log.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default();
        workly::error::Error::failure(anyhow::anyhow!("{} {why}; its log ends with:\n{log}", self.what))
    }

    /// Polls `http://127.0.0.1:{port}{path}` until it answers 2xx; returns
    /// when it did.
    pub(super) fn wait_http(&mut self, port: u16, path: &str) -> workly::error::Result<Instant> {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .new_agent();
        let url = format!("http://127.0.0.1:{port}{path}");
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failure(&format!("exited with {status} before answering")));
            }
            if agent.get(&url).call().is_ok_and(|response| response.status().is_success()) {
                return Ok(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(self.failure(&format!("did not answer {path} in {} s", READY_TIMEOUT.as_secs())))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `command` to its end and parses the last line of its stdout as `T`.
pub(super) fn json_of<T: DeserializeOwned>(command: &mut Command, what: &str) -> workly::error::Result<T> {
    let mut child = Spawned::start(command, what, Stdio::piped())?;
    let mut stdout = String::new();
    child.stdout()?.read_to_string(&mut stdout).with_context(|| format!("cannot read {what}'s output"))?;
    child.finish()?;
    let line = stdout.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("{what} printed no JSON report: {line:?}"))
}

/// Milliseconds from spawning `command` to the first byte on its stdout;
/// the child must then print to its end and exit successfully.
pub(super) fn first_byte_ms(command: &mut Command, what: &str) -> workly::error::Result<f64> {
    let started = Instant::now();
    let mut child = Spawned::start(command, what, Stdio::piped())?;
    let mut stdout = child.stdout()?;
    let mut first = [0u8; 1];
    let read = stdout.read(&mut first).with_context(|| format!("cannot read {what}'s output"))?;
    let elapsed = started.elapsed();
    if read == 0 {
        return Err(child.failure("printed nothing"));
    }
    std::io::copy(&mut stdout, &mut std::io::sink()).with_context(|| format!("cannot read {what}'s output"))?;
    child.finish()?;
    Ok(elapsed.as_secs_f64() * 1e3)
}

/// `exe` (`workly` or this binary) with its data, cache and config in `home`,
/// and none of the user's settings from the environment: a run leaves the
/// user's files alone and is not steered by them.
pub(super) fn in_home(exe: &Path, home: &Path) -> Command {
    let mut command = Command::new(exe);
    command
        .arg("--data-dir")
        .arg(home.join("data"))
        .env(workly::config::env::CACHE_DIR, home.join("cache"))
        .env(workly::config::env::CONFIG, home.join("config.toml"))
        .env_remove(workly::config::env::MODEL)
        .env_remove(workly::config::env::BACKEND)
        .env_remove(workly::config::env::BACKEND_KEY)
        .env_remove("WORKLY_API_KEY");
    command
}

/// A loopback port free when asked (the server binds it a moment later).
pub(super) fn free_port() -> workly::error::Result<u16> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(probe.local_addr()?.port())
}
