//! `workly-bench soak`: the real server under hours-long use, in minutes.
//!
//! It starts `workly serve` as a child process (the binary running the bench,
//! a temporary data directory, the same model and engine flags) with its
//! avatar bridge attached to an in-process reference Unity peer, then keeps
//! it busy: several API clients, each holding a streamed multi-turn
//! conversation on `/v1/chat/completions`, and one WebSocket client on
//! `/v1/events` chatting in the page's conversation and counting the events
//! it hears. Each report row covers one minute: requests, errors, the time to
//! first content token seen by the API clients (queueing included) and the
//! server's resident memory at the minute's end.
//!
//! The verdict: no errors anywhere (a status that is not 2xx, a transport
//! failure, an `error` event, a stream without its final chunk, an error the
//! server counted), the avatar peer applied commands, and, for runs of two
//! minutes or more, the server's final resident memory within 3 % of the
//! value after the first minute, and the server exited cleanly on SIGTERM. A failed verdict exits with the failure code
//! after the report is printed.
//!
//! Clients speak plain HTTP and WebSocket from threads: the bench drives the
//! server from outside, as any other client would, and shares nothing with it
//! but the socket. Memory stays bounded: per-minute tallies only (each with
//! that minute's TTFT list), a few error messages, a few lines of the
//! server's log.
//!
//! This module holds the report, its verdict and rendering, and the run:
//! starting everything, reading the server's memory at each interval's end
//! and tallying what the clients counted. `server` owns the child
//! `workly serve` process; `clients` owns the threads that load it.

mod clients;
mod server;

use crate::cli::BenchSoakArgs;
use crate::ipc::PeerThread;
use clients::{api_client, page_client};
use serde::Serialize;
use server::{ServerChild, server_counters};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workly::bench::Percentiles;
use workly::cli::Context;
use workly::error::Context as _;

/// Largest growth of the server's resident memory, from the end of the first
/// minute to the end of the run, that still counts as flat.
pub const FLAT_RSS_PERCENT: f64 = 3.0;
/// Shortest soak whose memory is judged. In the first minutes the server's
/// resident set still grows as the KV cache, SQLite's page cache and the
/// allocator's arenas are first touched; a verdict on seconds of it would
/// measure that warm-up, not a leak.
pub const MIN_MINUTES_TO_JUDGE_RSS: f64 = 2.0;
/// Error messages kept for the report (the count covers every error).
const ERRORS_KEPT: usize = 10;

/// The report of `workly-bench soak`.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// The model the server loaded (its API id).
    pub model: String,
    /// Length of the run asked for.
    pub minutes: f64,
    /// Concurrent API clients.
    pub clients: u16,
    /// Most tokens per reply.
    pub max_tokens: u32,
    /// Length of one row, in seconds (60 but for quick checks).
    pub interval_s: f64,
    /// One row per interval, in order.
    pub intervals: Vec<SoakInterval>,
    /// Every request: API completions and page chat turns.
    pub requests: u64,
    /// Of those, streamed `/v1/chat/completions` requests.
    pub api_requests: u64,
    /// Of those, chat turns sent over `/v1/events`.
    pub page_turns: u64,
    /// Requests that failed, as the clients saw it.
    pub errors: u64,
    /// The first few errors, in words.
    pub first_errors: Vec<String>,
    /// Time to first content token of every API reply.
    pub ttft_ms: Percentiles,
    /// What the WebSocket client heard.
    pub events: EventCounts,
    /// The server's own counters at the end (`/metrics`), if it answered.
    pub server: Option<ServerCounters>,
    /// Commands the avatar peer applied.
    pub avatar_commands_applied: u64,
    /// The server's resident memory at the end of the first interval.
    pub rss_first_bytes: Option<u64>,
    /// The server's resident memory once every client had finished.
    pub rss_final_bytes: Option<u64>,
    /// Final over first, as a percentage change.
    pub rss_growth_percent: Option<f64>,
    /// Whether the server exited by itself, successfully, on SIGTERM (it
    /// was killed, or had exited before, otherwise).
    pub server_stopped_cleanly: bool,
    /// Whether the run passed, and why not.
    pub verdict: Verdict,
}

/// One interval of the run (a minute unless asked otherwise).
#[derive(Debug, Clone, Serialize)]
pub struct SoakInterval {
    /// 1-based.
    pub index: usize,
    /// Seconds from the start of the run to the interval's end.
    pub end_s: f64,
    /// Requests started in it (API and page).
    pub requests: u64,
    /// Of those, requests that failed.
    pub errors: u64,
    /// API replies whose first content token was timed.
    pub ttft_samples: usize,
    /// Time to first content token seen by the API clients, queueing included.
    pub ttft_ms: Percentiles,
    /// The server's own time to first token for the same replies (its
    /// `workly.ttft_ms`, from handing the request to the engine, queue
    /// included): what is left of `ttft_ms` is HTTP and text held back while
    /// an emotion tag is undecided.
    pub server_ttft_ms: Percentiles,
    /// The server's resident memory at the interval's end.
    pub rss_bytes: Option<u64>,
}

/// Events the `/v1/events` client received, by type.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EventCounts {
    /// Every event.
    pub received: u64,
    /// Replies that ended, whoever asked.
    pub reply_done: u64,
    /// Pieces of reply text.
    pub token: u64,
    /// Writes to the Unity app.
    pub avatar: u64,
    /// `error` events.
    pub error: u64,
}

/// The server's own view, from `/metrics`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ServerCounters {
    /// `workly_requests_total`.
    pub requests: u64,
    /// `workly_request_errors_total`.
    pub errors: u64,
}

/// Whether the soak passed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    /// Every check held.
    pub passed: bool,
    /// No client error, no `error` event, no error counted by the server.
    pub no_errors: bool,
    /// Final memory within 3 % of the first interval's; `None` for runs
    /// shorter than two minutes or two intervals, too short to tell.
    pub rss_flat: Option<bool>,
    /// The avatar peer applied at least one command.
    pub avatar_applied: bool,
    /// What failed, in words.
    pub failures: Vec<String>,
}

impl Verdict {
    fn judge(report: &SoakReport) -> Self {
        let server_errors = report.server.map_or(0, |server| server.errors);
        let no_errors = report.errors == 0 && report.events.error == 0 && server_errors == 0;
        let rss_flat = if report.intervals.len() >= 2 && report.minutes >= MIN_MINUTES_TO_JUDGE_RSS {
            Some(report.rss_growth_percent.is_some_and(|growth| growth.abs() <= FLAT_RSS_PERCENT))
        } else {
            None
        };
        let avatar_applied = report.avatar_commands_applied > 0;
        let mut failures = Vec::new();
        if !no_errors {
            failures.push(format!(
                "{} client errors, {} error events, {server_errors} server errors",
                report.errors, report.events.error
            ));
        }
        if rss_flat == Some(false) {
            let growth = report.rss_growth_percent.map_or("unknown".to_owned(), |growth| format!("{growth:+.2}%"));
            failures.push(format!("resident memory moved {growth} (more than {FLAT_RSS_PERCENT}%)"));
        }
        if !avatar_applied {
            failures.push("the avatar peer applied no command".to_owned());
        }
        if !report.server_stopped_cleanly {
            failures.push("the server did not exit cleanly on SIGTERM".to_owned());
        }
        Self { passed: failures.is_empty(), no_errors, rss_flat, avatar_applied, failures }
    }
}

/// Runs `workly-bench soak`.
pub fn run(context: &Context, args: &BenchSoakArgs) -> workly::error::Result<()> {
    let report = soak(context, args)?;
    workly::cli::bench::print(&report, args.json, render)?;
    if !report.verdict.passed {
        workly::fail!("the soak failed: {}", report.verdict.failures.join("; "));
    }
    Ok(())
}

/// Runs the soak and returns its report.
pub fn soak(context: &Context, args: &BenchSoakArgs) -> workly::error::Result<SoakReport> {
    let model = args.engine.model_info(context)?;
    let peer = PeerThread::start()?;
    let mut server = ServerChild::start(context, args, &model.path, peer.address)?;
    let model_id = server.wait_ready()?;

    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let interval = Duration::from_secs_f64(args.interval_seconds);
    let started = Instant::now();
    let deadline = started + duration;
    let tally = Arc::new(Tally::new(started, interval, duration));
    let base_url = format!("http://{}", server.address);
    let mut threads = Vec::new();
    for client in 0..usize::from(args.clients) {
        let (tally, url, max_tokens) = (Arc::clone(&tally), base_url.clone(), args.max_tokens);
        threads.push(
            std::thread::Builder::new()
                .name(format!("workly-soak-api-{client}"))
                .spawn(move || api_client(client, &url, max_tokens, deadline, &tally))?,
        );
    }
    let page = {
        let (tally, address) = (Arc::clone(&tally), server.address);
        std::thread::Builder::new()
            .name("workly-soak-page".to_owned())
            .spawn(move || page_client(address, deadline, &tally))?
    };

    // The memory of each interval, read at its end.
    let intervals = tally.intervals();
    let mut rss = Vec::with_capacity(intervals);
    for index in 1..=intervals {
        let end = (started + interval * index as u32).min(deadline);
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        rss.push(server.rss_bytes());
        tracing::info!(interval = index, rss_bytes = ?rss.last(), "soak sample");
    }
    for thread in threads {
        thread.join().map_err(|_| workly::error::Error::failure(anyhow::anyhow!("an API client panicked")))?;
    }
    let events =
        page.join().map_err(|_| workly::error::Error::failure(anyhow::anyhow!("the WebSocket client panicked")))?;
    if let Ok(Some(status)) = server.child.try_wait() {
        tally.error(Instant::now(), "server", format!("exited during the soak ({status})"));
    }
    let rss_final_bytes = server.rss_bytes();
    let counters = server_counters(&base_url);
    let server_stopped_cleanly = server.stop();

    let tally = Arc::into_inner(tally).context("a client outlived the soak")?;
    let (windows, first_errors) = tally.into_parts();
    let mut all_ttft_ms = Vec::new();
    let mut report_intervals = Vec::with_capacity(windows.len());
    let (mut api_requests, mut page_turns, mut errors) = (0, 0, 0);
    for (index, (mut window, rss_bytes)) in windows.into_iter().zip(rss).enumerate() {
        api_requests += window.api_requests;
        page_turns += window.page_turns;
        errors += window.errors;
        all_ttft_ms.extend_from_slice(&window.ttft_ms);
        report_intervals.push(SoakInterval {
            index: index + 1,
            end_s: (interval.as_secs_f64() * (index + 1) as f64).min(duration.as_secs_f64()),
            requests: window.api_requests + window.page_turns,
            errors: window.errors,
            ttft_samples: window.ttft_ms.len(),
            ttft_ms: Percentiles::of(&mut window.ttft_ms),
            server_ttft_ms: Percentiles::of(&mut window.server_ttft_ms),
            rss_bytes,
        });
    }
    let rss_first_bytes = report_intervals.first().and_then(|first| first.rss_bytes);
    let rss_growth_percent = match (rss_first_bytes, rss_final_bytes) {
        (Some(first), Some(last)) if first > 0 => Some((last as f64 - first as f64) / first as f64 * 100.0),
        _ => None,
    };
    let mut report = SoakReport {
        model: model_id,
        minutes: args.minutes,
        clients: args.clients,
        max_tokens: args.max_tokens,
        interval_s: interval.as_secs_f64(),
        intervals: report_intervals,
        requests: api_requests + page_turns,
        api_requests,
        page_turns,
        errors,
        first_errors,
        ttft_ms: Percentiles::of(&mut all_ttft_ms),
        events,
        server: counters,
        avatar_commands_applied: peer.applied(),
        rss_first_bytes,
        rss_final_bytes,
        rss_growth_percent,
        server_stopped_cleanly,
        verdict: Verdict::default(),
    };
    report.verdict = Verdict::judge(&report);
    Ok(report)
}

/// What the clients count, shared between them: one window per interval,
/// each request counted in the interval it started in.
struct Tally {
    started: Instant,
    interval: Duration,
    windows: Mutex<Vec<Window>>,
    first_errors: Mutex<Vec<String>>,
}

/// One interval's counts.
#[derive(Debug, Default)]
struct Window {
    api_requests: u64,
    page_turns: u64,
    errors: u64,
    ttft_ms: Vec<f64>,
    server_ttft_ms: Vec<f64>,
}

impl Tally {
    fn new(started: Instant, interval: Duration, duration: Duration) -> Self {
        // The last interval may be shorter; a run shorter than one has one.
        let intervals = (duration.as_secs_f64() / interval.as_secs_f64()).ceil().max(1.0) as usize;
        Self {
            started,
            interval,
            windows: Mutex::new((0..intervals).map(|_| Window::default()).collect()),
            first_errors: Mutex::new(Vec::new()),
        }
    }

    fn intervals(&self) -> usize {
        self.windows.lock().map_or(1, |windows| windows.len())
    }

    /// Updates the window of a request that started at `at`.
    fn record(&self, at: Instant, update: impl FnOnce(&mut Window)) {
        let index = (at.saturating_duration_since(self.started).as_secs_f64() / self.interval.as_secs_f64()) as usize;
        if let Ok(mut windows) = self.windows.lock() {
            let last = windows.len() - 1;
            update(&mut windows[index.min(last)]);
        }
    }

    /// Counts a failed request that started at `at`.
    fn error(&self, at: Instant, who: &str, message: String) {
        tracing::warn!("soak: {who}: {message}");
        self.record(at, |window| window.errors += 1);
        if let Ok(mut kept) = self.first_errors.lock()
            && kept.len() < ERRORS_KEPT
        {
            kept.push(format!("{who}: {message}"));
        }
    }

    fn into_parts(self) -> (Vec<Window>, Vec<String>) {
        (self.windows.into_inner().unwrap_or_default(), self.first_errors.into_inner().unwrap_or_default())
    }
}

fn render(report: &SoakReport) -> String {
    let mib = |bytes: Option<u64>| bytes.map_or("n/a".to_owned(), |bytes| format!("{:.1}", bytes as f64 / 1048576.0));
    let mut text = format!(
        "model {}, {} API clients and a WebSocket client, {} minutes, replies up to {} tokens\n",
        report.model, report.clients, report.minutes, report.max_tokens
    );
    let unit = if report.interval_s == 60.0 { "minute".to_owned() } else { format!("{}s", report.interval_s) };
    text.push_str(&format!(
        "{unit:>8} {:>9} {:>7} {:>13} {:>13} {:>9}\n",
        "requests", "errors", "TTFT p50 ms", "TTFT p99 ms", "RSS MiB"
    ));
    for interval in &report.intervals {
        text.push_str(&format!(
            "{:>8} {:>9} {:>7} {:>13.1} {:>13.1} {:>9}\n",
            interval.index,
            interval.requests,
            interval.errors,
            interval.ttft_ms.p50,
            interval.ttft_ms.p99,
            mib(interval.rss_bytes)
        ));
    }
    text.push_str(&format!(
        "{} requests ({} API, {} page turns), {} errors; TTFT p50 {:.1} ms, p99 {:.1} ms\n",
        report.requests, report.api_requests, report.page_turns, report.errors, report.ttft_ms.p50, report.ttft_ms.p99
    ));
    text.push_str(&format!(
        "events: {} received, {} replies done, {} avatar writes, {} errors; avatar peer applied {} commands\n",
        report.events.received,
        report.events.reply_done,
        report.events.avatar,
        report.events.error,
        report.avatar_commands_applied
    ));
    if let Some(server) = report.server {
        text.push_str(&format!("server counted {} requests, {} errors\n", server.requests, server.errors));
    }
    let growth = report.rss_growth_percent.map_or("n/a".to_owned(), |growth| format!("{growth:+.2}%"));
    text.push_str(&format!(
        "RSS after the first {unit} {} MiB, at the end {} MiB ({growth}){}\n",
        mib(report.rss_first_bytes),
        mib(report.rss_final_bytes),
        if report.verdict.rss_flat.is_none() { ", too short a run to judge" } else { "" }
    ));
    for error in &report.first_errors {
        text.push_str(&format!("error: {error}\n"));
    }
    text.push_str(&if report.verdict.passed {
        "verdict: PASS\n".to_owned()
    } else {
        format!("verdict: FAIL ({})\n", report.verdict.failures.join("; "))
    });
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_count_in_the_interval_they_started_in() {
        let started = Instant::now();
        let tally = Tally::new(started, Duration::from_secs(60), Duration::from_secs(150));
        assert_eq!(tally.intervals(), 3);
        tally.record(started + Duration::from_secs(59), |window| window.api_requests += 1);
        tally.record(started + Duration::from_secs(61), |window| window.api_requests += 1);
        // Requests still running after the deadline belong to the last interval.
        tally.error(started + Duration::from_secs(400), "test", "late".to_owned());
        let (windows, errors) = tally.into_parts();
        let requests: Vec<u64> = windows.iter().map(|window| window.api_requests).collect();
        assert_eq!(requests, [1, 1, 0]);
        assert_eq!(windows[2].errors, 1);
        assert_eq!(errors, ["test: late"]);
    }

    #[test]
    fn a_short_run_has_one_interval() {
        let tally = Tally::new(Instant::now(), Duration::from_secs(60), Duration::from_secs(18));
        assert_eq!(tally.intervals(), 1);
    }

    fn report(intervals: usize, errors: u64, rss_growth_percent: Option<f64>, avatar: u64) -> SoakReport {
        let interval = SoakInterval {
            index: 1,
            end_s: 60.0,
            requests: 10,
            errors: 0,
            ttft_samples: 10,
            ttft_ms: Percentiles::default(),
            server_ttft_ms: Percentiles::default(),
            rss_bytes: Some(100),
        };
        SoakReport {
            model: "m".to_owned(),
            minutes: intervals as f64,
            clients: 3,
            max_tokens: 64,
            interval_s: 60.0,
            intervals: vec![interval; intervals],
            requests: 10,
            api_requests: 8,
            page_turns: 2,
            errors,
            first_errors: Vec::new(),
            ttft_ms: Percentiles::default(),
            events: EventCounts::default(),
            server: Some(ServerCounters { requests: 8, errors: 0 }),
            avatar_commands_applied: avatar,
            rss_first_bytes: Some(100),
            rss_final_bytes: Some(100),
            rss_growth_percent,
            server_stopped_cleanly: true,
            verdict: Verdict::default(),
        }
    }

    #[test]
    fn the_verdict_wants_no_errors_flat_memory_and_an_avatar() {
        let verdict = Verdict::judge(&report(3, 0, Some(2.9), 5));
        assert!(verdict.passed && verdict.rss_flat == Some(true), "{verdict:?}");
        let verdict = Verdict::judge(&report(3, 0, Some(-3.5), 5));
        assert_eq!((verdict.passed, verdict.rss_flat), (false, Some(false)));
        let verdict = Verdict::judge(&report(3, 1, Some(0.0), 5));
        assert!(!verdict.passed && !verdict.no_errors);
        let verdict = Verdict::judge(&report(3, 0, Some(0.0), 0));
        assert!(!verdict.passed && !verdict.avatar_applied);
        let mut killed = report(3, 0, Some(0.0), 5);
        killed.server_stopped_cleanly = false;
        assert!(!Verdict::judge(&killed).passed);
        // One interval, or a run of seconds, is too short to judge memory,
        // so it cannot fail on it.
        let verdict = Verdict::judge(&report(1, 0, Some(50.0), 5));
        assert!(verdict.passed && verdict.rss_flat.is_none(), "{verdict:?}");
        let mut short = report(3, 0, Some(50.0), 5);
        short.minutes = 0.25;
        let verdict = Verdict::judge(&short);
        assert!(verdict.passed && verdict.rss_flat.is_none(), "{verdict:?}");
    }
}
