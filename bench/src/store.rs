//! `workly-bench store`: what saving a turn costs at the end of a reply.
//!
//! Every completed exchange is committed (and synced, see [`workly::store`])
//! before the turn is reported done, so that cost is added to every turn. This
//! benchmark writes many exchanges into a fresh database and times each
//! `append_exchange`; it also samples resident memory before and after, which
//! must stay flat however many turns are stored. The database lives in a
//! temporary directory inside the data directory, so the timing is that of
//! the disk `workly.db` really lives on (a RAM-backed `/tmp` would hide the sync).

use crate::cli::BenchStoreArgs;
use serde::Serialize;
use std::time::Instant;
use workly::cli::Context;
use workly::hardware::process_rss_bytes;
use workly::store::{NewMessage, Store};

/// A user message of typical length.
const USER: &str = "I went for a long walk by the river this morning and saw a heron fishing. Do you like birds?";
/// A reply of typical length (2 to 4 short sentences, as the persona asks).
const REPLY: &str = "Oh, a heron! They stand so still, like little statues with a plan. \
I love birds, especially the patient ones. Did it catch anything?";

/// The report of `workly-bench store`.
#[derive(Debug, Clone, Serialize)]
pub struct StoreReport {
    /// Where the temporary database was.
    pub database: String,
    /// Exchanges written.
    pub exchanges: u32,
    /// Median time of one `append_exchange` (one transaction, one sync).
    pub append_median_ms: f64,
    /// 99th percentile.
    pub append_p99_ms: f64,
    /// Slowest.
    pub append_max_ms: f64,
    /// Resident memory after opening the database, before writing.
    pub rss_before_bytes: u64,
    /// Resident memory after every exchange was written.
    pub rss_after_bytes: u64,
}

/// Runs `workly-bench store`.
pub fn run(context: &Context, args: &BenchStoreArgs) -> workly::error::Result<()> {
    let dir = crate::scratch_dir(context, ".bench-store-")?;
    let path = dir.path().join(workly::store::FILE_NAME);
    let mut store = Store::open(&path)?;
    let conversation = store.open_conversation("bench")?;
    let rss_before_bytes = process_rss_bytes().unwrap_or(0);
    let mut times_ms = Vec::with_capacity(args.exchanges as usize);
    for _ in 0..args.exchanges {
        let started = Instant::now();
        store.append_exchange(&conversation, &NewMessage::new(USER, 24), &NewMessage::new(REPLY, 32))?;
        times_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let rss_after_bytes = process_rss_bytes().unwrap_or(0);
    times_ms.sort_by(f64::total_cmp);
    let report = StoreReport {
        database: path.display().to_string(),
        exchanges: args.exchanges,
        append_median_ms: workly::bench::median(&times_ms),
        append_p99_ms: percentile(&times_ms, 0.99),
        append_max_ms: times_ms.last().copied().unwrap_or(0.0),
        rss_before_bytes,
        rss_after_bytes,
    };
    workly::cli::bench::print(&report, args.json, render)
}

/// The `fraction` percentile of `sorted` (nearest rank; 0 for none).
pub(crate) fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied().unwrap_or(0.0)
}

fn render(report: &StoreReport) -> String {
    let mib = |bytes: u64| bytes as f64 / 1048576.0;
    format!(
        "{} exchanges into {}\nappend_exchange: median {:.3} ms, p99 {:.3} ms, max {:.3} ms\n\
         resident memory: {:.1} MiB before, {:.1} MiB after ({:+.1} MiB)\n",
        report.exchanges,
        report.database,
        report.append_median_ms,
        report.append_p99_ms,
        report.append_max_ms,
        mib(report.rss_before_bytes),
        mib(report.rss_after_bytes),
        mib(report.rss_after_bytes) - mib(report.rss_before_bytes),
    )
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentile_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
    }
}
