//! `workly bench ipc`: avatar commands to a peer that parses like the Unity
//! app, over loopback TCP, sent the original way (one write per command) and
//! through Workly's batcher.
//!
//! Three figures per mode: the latency of a burst of 10 commands (from handing
//! them over until the peer has parsed the tenth), the sustained throughput
//! (commands the peer applied per second, counted at the peer, so coalesced
//! commands are not counted as delivered), and Workly's CPU time per applied
//! command (the process's CPU time less the peer thread's, from
//! `/proc/self/task/*/schedstat`; absent where there is no `/proc`). The peer
//! runs in-process on its own thread and runtime.

use super::{Percentiles, Quantile};
use crate::avatar::command::{Command, Expression, HeadMovement, TransitionSpeed, Unit};
use crate::avatar::{AvatarBridge, BridgeConfig, peer};
use crate::cli::BenchIpcArgs;
use anyhow::Context as _;
use serde::Serialize;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Commands per burst.
const BURST: usize = 10;
/// Bursts run and discarded before timing.
const WARMUP_BURSTS: u32 = 100;
/// Longest wait for the peer to apply what was sent.
const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The report of `workly bench ipc`.
#[derive(Debug, Clone, Serialize)]
pub struct IpcReport {
    /// One write per command, as the original Python core sent.
    pub unbatched: ModeReport,
    /// Workly's batcher: everything pending in one write.
    pub batched: ModeReport,
}

/// The figures of one sending mode.
#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    /// From handing 10 commands over until the peer parsed the tenth.
    pub burst10_latency_us: Percentiles,
    /// The same latencies' distribution.
    pub burst10_latency_us_distribution: Vec<Quantile>,
    /// Bursts timed.
    pub bursts: u32,
    /// Commands the peer applied per second while sending flat out.
    pub throughput_commands_per_s: f64,
    /// Commands handed over during the throughput run.
    pub commands_handed: u64,
    /// Of those, commands the peer applied (the rest were superseded before
    /// sending).
    pub commands_applied: u64,
    /// Socket writes during the throughput run.
    pub writes: u64,
    /// Workly's CPU time per applied command during the throughput run.
    pub cpu_us_per_command: Option<f64>,
}

/// Runs `workly bench ipc`.
pub fn run(args: &BenchIpcArgs) -> anyhow::Result<()> {
    let report = measure(args.bursts, Duration::from_secs_f64(args.seconds.max(0.1)))?;
    super::print(&report, args.json, render)
}

/// Measures both modes against a fresh in-process peer.
pub fn measure(bursts: u32, sustain: Duration) -> anyhow::Result<IpcReport> {
    let peer = PeerThread::start()?;
    let unbatched = {
        let mut stream = TcpStream::connect(peer.address).context("cannot connect to the peer")?;
        stream.set_nodelay(true)?;
        let mut line = Vec::with_capacity(128);
        let mut send = |commands: &[Command]| -> anyhow::Result<u64> {
            for command in commands {
                line.clear();
                command.encode_unity(&mut line);
                stream.write_all(&line)?;
            }
            Ok(commands.len() as u64)
        };
        measure_mode(&peer, bursts, sustain, &mut send, &|| None)?
    };
    let batched = batched(&peer, bursts, sustain)?;
    Ok(IpcReport { unbatched, batched })
}

/// Workly's batcher, measured against `peer`: bursts, then `sustain` of
/// commands handed over flat out.
pub(super) fn batched(peer: &PeerThread, bursts: u32, sustain: Duration) -> anyhow::Result<ModeReport> {
    let config = BridgeConfig {
        unity: Some(peer.address),
        vmc: Vec::new(),
        fps: None,
        director: None,
        model: None,
        reconnect: Default::default(),
        tap: None,
    };
    let bridge = AvatarBridge::start(config)?;
    let writes = || Some(bridge.stats()[0].batch);
    let mut send = |commands: &[Command]| -> anyhow::Result<u64> {
        // Hand the next round as soon as the writer has taken the last:
        // it is ready when the write ends, and nothing is left to
        // coalesce, so the peer applies every command handed over.
        while bridge.pending() > 0 {
            std::thread::yield_now();
        }
        bridge.send_all(commands);
        Ok(commands.len() as u64)
    };
    measure_mode(peer, bursts, sustain, &mut send, &writes)
}

/// `count` of the benchmark's commands as the Unity app reads them, one JSON
/// line each.
pub(super) fn unity_lines(count: usize) -> Vec<u8> {
    let mut lines = Vec::with_capacity(count * 64);
    for command in rounds().iter().flatten().cycle().take(count) {
        command.encode_unity(&mut lines);
    }
    lines
}

/// Bursts, then a throughput run, through `send`; `batch_stats` gives the
/// batcher's counters where there is one.
fn measure_mode(
    peer: &PeerThread,
    bursts: u32,
    sustain: Duration,
    send: &mut dyn FnMut(&[Command]) -> anyhow::Result<u64>,
    batch_stats: &dyn Fn() -> Option<crate::avatar::BatchStats>,
) -> anyhow::Result<ModeReport> {
    let rounds = rounds();
    let mut latencies_us = Vec::with_capacity(bursts as usize);
    for burst in 0..WARMUP_BURSTS + bursts {
        let commands = &rounds[burst as usize % rounds.len()][..BURST];
        let target = peer.applied() + BURST as u64;
        let handed = Instant::now();
        send(commands)?;
        let parsed = peer.wait_for(target)?;
        if burst >= WARMUP_BURSTS {
            latencies_us.push(parsed.saturating_duration_since(handed).as_secs_f64() * 1e6);
        }
    }

    let applied_before = peer.applied();
    let stats_before = batch_stats();
    let cpu_before = peer.workly_cpu_ns();
    let started = Instant::now();
    let mut handed = 0;
    let mut round = 0;
    while started.elapsed() < sustain {
        handed += send(&rounds[round % rounds.len()])?;
        round += 1;
    }
    let stats_after = batch_stats();
    // Everything sent reaches the peer; what the batcher coalesced never does.
    let delivered = match (stats_before, stats_after) {
        (Some(before), Some(after)) => {
            handed
                - (after.commands_coalesced - before.commands_coalesced)
                - (after.commands_dropped - before.commands_dropped)
        }
        _ => handed,
    };
    let finished = peer.wait_for(applied_before + delivered)?;
    let cpu_after = peer.workly_cpu_ns();
    let applied = peer.applied() - applied_before;
    let seconds = finished.saturating_duration_since(started).as_secs_f64();
    let writes = match (stats_before, batch_stats()) {
        (Some(before), Some(after)) => after.frames - before.frames,
        _ => handed,
    };
    Ok(ModeReport {
        burst10_latency_us_distribution: super::distribution(&mut latencies_us),
        burst10_latency_us: Percentiles::of(&mut latencies_us),
        bursts,
        throughput_commands_per_s: applied as f64 / seconds,
        commands_handed: handed,
        commands_applied: applied,
        writes,
        cpu_us_per_command: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| after.saturating_sub(before) as f64 / 1e3 / applied.max(1) as f64),
    })
}

/// Rounds of commands that do not supersede each other within a round (one
/// per expression, plus three settings), with values that change from round
/// to round so every line differs from the one before.
fn rounds() -> Vec<Vec<Command>> {
    (0..16u8)
        .map(|round| {
            let value = Unit::saturating(f32::from(round) / 16.0);
            let mut commands: Vec<Command> =
                Expression::ALL.into_iter().map(|expression| Command::set_expression(expression, value)).collect();
            let speed = TransitionSpeed::new(1.0 + f32::from(round) / 4.0).unwrap_or(TransitionSpeed::UNITY_DEFAULT);
            commands.push(Command::SetTransitionSpeed(speed));
            commands.push(Command::SetAutoBlink(round % 2 == 0));
            let head = HeadMovement::new(true, 3.0, 7.0, f32::from(round)).unwrap_or(HeadMovement::UNITY_DEFAULT);
            commands.push(Command::SetAutoHeadMovement(head));
            commands
        })
        .collect()
}

/// The reference peer on its own thread, counting what it applies (the soak
/// benchmark attaches its server's avatar bridge to one too).
pub(super) struct PeerThread {
    /// Where the peer listens.
    pub(super) address: SocketAddr,
    probe: Arc<Probe>,
    reached: mpsc::Receiver<()>,
    /// The peer thread's id, to leave its CPU time out of Workly's.
    tid: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the peer has applied, shared with the benchmark thread.
struct Probe {
    base: Instant,
    applied: AtomicU64,
    last_applied_ns: AtomicU64,
    target: AtomicU64,
}

impl PeerThread {
    /// Starts a peer on a free loopback port.
    pub(super) fn start() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind the peer")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let probe = Arc::new(Probe {
            base: Instant::now(),
            applied: AtomicU64::new(0),
            last_applied_ns: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
        });
        let (reached_tx, reached) = mpsc::channel();
        let (tid_tx, tid_rx) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = Arc::clone(&probe);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new().name("workly-bench-peer".to_owned()).spawn(move || {
            let _ = tid_tx.send(current_tid());
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                let sink = |_: &Command, _: &crate::avatar::state::AvatarState| {
                    // The time first: whoever sees the new count reads this command's time.
                    shared.last_applied_ns.store(shared.base.elapsed().as_nanos() as u64, Ordering::Release);
                    let applied = shared.applied.fetch_add(1, Ordering::Release) + 1;
                    if applied == shared.target.load(Ordering::Acquire) {
                        let _ = reached_tx.send(());
                    }
                };
                peer::serve(listener, async { _ = stopped.await }, sink).await;
            });
        })?;
        let tid = tid_rx.recv().ok().flatten();
        Ok(Self { address, probe, reached, tid, stop: Some(stop), thread: Some(thread) })
    }

    /// Commands applied so far.
    pub(super) fn applied(&self) -> u64 {
        self.probe.applied.load(Ordering::Acquire)
    }

    /// Waits until the peer has applied `target` commands in all; returns
    /// when it applied the last of them.
    pub(super) fn wait_for(&self, target: u64) -> anyhow::Result<Instant> {
        while self.reached.try_recv().is_ok() {}
        self.probe.target.store(target, Ordering::Release);
        if self.applied() < target {
            self.reached
                .recv_timeout(APPLY_TIMEOUT)
                .with_context(|| format!("the peer applied {} of {target} commands", self.applied()))?;
        }
        let at = self.probe.last_applied_ns.load(Ordering::Acquire);
        Ok(self.probe.base + Duration::from_nanos(at))
    }

    /// CPU time of every thread of this process but the peer's.
    fn workly_cpu_ns(&self) -> Option<u64> {
        let peer = self.tid.as_deref().and_then(thread_cpu_ns)?;
        let mut total = 0;
        for entry in std::fs::read_dir("/proc/self/task").ok()? {
            total += thread_cpu_ns(entry.ok()?.file_name().to_str()?)?;
        }
        Some(total - peer.min(total))
    }
}

impl Drop for PeerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// This thread's id, from the `/proc/thread-self` link (`PID/task/TID`).
fn current_tid() -> Option<String> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    Some(link.file_name()?.to_str()?.to_owned())
}

/// Nanoseconds thread `tid` of this process has run on a CPU (the first field
/// of its `schedstat`).
fn thread_cpu_ns(tid: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

pub(super) fn render(report: &IpcReport) -> String {
    let (unbatched, batched) = (&report.unbatched, &report.batched);
    let cpu = |mode: &ModeReport| mode.cpu_us_per_command.map_or("n/a".to_owned(), |us| format!("{us:.2} us"));
    let mut text = String::from("Avatar commands to a Unity-like peer over loopback TCP\n");
    text.push_str(&format!("{:<30} {:>20} {:>14} {:>14}\n", "", "original (Python)", "unbatched", "batched"));
    text.push_str(&format!(
        "{:<30} {:>20} {:>11.1} us {:>11.1} us\n",
        "10-command burst, p50", "145 ms -> 30 ms", unbatched.burst10_latency_us.p50, batched.burst10_latency_us.p50
    ));
    text.push_str(&format!(
        "{:<30} {:>20} {:>11.1} us {:>11.1} us\n",
        "10-command burst, p99", "", unbatched.burst10_latency_us.p99, batched.burst10_latency_us.p99
    ));
    text.push_str(&format!(
        "{:<30} {:>20} {:>14.0} {:>14.0}\n",
        "throughput, commands/s", "68 -> 685", unbatched.throughput_commands_per_s, batched.throughput_commands_per_s
    ));
    text.push_str(&format!("{:<30} {:>20} {:>14} {:>14}\n", "CPU per command", "", cpu(unbatched), cpu(batched)));
    text.push_str(&format!(
        "batched: {:.1}x the throughput, {:.1}x lower burst p50 ({} writes for {} commands applied)\n",
        batched.throughput_commands_per_s / unbatched.throughput_commands_per_s.max(f64::MIN_POSITIVE),
        unbatched.burst10_latency_us.p50 / batched.burst10_latency_us.p50.max(f64::MIN_POSITIVE),
        batched.writes,
        batched.commands_applied,
    ));
    text.push_str("(the original figures timed a 15.6 ms Windows sleep per message; see specs/unity-bridge.md)\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_never_supersede_within_themselves() {
        for round in rounds() {
            assert!(round.len() >= BURST);
            for (i, later) in round.iter().enumerate() {
                assert!(round[..i].iter().all(|earlier| !later.supersedes(earlier)), "{later}");
            }
        }
    }
}
