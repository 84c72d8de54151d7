//! The server under soak: `workly serve` as a child process of the bench,
//! with its own temporary data directory and the bench's model and engine
//! flags. Starting it and waiting until it listens and has loaded its model,
//! reading its resident memory and its `/metrics` counters, and stopping it
//! as Ctrl-C would (killing it if it lingers) all live here.

use super::ServerCounters;
use crate::cli::BenchSoakArgs;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workly::cli::Context;
use workly::config;
use workly::error::Context as _;

/// Longest wait for the server to load its model.
const READY_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest wait for the server to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of the server's log kept to explain a failure to start.
const LOG_LINES_KEPT: usize = 20;

/// Reads the server's request and error counters from `/metrics`.
pub(super) fn server_counters(base_url: &str) -> Option<ServerCounters> {
    let text = ureq::get(&format!("{base_url}/metrics")).call().ok()?.body_mut().read_to_string().ok()?;
    let counter = |name: &str| {
        text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
    };
    Some(ServerCounters {
        requests: counter("workly_requests_total")? as u64,
        errors: counter("workly_request_errors_total")? as u64,
    })
}

/// `workly serve` as a child process, killed if still running when dropped.
pub(super) struct ServerChild {
    pub(super) child: Child,
    pub(super) address: SocketAddr,
    /// The last lines of its log, to say why it failed.
    log: Arc<Mutex<VecDeque<String>>>,
    _data_dir: tempfile::TempDir,
}

impl ServerChild {
    /// Starts the server on a free port of loopback, attached to the Unity
    /// peer at `unity`; returns once it listens.
    pub(super) fn start(
        context: &Context,
        args: &BenchSoakArgs,
        model: &std::path::Path,
        unity: SocketAddr,
    ) -> workly::error::Result<Self> {
        let data_dir = tempfile::tempdir().context("cannot create a data directory for the server")?;
        let mut child = Command::new(crate::workly_binary()?)
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(["serve", "--host", "127.0.0.1", "--port", "0", "--unity", &unity.to_string(), "--model"])
            .arg(model)
            .args(args.engine.tuning_flags())
            // The same cache (saved thread counts, the persona's KV state) and
            // config file as this process, not the temporary directory's.
            .env(config::env::CACHE_DIR, &context.dirs.cache)
            .env(config::env::CONFIG, &context.dirs.config_file)
            // Loopback needs no key, and the clients send none.
            .env_remove("WORKLY_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start workly serve")?;
        let stderr = child.stderr.take().context("the server's stderr is not piped")?;
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES_KEPT)));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let kept = Arc::clone(&log);
        // Keep reading the log to its end, so the server never blocks on a full pipe.
        std::thread::Builder::new().name("workly-soak-server-log".to_owned()).spawn(move || {
            let mut address_tx = Some(address_tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(address) = listening_address(&line)
                    && let Some(sender) = address_tx.take()
                {
                    let _ = sender.send(address);
                }
                if let Ok(mut kept) = kept.lock() {
                    if kept.len() == LOG_LINES_KEPT {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                }
            }
        })?;
        let mut server = Self { child, address: SocketAddr::from(([127, 0, 0, 1], 0)), log, _data_dir: data_dir };
        // The log closes without an address if the server exits first.
        server.address = match address_rx.recv_timeout(READY_TIMEOUT) {
            Ok(address) => address,
            Err(_) => return Err(server.failure("the server did not start listening")),
        };
        Ok(server)
    }

    /// Waits until `/health` says ready; returns the model's id.
    pub(super) fn wait_ready(&mut self) -> workly::error::Result<String> {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .new_agent();
        let url = format!("http://{}/health", self.address);
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failure(&format!("the server exited ({status})")));
            }
            if let Ok(mut response) = agent.get(&url).call()
                && response.status().is_success()
            {
                let health: serde_json::Value = serde_json::from_str(&response.body_mut().read_to_string()?)?;
                return Ok(health["model"].as_str().unwrap_or_default().to_owned());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(self.failure("the model did not load in time"))
    }

    pub(super) fn rss_bytes(&self) -> Option<u64> {
        workly::hardware::rss_bytes_of(self.child.id())
    }

    /// Asks the server to stop as Ctrl-C would; kills it if it lingers.
    /// Returns whether it exited by itself, successfully.
    pub(super) fn stop(&mut self) -> bool {
        if let Ok(Some(_)) = self.child.try_wait() {
            // Gone before it was asked: not a clean stop.
            return false;
        }
        #[cfg(unix)]
        let asked = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        #[cfg(not(unix))]
        let asked = false;
        let started = Instant::now();
        while asked && started.elapsed() < STOP_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::warn!("the server did not exit on SIGTERM; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    /// `what`, with the end of the server's log.
    fn failure(&mut self, what: &str) -> workly::error::Error {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = self.log.lock().map(|log| log.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default();
        workly::error::Error::failure(anyhow::anyhow!("{what}; its log ends with:\n{log}"))
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The address in the server's `listening on http://ADDRESS/` line.
fn listening_address(line: &str) -> Option<SocketAddr> {
    line.split_once("listening on http://")?.1.split('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_address_the_server_prints() {
        let line = "workly: listening on http://127.0.0.1:39251/ (loading SmolLM2-135M-Instruct.Q4_1)";
        assert_eq!(listening_address(line), Some("127.0.0.1:39251".parse().unwrap()));
        assert_eq!(listening_address("WARN ignoring saved thread measurements"), None);
    }
}
