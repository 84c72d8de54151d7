#!/usr/bin/env python3
"""Workly against the original Python stack (llama-cpp-python), side by side.

Same model file, same thread count, both builds of llama.cpp compiled for this
CPU. Three figures, each a median, the two stacks run interleaved so that load
from elsewhere on the machine falls on both alike:

* prefill tokens/s on a 512-token prompt and decode tokens/s over 128 tokens:
  ``workly bench llm --json`` against ``original.py speed``, ``--rounds`` rounds,
  each a median of ``--runs`` runs inside the process;
* cold start: from just before spawning ``chat -p "Bonjour"`` (Workly) or
  ``original.py chat "Bonjour"`` to the first byte of the reply on the child's
  stdout, ``--cold-runs`` fresh processes each.

Ratios are workly/python: above 1 means Workly is faster for speeds, below 1
means Workly starts faster for cold start.

The JSON report goes to stdout (and to ``--json-out``); progress and a table go
to stderr. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parents[2]
ORIGINAL = Path(__file__).resolve().parent / "original.py"
COLD_PROMPT = "Bonjour"
COLD_MAX_TOKENS = 32


class BenchError(RuntimeError):
    """A child failed or printed something unexpected."""


def fail(message: str, code: int = 1) -> NoReturn:
    """Prints an error on stderr and exits."""
    print(f"compare.py: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def log(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)


def default_model() -> Path:
    """Workly's default model in Workly's data directory."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    data_dir = os.environ.get("WORKLY_DATA_DIR") or str(Path(data_home) / "workly")
    return Path(data_dir) / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_workly() -> Path:
    """``target/release/workly``, honouring ``CARGO_TARGET_DIR`` (relative to the repository)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR") or "target")
    if not target.is_absolute():
        target = REPO / target
    return target / "release" / "workly"


def default_python() -> Path:
    """The baseline venv's Python (see setup.sh)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "workly" / "baseline-venv" / "bin" / "python"


def median(values: list[float]) -> float:
    """Median (0 for none)."""
    return statistics.median(values) if values else 0.0


def ratio(workly: float, python: float) -> float | None:
    """``workly / python``, or None when python is 0."""
    return round(workly / python, 3) if python > 0 else None


def describe(command: list[str]) -> str:
    """A command as one line, for messages."""
    return " ".join(command)


def run_json(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs ``command`` to completion and parses the last JSON object line of its stdout."""
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise BenchError(
            f"{describe(command)} exited with {result.returncode}\n--- stderr ---\n{result.stderr.strip()}"
        )
    for line in reversed(result.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError as error:
                raise BenchError(f"{describe(command)}: invalid JSON ({error}): {line[:200]}") from error
    raise BenchError(f"{describe(command)} printed no JSON object; stdout was:\n{result.stdout[:2000]}")


def time_to_first_byte(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Milliseconds from just before spawning ``command`` to the first byte on its stdout.

    The child then runs to the end; a non-zero exit or an empty stdout is an
    error. Returns the time and the whole stdout. Stderr goes to a temporary
    file so that a chatty child can never block on a full pipe.
    """
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, bufsize=0, env=env)
        assert child.stdout is not None
        first = child.stdout.read(1)
        elapsed_ms = (time.perf_counter() - started) * 1e3
        rest = child.stdout.read()
        child.stdout.close()
        code = child.wait()
        errors.seek(0)
        stderr = errors.read().decode("utf-8", "replace").strip()
    if code != 0:
        raise BenchError(f"{describe(command)} exited with {code}\n--- stderr ---\n{stderr}")
    if not first:
        raise BenchError(f"{describe(command)} printed nothing on stdout\n--- stderr ---\n{stderr}")
    return elapsed_ms, (first + rest).decode("utf-8", "replace")


@dataclass
class Side:
    """One stack's commands and collected measurements."""

    name: str
    speed_command: list[str]
    chat_command: list[str]
    env: dict[str, str]
    prefill: list[float] = field(default_factory=list)
    decode: list[float] = field(default_factory=list)
    cold_ms: list[float] = field(default_factory=list)
    reply: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def run_speed(self) -> None:
        """One speed round: a fresh process, medians of its runs."""
        report = run_json(self.speed_command, self.env)
        try:
            self.prefill.append(float(report["prefill_tokens_per_s"]))
            self.decode.append(float(report["decode_tokens_per_s"]))
        except (KeyError, TypeError, ValueError) as error:
            raise BenchError(f"{describe(self.speed_command)}: report lacks {error}: {report}") from error
        # Extra facts each side reports; Workly's "model" is a display name, not the path.
        extras = {"llama_cpp_python": "llama_cpp_python", "threads_decode": "threads_decode",
                  "threads_prefill": "threads_prefill", "threads": "threads", "n_ctx": "n_ctx",
                  "flash_attn": "flash_attn"}
        if self.name == "workly":
            extras["model"] = "model_name"
        for key, name in extras.items():
            if key in report:
                self.info[name] = report[key]
        log(f"  {self.name:<6} prefill {self.prefill[-1]:9.1f} tok/s   decode {self.decode[-1]:8.1f} tok/s")

    def run_cold(self, record: bool = True) -> None:
        """One cold start: a fresh chat process, time to its first byte."""
        elapsed_ms, reply = time_to_first_byte(self.chat_command, self.env)
        self.reply = reply.strip()
        if record:
            self.cold_ms.append(elapsed_ms)
        log(f"  {self.name:<6} first byte after {elapsed_ms:8.1f} ms{'' if record else ' (discarded)'}")

    def summary(self) -> dict[str, Any]:
        """Medians and raw values."""
        result: dict[str, Any] = {}
        if self.prefill:
            result["prefill_tokens_per_s"] = round(median(self.prefill), 2)
            result["decode_tokens_per_s"] = round(median(self.decode), 2)
            result["prefill_rounds"] = [round(v, 2) for v in self.prefill]
            result["decode_rounds"] = [round(v, 2) for v in self.decode]
            result["speed_command"] = describe(self.speed_command)
        if self.cold_ms:
            result["cold_start_ms"] = round(median(self.cold_ms), 1)
            result["cold_start_runs_ms"] = [round(v, 1) for v in self.cold_ms]
            result["chat_command"] = describe(self.chat_command)
            result["reply"] = self.reply
        result.update(self.info)
        return result


def build_sides(args: argparse.Namespace) -> tuple[Side, Side]:
    """Workly's and the Python stack's commands, from the options."""
    model = str(args.model)
    threads = str(args.threads)
    workly = str(args.workly)
    workly_common = ["--model", model, "--threads", threads]
    python_common = ["--model", model, "--threads", threads]
    if args.context_size is not None:
        workly_common += ["--context-size", str(args.context_size)]
        python_common += ["--n-ctx", str(args.context_size)]
    if args.flash_attn:
        python_common.append("--flash-attn")
    workly_side = Side(
        name="workly",
        speed_command=[workly, "bench", "llm", "--json", *workly_common, "--runs", str(args.runs)],
        chat_command=[workly, "chat", "-p", COLD_PROMPT, *workly_common,
                      "--temperature", "0", "--max-tokens", str(COLD_MAX_TOKENS)],
        env=dict(os.environ),
    )
    python_env = dict(os.environ, PYTHONUNBUFFERED="1")
    python = str(args.python)
    python_side = Side(
        name="python",
        speed_command=[python, str(ORIGINAL), "speed", *python_common, "--runs", str(args.runs)],
        chat_command=[python, str(ORIGINAL), "chat", *python_common, "--max-tokens", str(COLD_MAX_TOKENS),
                      COLD_PROMPT],
        env=python_env,
    )
    return workly_side, python_side


def check_setup(args: argparse.Namespace) -> str:
    """Fails early, with a hint, when something is missing; returns llama-cpp-python's version."""
    if not args.model.is_file():
        fail(f"model not found: {args.model} (run scripts/run.sh once, or pass --model)", 2)
    if not os.access(args.workly, os.X_OK):
        fail(f"workly binary not found: {args.workly} (cargo build --release, or pass --workly)", 2)
    if not os.access(args.python, os.X_OK):
        fail(f"python not found: {args.python} (run bench/baseline/setup.sh, or pass --python)", 2)
    probe = subprocess.run([str(args.python), "-c", "import llama_cpp; print(llama_cpp.__version__)"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        fail(f"{args.python} cannot import llama_cpp (run bench/baseline/setup.sh):\n{probe.stderr.strip()}", 2)
    if args.threads < 1 or args.rounds < 1 or args.runs < 1 or args.cold_runs < 1:
        fail("--threads, --rounds, --runs and --cold-runs must be at least 1", 2)
    return probe.stdout.strip()


def table(report: dict[str, Any]) -> str:
    """The report as a small text table."""
    workly, python, ratios = report["workly"], report["python"], report["ratios"]
    rows = [("", "workly", "python", "workly/python")]
    if "prefill_tokens_per_s" in workly:
        rows.append(("prefill tok/s (512)", f"{workly['prefill_tokens_per_s']:.1f}",
                     f"{python['prefill_tokens_per_s']:.1f}", f"{ratios['prefill']}"))
        rows.append(("decode tok/s (128)", f"{workly['decode_tokens_per_s']:.1f}",
                     f"{python['decode_tokens_per_s']:.1f}", f"{ratios['decode']}"))
    if "cold_start_ms" in workly:
        rows.append(("cold start ms", f"{workly['cold_start_ms']:.1f}",
                     f"{python['cold_start_ms']:.1f}", f"{ratios['cold_start']}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"{report['model']}, {report['threads']} threads, llama-cpp-python "
             f"{report['llama_cpp_python']}"]
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                               for i, cell in enumerate(row)))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=default_model(), help="GGUF file (default: Workly's default)")
    parser.add_argument("--threads", type=int, default=2, help="threads for both stacks (default 2)")
    parser.add_argument("--workly", type=Path, default=default_workly(),
                        help="workly binary (default: target/release/workly, honouring CARGO_TARGET_DIR)")
    parser.add_argument("--python", type=Path, default=default_python(),
                        help="Python with llama_cpp (default: the baseline venv's)")
    parser.add_argument("--rounds", type=int, default=3, help="speed rounds, each stack once per round (default 3)")
    parser.add_argument("--runs", type=int, default=5, help="measured runs inside each speed process (default 5)")
    parser.add_argument("--cold-runs", type=int, default=10, help="cold starts per stack (default 10)")
    parser.add_argument("--context-size", type=int, default=None,
                        help="context size for both (default: Workly picks its own, Python uses 2048 "
                             "as the original app did)")
    parser.add_argument("--flash-attn", action="store_true",
                        help="turn flash attention on for the Python side (the original left it off)")
    parser.add_argument("--only", choices=("speed", "cold"), help="measure only one of the two")
    parser.add_argument("--json-out", type=Path, help="also write the JSON report to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    version = check_setup(args)
    workly, python = build_sides(args)
    try:
        if args.only != "cold":
            log(f"speed: {args.rounds} round(s), {args.runs} run(s) each, alternating")
            for index in range(args.rounds):
                order = (workly, python) if index % 2 == 0 else (python, workly)
                log(f" round {index + 1}/{args.rounds}")
                for side in order:
                    side.run_speed()
        if args.only != "speed":
            log(f"cold start: {args.cold_runs} run(s) each after one discarded, alternating")
            for side in (workly, python):
                side.run_cold(record=False)  # page cache warm for both: process start, not disk
            for index in range(args.cold_runs):
                order = (workly, python) if index % 2 == 0 else (python, workly)
                for side in order:
                    side.run_cold()
    except BenchError as error:
        fail(str(error))
    except OSError as error:
        fail(f"could not run a child: {error}")

    w, p = workly.summary(), python.summary()
    ratios: dict[str, float | None] = {}
    if workly.prefill:
        ratios["prefill"] = ratio(w["prefill_tokens_per_s"], p["prefill_tokens_per_s"])
        ratios["decode"] = ratio(w["decode_tokens_per_s"], p["decode_tokens_per_s"])
    if workly.cold_ms:
        ratios["cold_start"] = ratio(w["cold_start_ms"], p["cold_start_ms"])
    report = {
        "model": str(args.model),
        "threads": args.threads,
        "rounds": args.rounds if args.only != "cold" else 0,
        "runs": args.runs if args.only != "cold" else 0,
        "cold_runs": args.cold_runs if args.only != "speed" else 0,
        "context_size": args.context_size,
        "python_flash_attn": args.flash_attn,
        "llama_cpp_python": version,
        "workly": w,
        "python": p,
        "ratios": ratios,
    }
    text = json.dumps(report, ensure_ascii=False)
    if args.json_out:
        args.json_out.write_text(text + "\n", encoding="utf-8")
    log("")
    log(table(report))
    print(text, flush=True)


if __name__ == "__main__":
    main()
