//! `workly-bench all`: every benchmark of the engine, the avatar bridge and
//! the emotion reader in one run, written to a folder as `report.json`,
//! `REPORT.md` and SVG charts, so that one command reproduces the figures of
//! `docs/PERFORMANCE.md` on any machine.
//!
//! The thread sweep runs first: it saves its measurements, and the later
//! benchmarks run with the thread counts Workly picks from them, as a user's
//! `workly chat` would after `workly bench threads`.

use crate::chart::{LineChart, Series};
use crate::cli::BenchAllArgs;
use crate::emotion::EmotionReport;
use crate::ipc::{IpcReport, ModeReport};
use crate::memory::MemoryReport;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;
use workly::bench::gpu::GpuBenchReport;
use workly::bench::llm::LlmReport;
use workly::bench::threads::ThreadsReport;
use workly::cli::Context;
use workly::error::Context as _;
use workly::hardware::{DoctorReport, GpuBackend, Hardware};

/// Bursts of 10 avatar commands timed per sending mode.
const IPC_BURSTS: u32 = 2000;
/// Seconds of sustained avatar commands per sending mode.
const IPC_SECONDS: f64 = 2.0;
/// Turns whose replies are checked for emotion tags.
const EMOTION_TURNS: u32 = 10;

/// Everything `workly-bench all` measured.
#[derive(Debug, Clone, Serialize)]
pub struct AllReport {
    /// The Workly version that measured.
    pub workly_version: String,
    /// The machine it ran on (no model-specific settings).
    pub machine: DoctorReport,
    /// Prefill and decode speed for every thread count.
    pub threads: ThreadsReport,
    /// Load, warm-up, speeds and the 20-turn conversation.
    pub llm: LlmReport,
    /// Resident memory over a long conversation.
    pub memory: MemoryReport,
    /// Avatar commands, batched and not.
    pub ipc: IpcReport,
    /// The emotion lexicon's scores and the model's use of tags.
    pub emotion: EmotionReport,
    /// GPU layers against speed and VRAM (CUDA builds on a machine with an NVIDIA GPU).
    pub gpu: Option<GpuBenchReport>,
    /// Whether the GPU was measured, or why not.
    pub gpu_note: String,
}

/// Runs `workly-bench all`.
pub fn run(context: &Context, args: &BenchAllArgs) -> workly::error::Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let machine = DoctorReport::new(Hardware::detect(context.llama_logs), GpuBackend::BUILT, None, None);
    let gpu_note = gpu_note(&machine);
    tracing::info!("threads");
    let prepared = args.engine.prepare(context, Vec::new())?;
    let threads = workly::bench::threads::report(&prepared, args.runs, &context.dirs.thread_measurements())?;
    tracing::info!("llm");
    let llm = workly::cli::bench::llm_report(context, &args.engine, args.runs)?;
    tracing::info!("memory");
    let memory = crate::memory::report(context, &args.engine, args.turns)?;
    tracing::info!("ipc");
    let ipc = crate::ipc::measure(IPC_BURSTS, Duration::from_secs_f64(IPC_SECONDS))?;
    tracing::info!("emotion");
    let emotion = crate::emotion::report(context, Some(&args.engine), EMOTION_TURNS)?;
    let gpu = if machine.gpu_backend != GpuBackend::Cpu && !machine.gpus.is_empty() {
        tracing::info!("gpu");
        Some(workly::bench::gpu::report(&args.engine.prepare(context, Vec::new())?, args.runs, None)?)
    } else {
        None
    };
    let report = AllReport {
        workly_version: workly::VERSION.to_owned(),
        machine,
        threads,
        llm,
        memory,
        ipc,
        emotion,
        gpu,
        gpu_note,
    };
    write(&args.out, &report)?;
    let json = serde_json::to_string(&report)? + "\n";
    let summary = format!("workly: the report is in {}\n", args.out.join("REPORT.md").display());
    workly::cli::write_stdout(if args.json { &json } else { &summary })?;
    Ok(())
}

/// Whether this run measures the GPU, or why not.
fn gpu_note(machine: &DoctorReport) -> String {
    match (machine.gpu_backend, machine.gpus.is_empty()) {
        (GpuBackend::Cpu, _) => {
            "this build has no GPU backend (build with `--features cuda` or `--features vulkan` to measure one)"
                .to_owned()
        }
        (_, true) => format!("no GPU found ({})", machine.gpu_note.as_deref().unwrap_or("llama.cpp listed none")),
        (_, false) => "measured by `workly bench gpu` below".to_owned(),
    }
}

/// Writes `report.json`, the charts and `REPORT.md` into `out`.
fn write(out: &Path, report: &AllReport) -> workly::error::Result<()> {
    let save = |name: &str, text: &str| {
        std::fs::write(out.join(name), text).with_context(|| format!("cannot write {}", out.join(name).display()))
    };
    save("report.json", &(serde_json::to_string_pretty(report)? + "\n"))?;
    for (name, chart) in charts(report) {
        save(name, &chart.to_svg())?;
    }
    save("REPORT.md", &markdown(report))
}

/// The charts, by file name.
fn charts(report: &AllReport) -> Vec<(&'static str, LineChart)> {
    let rows = &report.threads.measurements.rows;
    let by_threads = |name: &str, speed: fn(&workly::hardware::ThreadRow) -> f64| Series {
        name: name.to_owned(),
        points: rows.iter().map(|row| (row.threads as f64, speed(row))).collect(),
    };
    let latency = |name: &str, mode: &ModeReport| Series {
        name: name.to_owned(),
        points: mode.burst10_latency_us_distribution.iter().map(|point| (point.value, point.q * 100.0)).collect(),
    };
    let mut charts = vec![
        (
            "threads.svg",
            LineChart {
                title: "Speed by thread count".to_owned(),
                x_label: "threads".to_owned(),
                y_label: "tokens/s".to_owned(),
                series: vec![
                    by_threads("prefill", |row| row.prefill_tokens_per_s),
                    by_threads("decode", |row| row.decode_tokens_per_s),
                ],
                y_from_zero: true,
            },
        ),
        (
            "ttft_by_turn.svg",
            LineChart {
                title: "Time to first token, turn by turn".to_owned(),
                x_label: "turn".to_owned(),
                y_label: "ms".to_owned(),
                series: vec![Series {
                    name: "TTFT".to_owned(),
                    points: report.llm.multi_turn.iter().map(|turn| (turn.turn as f64, turn.ttft_ms)).collect(),
                }],
                y_from_zero: true,
            },
        ),
        (
            "rss_by_turn.svg",
            LineChart {
                title: "Resident memory over a conversation".to_owned(),
                x_label: "turn".to_owned(),
                y_label: "MiB".to_owned(),
                series: vec![Series {
                    name: "RSS".to_owned(),
                    points: report
                        .memory
                        .samples
                        .iter()
                        .map(|sample| (f64::from(sample.turn), sample.rss_bytes as f64 / MIB))
                        .collect(),
                }],
                y_from_zero: true,
            },
        ),
        (
            "ipc_latency.svg",
            LineChart {
                title: "Avatar commands: 10-command burst latency".to_owned(),
                x_label: "µs from handing over to parsed by the peer".to_owned(),
                y_label: "% of bursts at most".to_owned(),
                series: vec![latency("batched", &report.ipc.batched), latency("unbatched", &report.ipc.unbatched)],
                y_from_zero: true,
            },
        ),
    ];
    if let Some(gpu) = &report.gpu {
        let by_layers = |name: &str, value: fn(&workly::bench::gpu::GpuRow) -> f64| Series {
            name: name.to_owned(),
            points: gpu.rows.iter().map(|row| (f64::from(row.gpu_layers), value(row))).collect(),
        };
        charts.push((
            "gpu_speed.svg",
            LineChart {
                title: "Speed by GPU layers".to_owned(),
                x_label: "GPU layers".to_owned(),
                y_label: "tokens/s".to_owned(),
                series: vec![
                    by_layers("prefill", |row| row.prefill_tokens_per_s),
                    by_layers("decode", |row| row.decode_tokens_per_s),
                ],
                y_from_zero: true,
            },
        ));
        charts.push((
            "gpu_vram.svg",
            LineChart {
                title: "VRAM by GPU layers".to_owned(),
                x_label: "GPU layers".to_owned(),
                y_label: "MiB".to_owned(),
                series: vec![by_layers("VRAM used", |row| row.vram_used_bytes as f64 / MIB)],
                y_from_zero: true,
            },
        ));
    }
    charts
}

const MIB: f64 = 1024.0 * 1024.0;

/// `REPORT.md`: the machine, then each benchmark's chart and its own text
/// rendering (the same as the single benchmark prints).
fn markdown(report: &AllReport) -> String {
    let machine = &report.machine;
    let gpus = if machine.gpus.is_empty() {
        "no GPU".to_owned()
    } else {
        machine.gpus.iter().map(|gpu| gpu.name.clone()).collect::<Vec<_>>().join(", ")
    };
    let section = |title: &str, command: &str, chart: Option<&str>, text: String| {
        let chart = chart.map(|file| format!("![{title}]({file})\n\n")).unwrap_or_default();
        format!("## {title}\n\nAs `{command}` reports it.\n\n{chart}```text\n{}\n```\n\n", text.trim_end())
    };
    let mut text = format!(
        "# Workly benchmark report\n\n\
         Workly {}, model {}, on {} ({} physical / {} logical cores, {:.1} GiB RAM, {gpus}).\n\
         Produced by `workly-bench all`; every figure is a median over repeated runs after a discarded one.\n\n",
        report.workly_version,
        report.llm.model,
        machine.cpu.model,
        machine.cpu.physical_cores,
        machine.cpu.logical_cores,
        machine.memory.total_bytes as f64 / (MIB * 1024.0),
    );
    text.push_str(&section(
        "Threads",
        "workly bench threads",
        Some("threads.svg"),
        workly::bench::threads::render(&report.threads),
    ));
    text.push_str(&section(
        "Engine: load, warm-up, speed, time to first token",
        "workly bench llm",
        Some("ttft_by_turn.svg"),
        workly::bench::llm::render(&report.llm),
    ));
    text.push_str(&section(
        "Memory over a conversation",
        "workly-bench memory",
        Some("rss_by_turn.svg"),
        crate::memory::render(&report.memory),
    ));
    text.push_str(&section(
        "Avatar commands",
        "workly-bench ipc",
        Some("ipc_latency.svg"),
        crate::ipc::render(&report.ipc),
    ));
    text.push_str(&section("Emotion", "workly-bench emotion", None, crate::emotion::render(&report.emotion)));
    match &report.gpu {
        Some(gpu) => {
            text.push_str(&section(
                "GPU layers",
                "workly bench gpu",
                Some("gpu_speed.svg"),
                workly::bench::gpu::render(gpu),
            ));
            text.push_str("![VRAM by GPU layers](gpu_vram.svg)\n");
        }
        None => text.push_str(&format!("## GPU\n\nNot measured: {}.\n", report.gpu_note)),
    }
    text
}
