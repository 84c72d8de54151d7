#!/usr/bin/env bash
# Assembles the CUDA 13.0 toolkit the `cuda` feature builds with, from
# NVIDIA's own PyPI wheels: for a machine without NVIDIA's system toolkit
# (no root, no GPU and no driver needed to build). Linux x86-64 only.
# scripts/setup.sh --cuda runs it when it finds no system toolkit.
#
#   scripts/cuda-toolkit.sh DIR
#
# DIR receives:
#   venv/   the pinned wheels (about 0.6 GB to download, 1.1 GB installed)
#   root/   a toolkit root laid out as an installed one (bin/, nvvm/,
#           include/, lib64/ and lib -> lib64), hard links into venv/, with
#           lib64/stubs/libcuda.so: a link-time stand-in for the driver
#   shim/lib64/   two empty archives named as the static cuBLAS (see below)
#   .ready  written last; a second run finds it and stops at once.
set -euo pipefail

(($# == 1)) || {
  echo "usage: scripts/cuda-toolkit.sh DIR" >&2
  exit 2
}
dir=$1
say() { printf 'cuda-toolkit: %s\n' "$*" >&2; }

# CUDA 13.0 Update 2: the versions the `cuda-toolkit==13.0.2` metapackage
# pins, each wheel (manylinux x86-64) by its sha256, so that nothing else can
# be installed. nvcc's wheel needs nvvm, the runtime and crt.
requirements='nvidia-cublas==13.1.0.3 --hash=sha256:ee8722c1f0145ab246bccb9e452153b5e0515fd094c3678df50b2a0888b8b171
nvidia-cuda-cccl==13.0.85 --hash=sha256:e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649
nvidia-cuda-crt==13.0.88 --hash=sha256:2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4
nvidia-cuda-culibos==13.0.85 --hash=sha256:5c178858405f485367175e14f8a7536af6c86c5c428d25301f2218406c316ba0
nvidia-cuda-nvcc==13.0.88 --hash=sha256:56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03
nvidia-cuda-nvrtc==13.0.88 --hash=sha256:ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575
nvidia-cuda-runtime==13.0.96 --hash=sha256:7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
nvidia-nvvm==13.0.88 --hash=sha256:c5f41ffeb6466944a026dfa5317d7d85355c119bbec279205d22f1869d1054e0'

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# A changed list of wheels makes the tree again.
if [[ -f "$dir/.ready" && "$(cat "$dir/.ready")" == "$requirements" ]]; then
  exit 0
fi
[[ $(uname -sm) == "Linux x86_64" ]] || {
  say "NVIDIA's toolkit wheels are for Linux x86-64, not $(uname -sm): install the CUDA toolkit itself"
  exit 1
}
rm -f "$dir/.ready"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- the wheels ----------------------------------------------------------------
venv="$dir/venv"
"$venv/bin/python" -c '' 2>/dev/null || {
  rm -rf "$venv"
  python3 -m venv "$venv"
}
echo "$requirements" >"$work/requirements.txt"
say "installing NVIDIA's CUDA 13.0 wheels into $venv (about 0.6 GB)"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: --require-hashes \
  -r "$work/requirements.txt"
cuda=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/cu13
[[ -x "$cuda/bin/nvcc" && -f "$cuda/include/cuda.h" ]] || {
  say "the wheels hold no CUDA 13 tree at $cuda"
  exit 1
}

# --- root/: the layout nvcc.profile, CMake and llama-cpp-sys-2 look for -------
# Hard links keep it free on disk; a copy where the file system refuses them.
link_tree() { cp -al "$1" "$2" 2>/dev/null || { rm -rf "$2" && cp -a "$1" "$2"; }; }
root="$dir/root.partial"
rm -rf "$root"
mkdir -p "$root/nvvm/lib64"
link_tree "$cuda/bin" "$root/bin"
link_tree "$cuda/include" "$root/include"
link_tree "$cuda/lib" "$root/lib64"
link_tree "$cuda/nvvm/bin" "$root/nvvm/bin"
link_tree "$cuda/nvvm/libdevice" "$root/nvvm/libdevice"
ln "$cuda/lib/libnvvm.so.4" "$root/nvvm/lib64/libnvvm.so.4" 2>/dev/null || cp "$cuda/lib/libnvvm.so.4" "$root/nvvm/lib64/"
ln -s libnvvm.so.4 "$root/nvvm/lib64/libnvvm.so"
ln -s lib64 "$root/lib"
# The wheels carry versioned names only (libcublas.so.13); linkers ask for libcublas.so.
for library in "$root"/lib64/lib*.so.*; do
  name=${library##*/}
  [[ $name == libnvvm.so.* || $name == *.alt.* ]] && continue
  ln -sf "$name" "$root/lib64/${name%%.so.*}.so"
done

# The driver library (libcuda.so.1) comes with the NVIDIA driver at run time,
# and the wheels carry no stub of it to link against. This one has an empty
# function for every cu* name cuda.h declares, under each name its macros can
# give (plain, _v2, _ptds, _ptsz), and the driver's SONAME, so the binary asks
# for the real one. It is never run and never shipped.
printf '#include <cuda.h>\n' >"$work/driver.c"
for defines in "" "-D__CUDA_API_VERSION_INTERNAL" "-DCUDA_API_PER_THREAD_DEFAULT_STREAM" \
  "-D__CUDA_API_VERSION_INTERNAL -DCUDA_API_PER_THREAD_DEFAULT_STREAM"; do
  # shellcheck disable=SC2086 # zero to two words
  gcc -E -P $defines -I"$root/include" "$work/driver.c"
done | grep -oE '\bcu[A-Za-z0-9_]+[[:space:]]*\(' | tr -d '( \t' | sort -u |
  awk '{ print "int " $0 "(void) { return 999; }" }' >"$work/stub.c"
mkdir -p "$root/lib64/stubs"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib64/stubs/libcuda.so" "$work/stub.c"
rm -rf "$dir/root"
mv "$root" "$dir/root"

# --- shim/: llama-cpp-sys-2 links cuBLAS statically on Linux, which the wheels
# do not ship. rustc must still find archives of those names: empty ones stand
# in, and Workly's build script links the wheels' shared cuBLAS instead
# (WORKLY_CUBLAS_DIR, which setup.sh sets).
mkdir -p "$dir/shim/lib64/stubs"
for archive in libcublas_static.a libcublasLt_static.a; do
  printf '!<arch>\n' >"$dir/shim/lib64/$archive"
done

"$dir/root/bin/nvcc" --version | tail -n1 >&2
echo "$requirements" >"$dir/.ready"
say "ready: $dir/root"
