//! `workly-bench ipc`: avatar commands to a peer that parses like the Unity
//! app, over loopback TCP, sent the original way (one write per command) and
//! through Workly's batcher.
//!
//! Three figures per mode: the latency of a burst of 10 commands (from handing
//! them over until the peer has parsed the tenth), the sustained throughput
//! (commands the peer applied per second, counted at the peer, so coalesced
//! commands are not counted as delivered), and Workly's CPU time per applied
//! command (the process's CPU time less the peers' threads', from
//! `/proc/self/task/*/schedstat`; absent where there is no `/proc`). Each mode
//! has its own peer, in-process on its own thread and runtime, and the modes
//! take turns (burst by burst, then run by run), so a machine that is slower
//! for a while slows both alike and their ratio stays fair.

use crate::cli::BenchIpcArgs;
use serde::Serialize;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use workly::avatar::command::{Command, Expression, HeadMovement, TransitionSpeed, Unit};
use workly::avatar::{AvatarBridge, BatchStats, BridgeConfig, peer};
use workly::bench::{Percentiles, Quantile};
use workly::error::Context as _;

/// Commands per burst.
const BURST: usize = 10;
/// Bursts run and discarded before timing.
const WARMUP_BURSTS: u32 = 100;
/// Sustained runs per mode; the throughput reported is their median.
const RUNS: usize = 3;
/// Longest wait for the peer to apply what was sent.
const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The report of `workly-bench ipc`.
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
    /// Commands the peer applied per second while sending flat out: the
    /// median of the runs.
    pub throughput_commands_per_s: f64,
    /// Each run's throughput, in the order run.
    pub throughput_runs: Vec<f64>,
    /// Commands handed over during the runs.
    pub commands_handed: u64,
    /// Of those, commands the peer applied (the rest were superseded before
    /// sending).
    pub commands_applied: u64,
    /// Socket writes during the runs.
    pub writes: u64,
    /// Workly's CPU time per applied command during the runs.
    pub cpu_us_per_command: Option<f64>,
}

/// Runs `workly-bench ipc`.
pub fn run(args: &BenchIpcArgs) -> workly::error::Result<()> {
    let report = measure(args.bursts, Duration::from_secs_f64(args.seconds.max(0.1)))?;
    workly::cli::bench::print(&report, args.json, render)
}

/// Measures both modes, each against a fresh in-process peer, taking turns.
pub fn measure(bursts: u32, sustain: Duration) -> workly::error::Result<IpcReport> {
    let unbatched_peer = PeerThread::start()?;
    let mut stream = TcpStream::connect(unbatched_peer.address).context("cannot connect to the peer")?;
    stream.set_nodelay(true)?;
    let mut line = Vec::with_capacity(128);
    let unbatched = Lane::new(unbatched_peer, |commands| {
        for command in commands {
            line.clear();
            command.encode_unity(&mut line);
            stream.write_all(&line)?;
        }
        Ok(())
    });
    let batched_peer = PeerThread::start()?;
    let bridge = bridge_to(&batched_peer)?;
    let batched = Lane::new(batched_peer, |commands| send_batched(&bridge, commands)).counted_by(&bridge);
    let mut lanes = [unbatched, batched];
    let rounds = rounds();
    for burst in 0..WARMUP_BURSTS + bursts {
        for lane in in_turn(&mut lanes, burst as usize) {
            lane.burst(&rounds[burst as usize % rounds.len()][..BURST], burst >= WARMUP_BURSTS)?;
        }
    }
    let peers: Option<Vec<String>> = lanes.iter().map(|lane| lane.peer.tid.clone()).collect();
    for run in 0..RUNS {
        for lane in in_turn(&mut lanes, run) {
            lane.sustain(&rounds, sustain, peers.as_deref())?;
        }
    }
    let [unbatched, batched] = lanes.map(Lane::report);
    Ok(IpcReport { unbatched, batched })
}

/// Workly's batcher sending flat out to `peer` for `sustain`, after a
/// warm-up: commands the peer applied per second.
pub(super) fn batched_throughput(peer: PeerThread, sustain: Duration) -> workly::error::Result<f64> {
    let bridge = bridge_to(&peer)?;
    let mut lane = Lane::new(peer, |commands| send_batched(&bridge, commands)).counted_by(&bridge);
    let rounds = rounds();
    for burst in 0..WARMUP_BURSTS as usize {
        lane.burst(&rounds[burst % rounds.len()][..BURST], false)?;
    }
    lane.sustain(&rounds, sustain, None)?;
    Ok(lane.report().throughput_commands_per_s)
}

/// An avatar bridge with no director, writing to `peer`.
fn bridge_to(peer: &PeerThread) -> workly::error::Result<AvatarBridge> {
    let config = BridgeConfig {
        unity: Some(peer.address),
        vmc: Vec::new(),
        fps: None,
        director: None,
        model: None,
        reconnect: Default::default(),
        tap: None,
    };
    Ok(AvatarBridge::start(config)?)
}

/// Hands `commands` to the bridge once the last ones are written: nothing
/// is left to coalesce, so the peer applies every command handed over.
fn send_batched(bridge: &AvatarBridge, commands: &[Command]) -> workly::error::Result<()> {
    // Usually the last commands were written inline by the call that handed
    // them over; when the peer fell behind, wait for the bridge to finish.
    if bridge.pending() > 0 {
        bridge.flush(APPLY_TIMEOUT)?;
    }
    bridge.send_all(commands);
    Ok(())
}

/// The lanes, first one first on even turns and last one first on odd turns,
/// so neither always runs right after the other.
fn in_turn<'l, 'a>(lanes: &'l mut [Lane<'a>; 2], turn: usize) -> impl Iterator<Item = &'l mut Lane<'a>> {
    let [first, second] = lanes;
    let (first, second) = if turn.is_multiple_of(2) { (first, second) } else { (second, first) };
    [first, second].into_iter()
}

/// How a lane hands commands over.
type Handing<'a> = Box<dyn FnMut(&[Command]) -> workly::error::Result<()> + 'a>;

/// One sending mode with its own peer, and what it measured so far.
struct Lane<'a> {
    peer: PeerThread,
    send: Handing<'a>,
    /// The batcher's counters, where there is one.
    batch_stats: Box<dyn Fn() -> Option<BatchStats> + 'a>,
    latencies_us: Vec<f64>,
    throughputs: Vec<f64>,
    handed: u64,
    applied: u64,
    writes: u64,
    cpu_ns: Option<u64>,
    bursts: u32,
}

impl<'a> Lane<'a> {
    fn new(peer: PeerThread, send: impl FnMut(&[Command]) -> workly::error::Result<()> + 'a) -> Self {
        Self {
            peer,
            send: Box::new(send),
            batch_stats: Box::new(|| None),
            latencies_us: Vec::new(),
            throughputs: Vec::new(),
            handed: 0,
            applied: 0,
            writes: 0,
            cpu_ns: Some(0),
            bursts: 0,
        }
    }

    /// The lane's writes and coalesced commands are those of `bridge`.
    fn counted_by(mut self, bridge: &'a AvatarBridge) -> Self {
        self.batch_stats = Box::new(|| Some(bridge.stats()[0].batch));
        self
    }

    /// Hands `commands` over and waits until the peer applied them; keeps
    /// the latency if `timed`.
    fn burst(&mut self, commands: &[Command], timed: bool) -> workly::error::Result<()> {
        let target = self.peer.applied() + commands.len() as u64;
        let handed = Instant::now();
        (self.send)(commands)?;
        let parsed = self.peer.wait_for(target)?;
        if timed {
            self.latencies_us.push(parsed.saturating_duration_since(handed).as_secs_f64() * 1e6);
            self.bursts += 1;
        }
        Ok(())
    }

    /// Hands rounds over flat out for `sustain`, then waits until the peer
    /// applied everything delivered; `peers` are the threads whose CPU time
    /// is not Workly's (`None`: CPU time is not measured).
    fn sustain(
        &mut self,
        rounds: &[Vec<Command>],
        sustain: Duration,
        peers: Option<&[String]>,
    ) -> workly::error::Result<()> {
        let applied_before = self.peer.applied();
        let stats_before = (self.batch_stats)();
        let cpu_before = workly_cpu_ns(peers);
        let started = Instant::now();
        let mut handed = 0;
        for round in rounds.iter().cycle() {
            if started.elapsed() >= sustain {
                break;
            }
            (self.send)(round)?;
            handed += round.len() as u64;
        }
        let stats_after = (self.batch_stats)();
        // Everything sent reaches the peer; what the batcher coalesced never does.
        let (delivered, writes) = match (stats_before, stats_after) {
            (Some(before), Some(after)) => (
                handed
                    - (after.commands_coalesced - before.commands_coalesced)
                    - (after.commands_dropped - before.commands_dropped),
                after.frames - before.frames,
            ),
            _ => (handed, handed),
        };
        let finished = self.peer.wait_for(applied_before + delivered)?;
        let cpu = cpu_before.zip(workly_cpu_ns(peers)).map(|(before, after)| after.saturating_sub(before));
        let applied = self.peer.applied() - applied_before;
        let seconds = finished.saturating_duration_since(started).as_secs_f64();
        self.throughputs.push(applied as f64 / seconds);
        self.handed += handed;
        self.applied += applied;
        self.writes += writes;
        self.cpu_ns = self.cpu_ns.zip(cpu).map(|(total, run)| total + run);
        Ok(())
    }

    fn report(mut self) -> ModeReport {
        ModeReport {
            burst10_latency_us_distribution: workly::bench::distribution(&mut self.latencies_us),
            burst10_latency_us: Percentiles::of(&mut self.latencies_us),
            bursts: self.bursts,
            throughput_commands_per_s: workly::bench::median(&self.throughputs),
            throughput_runs: self.throughputs,
            commands_handed: self.handed,
            commands_applied: self.applied,
            writes: self.writes,
            cpu_us_per_command: self.cpu_ns.map(|ns| ns as f64 / 1e3 / self.applied.max(1) as f64),
        }
    }
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
    pub(super) fn start() -> workly::error::Result<Self> {
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
                let sink = |_: &Command, _: &workly::avatar::state::AvatarState| {
                    // The time first: whoever sees the new count reads this command's time.
                    shared.last_applied_ns.store(shared.base.elapsed().as_nanos() as u64, Ordering::Release);
                    // SeqCst, here and in `wait_for`: each side writes one
                    // counter then reads the other's, and with acquire/release
                    // alone both may read the old value (then nobody signals
                    // and the wait times out with every command applied).
                    let applied = shared.applied.fetch_add(1, Ordering::SeqCst) + 1;
                    if applied == shared.target.load(Ordering::SeqCst) {
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
        self.probe.applied.load(Ordering::SeqCst)
    }

    /// Waits until the peer has applied `target` commands in all; returns
    /// when it applied the last of them.
    pub(super) fn wait_for(&self, target: u64) -> workly::error::Result<Instant> {
        while self.reached.try_recv().is_ok() {}
        self.probe.target.store(target, Ordering::SeqCst);
        if self.applied() < target {
            self.reached
                .recv_timeout(APPLY_TIMEOUT)
                .with_context(|| format!("the peer applied {} of {target} commands", self.applied()))?;
        }
        let at = self.probe.last_applied_ns.load(Ordering::Acquire);
        Ok(self.probe.base + Duration::from_nanos(at))
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

/// CPU time of every thread of this process but `peers`.
fn workly_cpu_ns(peers: Option<&[String]>) -> Option<u64> {
    let peers = peers?;
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let tid = entry.ok()?.file_name();
        let tid = tid.to_str()?;
        if !peers.iter().any(|peer| peer == tid) {
            total += thread_cpu_ns(tid)?;
        }
    }
    Some(total)
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
        "commands/s (median of runs)",
        "68 -> 685",
        unbatched.throughput_commands_per_s,
        batched.throughput_commands_per_s
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
