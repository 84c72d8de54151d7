#!/usr/bin/env bash
# Checks a GPU build of Workly on this machine's GPU, with figures. Build it
# first (scripts/setup.sh --cuda, or --vulkan); then:
#
#   scripts/gpu-check.sh [--shape 7b|1b|tiny] [--binary FILE] [--out DIR]
#                        [--llama-bench LLAMA_CPP_DIR] [--cpu-trial]
#
# No real model has to be fetched: a model of a real shape with random
# weights (7b: Mistral 7B's, 3.9 GiB in Q4_0) is made on the spot by
# scripts/random-model.py, with numpy and gguf in a venv in Workly's cache.
# Its speed and memory are those of a real model of that shape; its replies
# are noise. Then, each step with its own time limit, its own data folder and
# a line in DIR/summary.txt (its output in DIR/STEP.json, its log in
# DIR/STEP.log):
#   doctor       the GPUs llama.cpp sees, and Workly's plan for the model
#   chat         one reply with the automatic plan, llama.cpp's log kept
#   bench-llm    decode and prefill with the automatic plan
#   bench-gpu    every layer count, and whether the automatic one decodes
#                within 5 % of the best that fits
#   bench-cpu    the same model on the CPU alone (GPUs hidden), for the ratio
#   llama-bench  with --llama-bench: llama.cpp's own llama-bench, built with
#                the same backend from a llama.cpp source tree (the copy
#                Workly compiles, in the llama-cpp-sys-2 crate, leaves the
#                tools out: clone llama.cpp, ideally at the ggml version the
#                script prints), on the same model: Workly's decode should
#                reach 0.9 of it
#   fit-params   with it: llama.cpp's own fit of the model to the free
#                memory (llama_params_fit) at Workly's context, beside
#                Workly's plan
# DIR defaults to gpu-check/ in Workly's cache. The exit status is 0 when
# every step passed, 1 otherwise. --cpu-trial runs the steps on a machine
# without a GPU (the GPU steps then say so), to try the check itself.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
data_dir=${WORKLY_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/workly}
cache_dir=${WORKLY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/workly}
shape=7b
binary="${CARGO_TARGET_DIR:-$repo/target}/release/workly"
out="$cache_dir/gpu-check"
llama_cpp=""
cpu_trial=false
usage='usage: scripts/gpu-check.sh [--shape 7b|1b|tiny] [--binary FILE] [--out DIR] [--llama-bench LLAMA_CPP_DIR] [--cpu-trial]'
while (($#)); do
  case "$1" in
    --shape) shape=${2:-}; shift ;;
    --binary) binary=${2:-}; shift ;;
    --out) out=${2:-}; shift ;;
    --llama-bench) llama_cpp=${2:-}; shift ;;
    --cpu-trial) cpu_trial=true ;;
    *) printf 'gpu-check: unknown option %s (%s)\n' "$1" "$usage" >&2; exit 2 ;;
  esac
  shift
done
fail() { printf 'gpu-check: %s\n' "$*" >&2; exit 2; }
say() { printf 'gpu-check: %s\n' "$*" >&2; }
[[ $shape == 7b || $shape == 1b || $shape == tiny ]] || fail "--shape is 7b, 1b or tiny, not '$shape'"
[[ -x $binary ]] || fail "$binary: no Workly build there (scripts/setup.sh --cuda or --vulkan makes one)"
tokenizer="$data_dir/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [[ -n $llama_cpp && ! -f $llama_cpp/tools/llama-bench/llama-bench.cpp ]]; then
  fail "$llama_cpp: not a llama.cpp source tree with its tools (git clone https://github.com/ggml-org/llama.cpp)"
fi
[[ -f $tokenizer ]] || fail "$tokenizer is missing: the random model takes its vocabulary (scripts/setup.sh fetches it)"
mkdir -p "$out" || fail "cannot make $out"
: >"$out/summary.txt"

# --- the random model ---------------------------------------------------------
venv="$cache_dir/gguf-venv"
gguf_pin="gguf==0.19.0"
if [[ "$(cat "$venv/.pinned" 2>/dev/null)" != "$gguf_pin" ]]; then
  say "installing $gguf_pin (with numpy) into $venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check "$gguf_pin" ||
    fail "cannot install $gguf_pin into $venv (python3-venv and PyPI are needed)"
  echo "$gguf_pin" >"$venv/.pinned"
fi
model="$cache_dir/gpu-check-models/random-$shape.Q4_0.gguf"
if [[ ! -f $model ]]; then
  mkdir -p "$(dirname "$model")"
  say "making a random-weights $shape model"
  "$venv/bin/python" "$repo/scripts/random-model.py" --shape "$shape" --tokenizer "$tokenizer" --out "$model" ||
    fail "cannot make the $shape model"
fi

# --- the steps ------------------------------------------------------------------
failed=0
# step NAME LIMIT COMMAND...: runs COMMAND with its own data folder, stdout in
# NAME.json, stderr in NAME.log, and a line in summary.txt.
step() {
  local name=$1 limit=$2
  shift 2
  local data="$out/data/$name" started rc
  rm -rf "$data" && mkdir -p "$data"
  started=$(date +%s.%N)
  WORKLY_DATA_DIR="$data" WORKLY_CACHE_DIR="$data/cache" WORKLY_CONFIG="$data/config.toml" \
    timeout -k 10 "$limit" "$@" >"$out/$name.json" 2>"$out/$name.log" </dev/null
  rc=$?
  local seconds
  seconds=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  local note=""
  ((rc == 124 || rc == 137)) && note=" (stopped at its ${limit} s limit)"
  printf '%-12s exit %-3s %7s s%s\n' "$name" "$rc" "$seconds" "$note" | tee -a "$out/summary.txt" >&2
  ((rc == 0)) || failed=1
}
# llama.cpp's own lines about devices and buffers show at its debug level.
log="RUST_LOG=info,llama-cpp-2=debug"
step doctor 120 "$binary" doctor --json --model "$model"
gpus=$("$venv/bin/python" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["gpus"]))' "$out/doctor.json" 2>/dev/null)
backend=$("$venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["gpu_backend"])' "$out/doctor.json" 2>/dev/null)
if [[ ${gpus:-0} == 0 ]] && ! $cpu_trial; then
  fail "$binary sees no GPU ($(grep -o '"gpu_note": "[^"]*"' "$out/doctor.json" 2>/dev/null)); see $out/doctor.json"
fi
step chat 300 env "$log" "$binary" -v chat -p "Hello, how are you?" --model "$model" --max-tokens 64 --json --no-unity
step bench-llm 600 "$binary" bench llm --model "$model" --runs 2 --json
# A 7B model has 33 layer counts: every fourth is enough to see the curve.
step bench-gpu 1200 "$binary" bench gpu --model "$model" --runs 1 --step 4 --json
step bench-cpu 900 env CUDA_VISIBLE_DEVICES= GGML_VK_VISIBLE_DEVICES= \
  "$binary" bench llm --model "$model" --runs 1 --gpu-layers 0 --json

# --- llama.cpp's own figure -------------------------------------------------------
if [[ -n $llama_cpp ]]; then
  # The ggml version of the llama.cpp Workly compiles, against the tree given.
  ggml_version() { grep -oE 'GGML_VERSION_(MAJOR|MINOR|PATCH) [0-9]+' "$1/ggml/CMakeLists.txt" | awk '{print $2}' | paste -sd.; }
  workly_source=$(cargo metadata --format-version 1 --manifest-path "$repo/Cargo.toml" 2>/dev/null |
    "$venv/bin/python" -c 'import json, os, sys
for package in json.load(sys.stdin)["packages"]:
    if package["name"] == "llama-cpp-sys-2":
        print(os.path.join(os.path.dirname(package["manifest_path"]), "llama.cpp"))')
  wanted=$([[ -d $workly_source ]] && ggml_version "$workly_source")
  given=$(ggml_version "$llama_cpp")
  printf 'llama.cpp    ggml %s in %s; Workly builds ggml %s\n' "${given:-?}" "$llama_cpp" "${wanted:-?}" |
    tee -a "$out/summary.txt" >&2
  source=$llama_cpp
  flags=(-DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_NATIVE=ON)
  case "$backend" in
    cuda)
      flags+=(-DGGML_CUDA=ON)
      archs=${WORKLY_CUDA_ARCHS:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | tr -d . | sort -u | paste -sd';')}
      [[ -n $archs ]] && flags+=("-DCMAKE_CUDA_ARCHITECTURES=$archs")
      # The toolkit the set-up assembled, where no system one is installed.
      if ! command -v nvcc >/dev/null && [[ -x $cache_dir/cuda/root/bin/nvcc ]]; then
        flags+=("-DCMAKE_CUDA_COMPILER=$cache_dir/cuda/root/bin/nvcc" "-DCUDAToolkit_ROOT=$cache_dir/cuda/root")
      fi
      ;;
    vulkan)
      flags+=(-DGGML_VULKAN=ON)
      # The headers and glslc Workly's own Vulkan build took, so both have the same shader paths.
      # shellcheck source=scripts/vulkan-env.sh
      . "$repo/scripts/vulkan-env.sh"
      ;;
  esac
  build="$cache_dir/llama-bench-$backend"
  say "building llama.cpp's llama-bench ($backend) in $build"
  if cmake -S "$source" -B "$build" -DCMAKE_BUILD_TYPE=Release "${flags[@]}" >"$out/llama-bench-build.log" 2>&1 &&
    cmake --build "$build" --target llama-bench llama-fit-params -j "$(nproc)" >>"$out/llama-bench-build.log" 2>&1; then
    step llama-bench 900 "$build/bin/llama-bench" -m "$model" -ngl 999 -p 512 -n 128 -r 3 -o json
    context=$("$venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["tuning"]["context_size"])' \
      "$out/doctor.json" 2>/dev/null)
    step fit-params 300 "$build/bin/llama-fit-params" --model "$model" -c "${context:-8192}"
  else
    printf '%-12s could not be built: see llama-bench-build.log\n' llama-bench | tee -a "$out/summary.txt" >&2
    failed=1
  fi
fi

# --- the figures ------------------------------------------------------------------
# The figures, and whether the pick and the decode pass (exit 1 if not).
"$venv/bin/python" - "$out" "$shape" <<'EOF' | tee -a "$out/summary.txt"
import json, os, sys

out, shape = sys.argv[1], sys.argv[2]
passed = True


def read(name):
    try:
        with open(os.path.join(out, name + ".json")) as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


print(f"\nfigures (random-weights {shape} model, Q4_0)")
doctor = read("doctor")
if doctor:
    for gpu in doctor["gpus"]:
        print(f"  GPU: {gpu.get('name')} ({gpu.get('backend')}), {gpu.get('total_bytes', 0) / 2**30:.1f} GiB")
    tuning = doctor["tuning"]
    print(f"  plan: {tuning['gpu_layers']} layers on the GPU ({tuning['gpu_reason']}); "
          f"context {tuning['context_size']} ({tuning['context_reason']})")
gpu, cpu = read("bench-llm"), read("bench-cpu")
for name, report in (("automatic plan", gpu), ("CPU only", cpu)):
    if report:
        print(f"  {name}: decode {report['decode_tokens_per_s']:.1f} tokens/s, "
              f"prefill {report['prefill_tokens_per_s']:.1f} tokens/s, {report['gpu_layers']} GPU layers")
if gpu and cpu and gpu["gpu_layers"] > 0 and cpu["decode_tokens_per_s"] > 0:
    print(f"  GPU over CPU: decode x{gpu['decode_tokens_per_s'] / cpu['decode_tokens_per_s']:.3g}, "
          f"prefill x{gpu['prefill_tokens_per_s'] / max(cpu['prefill_tokens_per_s'], 1e-9):.3g}")
sweep = read("bench-gpu")
if sweep:
    verdict = sweep["verdict"]
    print(f"  bench gpu: picked {verdict['picked_layers']} layers, best {verdict['best_layers']}, "
          f"picked/best decode {verdict['picked_over_best']:.3f} (0.95 or more passes)")
    passed &= verdict["picked_over_best"] >= 0.95
try:
    with open(os.path.join(out, "fit-params.json")) as file:
        fit = file.read().split()
    if doctor and "-ngl" in fit:
        print(f"  llama.cpp's own fit: {fit[fit.index('-ngl') + 1]} layers at context "
              f"{fit[fit.index('-c') + 1] if '-c' in fit else doctor['tuning']['context_size']}; "
              f"Workly's plan: {doctor['tuning']['gpu_layers']} layers at {doctor['tuning']['context_size']}")
except OSError:
    pass
reference = read("llama-bench")
if reference and gpu:
    tests = {("pp" if row.get("n_prompt") else "tg"): row.get("avg_ts", 0) for row in reference}
    if tests.get("tg"):
        print(f"  llama-bench: decode {tests['tg']:.1f} tokens/s, prefill {tests.get('pp', 0):.1f} tokens/s; "
              f"Workly's decode is {gpu['decode_tokens_per_s'] / tests['tg']:.2f} of it (0.9 or more passes)")
        passed &= gpu["decode_tokens_per_s"] >= 0.9 * tests["tg"]
sys.exit(0 if passed else 1)
EOF
((PIPESTATUS[0] == 0)) || failed=1
say "the outputs and logs are in $out"
exit "$failed"
