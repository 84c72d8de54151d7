#!/usr/bin/env bash
# Sets up the Python baseline that Workly is measured against: the original
# companion's stack, llama-cpp-python, in its own virtual environment.
#
# The venv lives in Workly's cache directory, baseline-venv/ in
# ${WORKLY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/workly}.
# llama-cpp-python compiles its own llama.cpp; CMAKE_ARGS="-DGGML_NATIVE=ON"
# builds it for this CPU, like Workly's build (target-cpu=native), so both
# sides run the same native kernels. The first run compiles llama.cpp (15+
# minutes on 2 cores) into a wheel kept in the cache's wheels/ folder, which a
# venv made again on this machine installs in seconds; later runs do nothing
# if the package already imports.
#
# Usage: bench/baseline/setup.sh   (then: workly-bench compare --out DIR)
set -euo pipefail

VERSION="0.3.36"
CACHE="${WORKLY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/workly}"
VENV="$CACHE/baseline-venv"
WHEELS="$CACHE/wheels"
PY="$VENV/bin/python"

# A venv whose creation was cut short (no pip in it) is made again.
if ! "$PY" -m pip --version >/dev/null 2>&1; then
    echo "creating venv $VENV" >&2
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv --clear "$VENV" || {
        echo "error: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2
        exit 1
    }
fi

# The `server` extra is the OpenAI-compatible server the serving benchmark runs.
installed="$("$PY" -c 'import llama_cpp, llama_cpp.server.app; print(llama_cpp.__version__)' 2>/dev/null || true)"
if [ "$installed" = "$VERSION" ]; then
    echo "llama-cpp-python[server] $VERSION already installed in $VENV" >&2
    exit 0
fi

"$PY" -m pip install --upgrade pip >/dev/null
# The native wheel, built once by this script (pip's own cache is not used: it
# could hold a generic build of the same version, made without GGML_NATIVE).
if ! ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
    # Building needs a C/C++ compiler and cmake (pip fetches cmake if it is missing).
    for tool in cc c++; do
        command -v "$tool" >/dev/null || { echo "error: $tool not found (apt-get install build-essential)" >&2; exit 1; }
    done
    echo "building llama-cpp-python==$VERSION (compiles llama.cpp for this CPU; takes a while)" >&2
    mkdir -p "$WHEELS"
    CMAKE_ARGS="-DGGML_NATIVE=ON" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        "$PY" -m pip wheel --no-cache-dir --no-deps --wheel-dir "$WHEELS" "llama-cpp-python==$VERSION"
fi
echo "installing llama-cpp-python[server]==$VERSION from $WHEELS" >&2
"$PY" -m pip install --find-links "$WHEELS" "llama-cpp-python[server]==$VERSION"
"$PY" -c 'import llama_cpp; print("llama-cpp-python", llama_cpp.__version__, "ready")'
