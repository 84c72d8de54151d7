//! One model over several machines with llama.cpp's RPC backend, on this
//! one: two `workly worker` processes on loopback hold every layer of the
//! default model, and the greedy reply is the local engine's, word for word.
//! A worker refuses an address others could reach unless told, and an
//! engine told of a worker that is not there says so in one line.

mod common;

use common::{assert_bad_input, assert_success, default_model, json_output, text, workly_in};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A `workly worker` on a free loopback port, killed when dropped.
struct Worker {
    child: Child,
    endpoint: String,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    /// Starts one with its cache in `dir`; returns once it accepts connections.
    fn start(dir: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = workly_in(dir)
            .args(["worker", "--port", &port.to_string(), "--threads", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let worker = Self { child, endpoint: format!("127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&worker.endpoint).is_err() {
            assert!(Instant::now() < deadline, "the worker never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        worker
    }
}

#[test]
fn a_model_split_over_two_loopback_workers_answers_as_the_local_engine() {
    let dir = tempfile::tempdir().unwrap();
    let workers = [Worker::start(dir.path()), Worker::start(dir.path())];
    let rpc = format!("{},{}", workers[0].endpoint, workers[1].endpoint);
    let model = default_model();
    let ask = |extra: &[&str]| {
        let output = workly_in(dir.path())
            .args(["chat", "-p", "Name three colours of the sea.", "--temperature", "0", "--max-tokens", "32"])
            .arg("--model")
            .arg(&model)
            .args(["--threads", "2", "--no-memory"])
            .args(extra)
            .output()
            .unwrap();
        assert_success(&output);
        text(&output.stdout)
    };
    let local = ask(&[]);
    let split = ask(&["--rpc", &rpc]);
    assert!(!local.trim().is_empty());
    assert_eq!(split, local, "the split model's greedy reply");

    // `doctor` shows the plan: every layer on a worker, half each.
    let doctor =
        json_output(workly_in(dir.path()).args(["doctor", "--json", "--rpc", &rpc]).arg("--model").arg(&model));
    let layers = workly::model::ModelInfo::read(&model).unwrap().layers;
    let planned: Vec<u64> = doctor["rpc"].as_array().unwrap().iter().map(|w| w["layers"].as_u64().unwrap()).collect();
    assert_eq!(planned.iter().sum::<u64>(), u64::from(layers), "{doctor}");
    assert_eq!(planned[0], planned[1], "two workers with the same free memory: {doctor}");
    assert_eq!(doctor["tuning"]["gpu_layers"], layers + 1, "{doctor}");
    assert!(doctor["rpc"][0]["free_bytes"].as_u64().unwrap() > 0, "{doctor}");
}

#[test]
fn a_worker_stays_on_loopback_unless_told_and_a_missing_one_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let refused = workly_in(dir.path()).args(["worker", "--host", "0.0.0.0"]).output().unwrap();
    assert_bad_input(&refused, &["no authentication", "--allow-remote"]);

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nobody = workly_in(dir.path())
        .args(["chat", "-p", "Hi", "--rpc", &format!("127.0.0.1:{port}")])
        .arg("--model")
        .arg(default_model())
        .output()
        .unwrap();
    let stderr = text(&nobody.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot reach the RPC worker") && !stderr.contains("panicked"), "{stderr}");
    assert_bad_input(
        &workly_in(dir.path())
            .args(["doctor", "--rpc", "gpu-box"])
            .arg("--model")
            .arg(default_model())
            .output()
            .unwrap(),
        &["not an RPC worker address"],
    );
}
