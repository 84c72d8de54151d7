//! `workly-bench all` end to end on the real model, shortened: one run per
//! figure and a 10-turn conversation for the memory. Its engine section is
//! `workly bench llm`'s own report, checked here figure by figure (the
//! comparison's test runs the `workly bench llm` command itself). Checks that the folder holds the JSON
//! report, the Markdown report and one chart per measured series.

use super::{bench_in, common};

#[test]
fn bench_all_writes_the_report_and_its_charts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    // The thread sweep saves its measurements in the cache: `bench_in` keeps them here.
    let report = common::json_output(
        bench_in(dir.path())
            .args(["all", "--json", "--runs", "1", "--turns", "10", "--out"])
            .arg(&out)
            .arg("--model")
            .arg(common::small_model()),
    );
    common::assert_written(&report, &out.join("report.json"));

    let logical = report["machine"]["cpu"]["logical_cores"].as_u64().unwrap();
    assert_eq!(report["threads"]["measurements"]["rows"].as_array().unwrap().len() as u64, logical);
    let llm = &report["llm"];
    for key in [
        "load_ms",
        "warmup_ms",
        "first_ttft_ms",
        "warm_ttft_ms",
        "prefill_tokens_per_s",
        "decode_tokens_per_s",
        "multi_turn_last_to_first_ratio",
    ] {
        assert!(llm[key].as_f64().is_some_and(|v| v > 0.0), "{key} in {llm}");
    }
    let turns = llm["multi_turn"].as_array().unwrap();
    assert_eq!(turns.len(), 20);
    assert!(turns.iter().skip(1).all(|turn| turn["cached_tokens"].as_u64().unwrap() > 0), "{turns:?}");
    assert!(llm["peak_rss_bytes"].as_u64().unwrap() >= llm["rss_bytes"].as_u64().unwrap());
    let samples = report["memory"]["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "10 turns sample once, at the last: {samples:?}");
    assert_eq!(samples[0]["turn"], 10);
    for mode in ["batched", "unbatched"] {
        let points = report["ipc"][mode]["burst10_latency_us_distribution"].as_array().unwrap();
        assert_eq!(points.len(), 9, "{mode}: {points:?}");
        let values: Vec<f64> = points.iter().map(|point| point["value"].as_f64().unwrap()).collect();
        assert!(values.windows(2).all(|pair| pair[0] <= pair[1]) && values[0] > 0.0, "{mode}: {values:?}");
    }
    assert!(report["emotion"]["tags"]["replies"].as_u64().unwrap() > 0);
    assert!(report["gpu_note"].as_str().unwrap().contains("GPU"), "{report}");

    let markdown = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    for (chart, lines) in [("threads.svg", 2), ("ttft_by_turn.svg", 1), ("rss_by_turn.svg", 1), ("ipc_latency.svg", 2)]
    {
        let svg = std::fs::read_to_string(out.join(chart)).unwrap();
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"), "{chart}");
        assert_eq!(svg.matches("<polyline").count(), lines, "{chart}");
        assert!(markdown.contains(&format!("]({chart})")), "REPORT.md shows {chart}");
    }
    for heading in ["## Threads", "## Engine", "## Memory", "## Avatar commands", "## Emotion", "## GPU"] {
        assert!(markdown.contains(heading), "{heading} missing:\n{markdown}");
    }
    assert!(markdown.contains("20-turn conversation"), "{markdown}");
}
