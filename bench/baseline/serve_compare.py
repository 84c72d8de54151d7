#!/usr/bin/env python3
"""`workly serve` against the original Python stack served the same way.

Both servers run the same model file with the same thread count and context:
``workly serve`` and llama-cpp-python's OpenAI server (``python -m
llama_cpp.server``, from the venv ``setup.sh`` makes). One scripted 20-turn
conversation is sent to each, turn by turn, streamed, greedy:

* **window**: the original chat engine's way, the system prompt plus the last
  ``--window`` exchanges, so from turn ``window + 2`` on the start of the
  prompt changes every turn;
* **full** (Workly only): the whole growing history.

Before each turn the client pauses ``--pause`` seconds, untimed, as a person
reads the reply and types the next message (Workly uses that time to evaluate
the next turn's header; a client firing turns back to back would make that
work count against the next turn instead). For every turn the client records
the time to the first streamed token (from sending the request), and the streaming speed it received (tokens after the
first over the time they took, counted from the usage the server reports or
from the chunks). Workly also reports its engine's own decode speed in each
reply (``workly.decode_tokens_per_s``), so the share of the engine's speed a
client actually receives is measured too. Start-up is measured for Workly:
from spawning ``workly serve`` to ``/health`` saying ready, and to the first
streamed token of a first request.

The stacks run one after the other inside each of ``--rounds`` rounds, in
alternating order, and every figure is the median over rounds. The JSON report
goes to stdout (and ``--json-out``); a table goes to stderr. Standard library only.

    bench/baseline/setup.sh
    python3 bench/baseline/serve_compare.py --rounds 3
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "workly" / "baseline-venv"
SYSTEM = (
    "You are Kira, a warm and curious companion who lives on this computer. "
    "Reply in 2 to 4 short sentences, kindly and with a little humour."
)
SCRIPT = [
    "Hi Kira! I'm Sam, nice to meet you.",
    "I just moved to a new city last week.",
    "It's Lyon, in France. Have you heard of it?",
    "I love cooking. What should I make tonight?",
    "I don't have any mushrooms, sadly.",
    "Do you know a good dessert that is quick?",
    "My sister is visiting on Saturday.",
    "She likes museums and long walks.",
    "What could we do if it rains?",
    "I also need to find a new job soon.",
    "I used to work as a librarian.",
    "Do you think I should try something new?",
    "Maybe something with books, still.",
    "How do I write a good cover letter?",
    "Thanks! What about the interview?",
    "I get nervous when people stare at me.",
    "Any tricks to stay calm?",
    "I'll try breathing slowly. Good idea.",
    "By the way, what's your favourite season?",
    "Thanks for the chat, Kira. See you tomorrow!",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_http(port: int, path: str, deadline_s: float, process: subprocess.Popen) -> float:
    """Polls GET path until 200; returns the time it answered."""
    deadline = time.perf_counter() + deadline_s
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"serve_compare.py: the server exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return time.perf_counter()
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"serve_compare.py: no answer on port {port} after {deadline_s} s")


def stream_turn(port: int, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
    """One streamed request; returns the reply and what the client measured."""
    body = json.dumps(
        {
            "model": "any",
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    sent = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        raise SystemExit(f"serve_compare.py: HTTP {response.status}: {response.read()[:300]!r}")
    text, first, last, chunks, usage, extension = "", None, None, 0, None, None
    for raw in response:
        line = raw.decode("utf-8").strip()
        if not line.startswith("data: "):
            continue
        data = line[len("data: ") :]
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        usage = chunk.get("usage") or usage
        extension = chunk.get("workly") or extension
        for choice in chunk.get("choices", []):
            piece = (choice.get("delta") or {}).get("content") or ""
            if piece:
                now = time.perf_counter()
                first = first or now
                last = now
                chunks += 1
                text += piece
    connection.close()
    tokens = (usage or {}).get("completion_tokens") or chunks
    streamed = (tokens - 1) / (last - first) if first and last and last > first and tokens > 1 else None
    return {
        "text": text,
        "ttft_ms": (first - sent) * 1e3 if first else None,
        "completion_tokens": tokens,
        "client_tokens_per_s": streamed,
        "engine_decode_tokens_per_s": (extension or {}).get("decode_tokens_per_s"),
        "prompt_tokens": (usage or {}).get("prompt_tokens"),
        "cached_tokens": ((usage or {}).get("prompt_tokens_details") or {}).get("cached_tokens"),
    }


def conversation(port: int, window: int | None, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The scripted conversation; `window` exchanges of history (None: all)."""
    turns, max_tokens = args.turns, args.max_tokens
    exchanges: list[tuple[str, str]] = []
    results = []
    for user in SCRIPT[:turns]:
        kept = exchanges if window is None else exchanges[len(exchanges) - window :] if window else []
        messages = [{"role": "system", "content": SYSTEM}]
        for asked, answered in kept:
            messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
        messages.append({"role": "user", "content": user})
        time.sleep(args.pause)
        result = stream_turn(port, messages, max_tokens)
        exchanges.append((user, result["text"]))
        results.append(result)
    return results


def start_workly(args: argparse.Namespace, port: int) -> tuple[subprocess.Popen, dict[str, float]]:
    data = tempfile.mkdtemp(prefix="workly-serve-bench-")
    command = [
        str(args.workly), "serve", "--port", str(port), "--model", str(args.model),
        "--threads", str(args.threads), "--context-size", str(args.context_size),
    ]
    env = dict(os.environ, WORKLY_CACHE_DIR=os.path.join(data, "cache"), WORKLY_CONFIG=os.path.join(data, "c.toml"))
    spawned = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = wait_http(port, "/health", 120, process)
    first = stream_turn(port, [{"role": "user", "content": "Bonjour Kira !"}], 4)
    startup = {
        "to_ready_ms": (ready - spawned) * 1e3,
        "to_first_token_ms": (ready - spawned) * 1e3 + (first["ttft_ms"] or 0.0),
    }
    return process, startup


def start_python(args: argparse.Namespace, port: int) -> subprocess.Popen:
    command = [
        str(VENV / "bin" / "python"), "-m", "llama_cpp.server", "--model", str(args.model),
        "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(args.threads),
        "--n_threads_batch", str(args.threads), "--n_ctx", str(args.context_size),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(port, "/v1/models", 120, process)
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def median(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def per_turn(rounds: list[list[dict[str, Any]]], key: str) -> list[float | None]:
    return [median([run[turn][key] for run in rounds]) for turn in range(len(rounds[0]))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_model = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "workly/models"
    parser.add_argument("--model", type=Path, default=default_model / "SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--workly", type=Path, default=REPO / "target/release/workly")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--context-size", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--turns", type=int, default=len(SCRIPT))
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--pause", type=float, default=0.5, help="untimed seconds before each turn (reading, typing)")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    if not (VENV / "bin" / "python").exists():
        raise SystemExit("serve_compare.py: run bench/baseline/setup.sh first")

    python_window, workly_window, workly_full, startups = [], [], [], []
    for round_index in range(args.rounds):
        order = ["python", "workly"] if round_index % 2 == 0 else ["workly", "python"]
        for stack in order:
            port = free_port()
            print(f"round {round_index + 1}/{args.rounds}: {stack}", file=sys.stderr)
            if stack == "python":
                process = start_python(args, port)
                try:
                    python_window.append(conversation(port, args.window, args))
                finally:
                    stop(process)
            else:
                process, startup = start_workly(args, port)
                try:
                    startups.append(startup)
                    workly_window.append(conversation(port, args.window, args))
                    workly_full.append(conversation(port, None, args))
                finally:
                    stop(process)

    sliding = slice(args.window, args.turns)  # turns window+1 .. end (1-based)
    python_ttft = per_turn(python_window, "ttft_ms")
    workly_ttft = per_turn(workly_window, "ttft_ms")
    full_ttft = per_turn(workly_full, "ttft_ms")
    python_late = median(python_ttft[sliding])
    workly_late = median(workly_ttft[sliding])
    client = [r["client_tokens_per_s"] for run in workly_window + workly_full for r in run]
    engine = [r["engine_decode_tokens_per_s"] for run in workly_window + workly_full for r in run]
    shares = [c / e for c, e in zip(client, engine) if c and e]
    python_client = [r["client_tokens_per_s"] for run in python_window for r in run]
    report = {
        "machine": {"cpus": os.cpu_count(), "threads": args.threads},
        "settings": {
            "model": args.model.name, "rounds": args.rounds, "turns": args.turns, "window": args.window,
            "max_tokens": args.max_tokens, "context_size": args.context_size,
        },
        "window_ttft_ms_by_turn": {"python": python_ttft, "workly": workly_ttft},
        "window_cached_tokens_by_turn": {
            "python": per_turn(python_window, "cached_tokens"), "workly": per_turn(workly_window, "cached_tokens"),
        },
        "window_late_turns_median_ttft_ms": {
            "python": python_late, "workly": workly_late,
            "workly_over_python": workly_late / python_late if python_late and workly_late else None,
        },
        "full_history_ttft_ms_by_turn": full_ttft,
        "full_history_last_over_first": full_ttft[-1] / full_ttft[0] if full_ttft[0] and full_ttft[-1] else None,
        "streaming": {
            "workly_client_over_engine_median": median(shares),
            "workly_client_tokens_per_s_median": median(client),
            "python_client_tokens_per_s_median": median(python_client),
        },
        "workly_startup_ms": {
            "to_ready": median([s["to_ready_ms"] for s in startups]),
            "to_first_token": median([s["to_first_token_ms"] for s in startups]),
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    print(
        f"\nwindow of {args.window}, turns {args.window + 1}-{args.turns}, median TTFT: "
        f"python {python_late:.0f} ms, workly {workly_late:.0f} ms "
        f"(ratio {report['window_late_turns_median_ttft_ms']['workly_over_python']:.3f}, target <= 0.2)\n"
        f"full history: turn {args.turns} / turn 1 TTFT = {report['full_history_last_over_first']:.2f} (target <= 1.5)\n"
        f"streaming: client receives {report['streaming']['workly_client_over_engine_median']:.3f} of the engine's "
        f"decode speed (target >= 0.95)\n"
        f"workly start: ready in {report['workly_startup_ms']['to_ready']:.0f} ms, "
        f"first token at {report['workly_startup_ms']['to_first_token']:.0f} ms",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
