#!/usr/bin/env python3
"""The original Python companion's stack (llama-cpp-python), as a benchmark baseline.

Workly replaced a Python companion that ran GGUF models with llama-cpp-python.
This script does what that stack did, so that Workly can be measured against it
on the same model file, thread count and native kernels:

``speed``
    Prefill tokens/s on a 512-token prompt and decode tokens/s over 128
    generated tokens; one discarded run, then medians of ``--runs`` runs;
    one JSON line on stdout.
    After the original's warm-up (two tokens generated at load), also the
    time to the first token of a new conversation's first message, the very
    first one and the median of later ones.
``chat``
    One message, as the original app answered it: load the model, stream a
    ``create_chat_completion`` with the Kira persona, print each delta as it
    arrives. Used for cold start (process start to first streamed byte).
``ipc``
    The original avatar client: one ``sendall`` per JSON line. Reads the lines
    to send on stdin up to an empty line, connects, prints ``ready``, waits for
    ``go`` on stdin, sends them, prints the send-side seconds as JSON.
``threads``
    The thread count the original picked by itself: one per physical core,
    leaving the hyper-threads to the system and the GUI.

Run it with the baseline venv's Python (see ``setup.sh``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, NoReturn

# Workly's Kira persona (src/chat/persona.rs), word for word.
KIRA_SYSTEM_PROMPT = (
    "You are Kira, a warm and curious companion who lives on this computer. "
    "Answer in the user's language (French or English), in 2 to 4 short sentences, "
    "kindly and with a little humour. "
    "Tu es Kira : si l'on te parle en français, réponds en français."
)

# The same prose Workly's prefill benchmark repeats to length (src/bench/mod.rs).
PROSE = (
    "Kira watched the rain draw thin lines on the window while the kettle hummed. "
    "She liked these quiet evenings, when the city slowed down and the lamps came on one by one. "
    "Tomorrow there would be questions to answer and stories to tell, but tonight there was tea, "
    "an old book about lighthouses, and the soft blue glow of the screen. "
)

# The first messages Workly's time-to-first-token benchmark sends (src/bench/llm.rs).
OPENERS = [
    "Bonjour Kira ! Comment vas-tu ?",
    "Hi Kira, what are you up to today?",
    "Salut ! Tu peux me conseiller un livre ?",
    "Hello! I just finished work, I'm tired.",
    "Coucou Kira, il pleut encore ici.",
    "Hey, do you like music?",
    "Bonsoir ! Raconte-moi quelque chose de drôle.",
    "Good morning! Any idea for breakfast?",
]

# The same short prompt Workly's decode benchmark starts from.
DECODE_PROMPT = "Once upon a time, in a small village by the sea,"

PREFILL_TOKENS = 512
DECODE_TOKENS = 128
N_CTX = 2048
N_BATCH = 512


def default_model() -> Path:
    """Workly's default model in Workly's data directory."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    data_dir = os.environ.get("WORKLY_DATA_DIR") or str(Path(data_home) / "workly")
    return Path(data_dir) / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def fail(message: str, code: int = 1) -> NoReturn:
    """Prints an error on stderr and exits."""
    print(f"original.py: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def load(model: Path, threads: int, n_ctx: int, flash_attn: bool) -> Any:
    """Loads the model the way the original app did."""
    try:
        from llama_cpp import Llama
    except ImportError as error:
        fail(f"llama_cpp is not importable with {sys.executable} ({error}); run bench/baseline/setup.sh "
             "and use the baseline venv's python")
    if not model.is_file():
        fail(f"model file not found: {model}", 2)
    return Llama(
        model_path=str(model),
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=N_BATCH,
        flash_attn=flash_attn,
        verbose=False,
    )


def warm_up(llm: Any) -> float:
    """The original's cache warming: two tokens generated right after load; returns its milliseconds."""
    started = time.perf_counter()
    llm.create_completion("Hello", max_tokens=2, temperature=0)
    return (time.perf_counter() - started) * 1e3


def opener_ttft(llm: Any, opener: str) -> float:
    """Milliseconds from asking to the first streamed piece of a new conversation's first reply."""
    started = time.perf_counter()
    stream = llm.create_chat_completion(
        messages=[{"role": "system", "content": KIRA_SYSTEM_PROMPT}, {"role": "user", "content": opener}],
        stream=True,
        temperature=0,
        max_tokens=1,
    )
    first = None
    for chunk in stream:
        if first is None and chunk["choices"][0]["delta"].get("content"):
            first = time.perf_counter()
    # A first token that decodes to nothing still ended the wait when the stream did.
    return ((first or time.perf_counter()) - started) * 1e3


def physical_cores() -> int:
    """Physical cores from /proc/cpuinfo (distinct physical id and core id pairs), else logical CPUs."""
    cores, physical = set(), "0"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "physical id":
                    physical = value.strip()
                elif key.strip() == "core id":
                    cores.add((physical, value.strip()))
    except OSError:
        pass
    return len(cores) or os.cpu_count() or 1


def prompt_of_tokens(llm: Any, count: int) -> list[int]:
    """Exactly ``count`` tokens of repeated prose, from the model's own tokenizer."""
    text = PROSE
    while True:
        tokens: list[int] = llm.tokenize(text.encode("utf-8"), add_bos=True)
        if len(tokens) >= count:
            return tokens[:count]
        text += PROSE


def prefill_once(llm: Any, tokens: list[int]) -> float:
    """Tokens/s of evaluating ``tokens`` from an empty KV cache."""
    # reset() sets n_tokens to 0; eval() then removes every KV cell from
    # position n_tokens on (kv_cache_seq_rm(-1, 0, -1)), so nothing is reused.
    llm.reset()
    started = time.perf_counter()
    llm.eval(tokens)
    elapsed = time.perf_counter() - started
    if llm.n_tokens != len(tokens):
        fail(f"prefill evaluated {llm.n_tokens} tokens, expected {len(tokens)}")
    return len(tokens) / elapsed


def decode_once(llm: Any, prompt: list[int], count: int) -> float:
    """Tokens/s of generating exactly ``count`` tokens after ``prompt`` (greedy).

    ``Llama.generate`` is the loop ``create_completion`` runs: evaluate the last
    token, sample the next. It never stops at end-of-sequence by itself (that
    check lives in ``create_completion``), so exactly ``count`` steps run. The
    first ``next()`` evaluates the prompt and samples the first token; it is
    not timed. Each timed ``next()`` is one single-token eval plus one sample.
    """
    llm.reset()
    generator = llm.generate(prompt, temp=0.0, repeat_penalty=1.0, reset=True)
    try:
        next(generator)  # prompt eval + first sample: excluded
        started = time.perf_counter()
        for _ in range(count):
            next(generator)
        elapsed = time.perf_counter() - started
    finally:
        generator.close()
    expected = len(prompt) + count
    if llm.n_tokens != expected:
        fail(f"decode left {llm.n_tokens} tokens in the context, expected {expected}")
    return count / elapsed


def measure(runs: int, once: Callable[[], float]) -> float:
    """Median of ``runs`` measurements after one discarded run."""
    once()
    return statistics.median(once() for _ in range(runs))


def cmd_speed(args: argparse.Namespace) -> None:
    """``speed``: prefill and decode medians as one JSON line."""
    if args.runs < 1:
        fail("--runs must be at least 1", 2)
    llm = load(args.model, args.threads, args.n_ctx, args.flash_attn)
    import llama_cpp  # importable: load() checked
    warmup_ms = warm_up(llm)
    first_ttft = opener_ttft(llm, OPENERS[0])
    later = iter(OPENERS[1:] * (args.runs // (len(OPENERS) - 1) + 2))
    warm_ttft = measure(args.runs, lambda: opener_ttft(llm, next(later)))
    prefill_prompt = prompt_of_tokens(llm, PREFILL_TOKENS)
    decode_prompt: list[int] = llm.tokenize(DECODE_PROMPT.encode("utf-8"), add_bos=True)
    prefill = measure(args.runs, lambda: prefill_once(llm, prefill_prompt))
    decode = measure(args.runs, lambda: decode_once(llm, decode_prompt, DECODE_TOKENS))
    report = {
        "warmup_ms": round(warmup_ms, 2),
        "first_ttft_ms": round(first_ttft, 2),
        "warm_ttft_ms": round(warm_ttft, 2),
        "prefill_tokens_per_s": round(prefill, 2),
        "decode_tokens_per_s": round(decode, 2),
        "prefill_tokens": PREFILL_TOKENS,
        "decode_tokens": DECODE_TOKENS,
        "threads": args.threads,
        "runs": args.runs,
        "n_ctx": args.n_ctx,
        "flash_attn": args.flash_attn,
        "model": str(args.model),
        "llama_cpp_python": llama_cpp.__version__,
    }
    print(json.dumps(report), flush=True)


def cmd_chat(args: argparse.Namespace) -> None:
    """``chat``: one streamed reply with the Kira persona, deltas flushed as they come."""
    llm = load(args.model, args.threads, args.n_ctx, args.flash_attn)
    stream = llm.create_chat_completion(
        messages=[
            {"role": "system", "content": KIRA_SYSTEM_PROMPT},
            {"role": "user", "content": args.text},
        ],
        stream=True,
        temperature=0,
        max_tokens=args.max_tokens,
    )
    out = sys.stdout
    for chunk in stream:
        content = chunk["choices"][0]["delta"].get("content")
        if content:
            out.write(content)
            out.flush()
    out.write("\n")
    out.flush()


def cmd_ipc(args: argparse.Namespace) -> None:
    """``ipc``: the original avatar client, one ``sendall`` per command line."""
    import socket

    lines = []
    for raw in sys.stdin.buffer:
        if raw == b"\n":
            break
        lines.append(raw)
    with socket.create_connection((args.host, args.port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        print("ready", flush=True)
        if sys.stdin.buffer.readline().strip() != b"go":
            fail("expected go on stdin")
        started = time.perf_counter()
        for line in lines:
            sock.sendall(line)
        elapsed = time.perf_counter() - started
        # Close gracefully: closing with the peer's unread ack line in the
        # receive queue makes the kernel reset the connection, and the reset
        # drops whatever the peer has not read yet.
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(4096):
            pass
    print(json.dumps({"commands": len(lines), "send_seconds": elapsed}), flush=True)


def cmd_threads(_args: argparse.Namespace) -> None:
    """``threads``: the original's own thread count, as JSON."""
    print(json.dumps({"threads": physical_cores()}), flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", type=Path, default=default_model(),
                        help="GGUF file (default: Workly's default model)")
    common.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="n_threads and n_threads_batch (default: logical CPUs)")
    common.add_argument("--n-ctx", type=int, default=N_CTX, help=f"context size (default {N_CTX})")
    common.add_argument("--flash-attn", action="store_true",
                        help="enable flash attention (the original app left it off, the default)")
    sub = parser.add_subparsers(dest="command", required=True)
    speed = sub.add_parser("speed", parents=[common], help="prefill and decode tokens/s (JSON)")
    speed.add_argument("--runs", type=int, default=5, help="measured runs after one discarded (default 5)")
    speed.set_defaults(func=cmd_speed)
    chat = sub.add_parser("chat", parents=[common], help="stream one reply with the Kira persona")
    chat.add_argument("--max-tokens", type=int, default=32, help="most tokens in the reply (default 32)")
    chat.add_argument("text", help="the user's message")
    chat.set_defaults(func=cmd_chat)
    ipc = sub.add_parser("ipc", help="send the JSON lines read on stdin, one sendall each")
    ipc.add_argument("--host", default="127.0.0.1")
    ipc.add_argument("--port", type=int, required=True)
    ipc.set_defaults(func=cmd_ipc, threads=1)
    threads = sub.add_parser("threads", help="the original's thread count for this machine (JSON)")
    threads.set_defaults(func=cmd_threads, threads=1)
    args = parser.parse_args(argv)
    if args.threads < 1:
        fail("--threads must be at least 1", 2)
    return args


def main() -> None:
    """Entry point."""
    args = parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
