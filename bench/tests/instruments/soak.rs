//! `workly-bench soak` end to end, shortened to seconds: the real binary
//! starts the real server on the real model, with its avatar bridge attached
//! to the reference peer, and keeps it busy from API and WebSocket clients.

use super::{bench_in, common};

#[test]
fn a_short_soak_serves_every_client_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let report = common::json_output(
        bench_in(dir.path())
            .args(["soak", "--json", "--minutes", "0.25", "--interval-seconds", "5", "--clients", "2"])
            // Short replies keep the requests still running at the deadline
            // short; one thread keeps llama.cpp fast when other work shares the
            // CPU (two threads wait on each other at every step), and checks
            // that engine flags reach the server.
            .args(["--max-tokens", "16", "--threads", "1", "--model"])
            .arg(common::small_model())
            .env_remove("WORKLY_API_KEY"),
    );

    assert!(report["api_requests"].as_u64().unwrap() > 0, "{report}");
    assert!(report["page_turns"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["events"]["error"], 0, "{report}");
    assert!(report["events"]["reply_done"].as_u64().unwrap() > 0, "{report}");
    // The server's own count agrees with the clients'.
    assert_eq!(report["server"]["requests"], report["api_requests"], "{report}");
    assert_eq!(report["server"]["errors"], 0, "{report}");
    assert!(report["avatar_commands_applied"].as_u64().unwrap() > 0, "{report}");

    // 15 s in 5 s rows: three rows, each with the server's memory.
    let intervals = report["intervals"].as_array().unwrap();
    assert_eq!(intervals.len(), 3, "{report}");
    let requests: u64 = intervals.iter().map(|interval| interval["requests"].as_u64().unwrap()).sum();
    assert_eq!(requests, report["requests"].as_u64().unwrap());
    for interval in intervals {
        assert!(interval["rss_bytes"].as_u64().unwrap() > 0, "{interval}");
    }
    assert!(report["rss_final_bytes"].as_u64().unwrap() > 0, "{report}");
    assert!(report["ttft_ms"]["p50"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["server_stopped_cleanly"].as_bool().unwrap(), "{report}");
    // Seconds of warm-up say nothing about a leak: the verdict leaves memory
    // unjudged (the unit tests cover the judgement itself).
    assert_eq!(report["verdict"]["rss_flat"], serde_json::Value::Null, "{report}");
    assert_eq!(report["verdict"]["passed"], true, "{report}");
}
