# Sourced by scripts/setup.sh and scripts/test.sh, with cache_dir set: what a
# Vulkan build of llama.cpp takes from Workly's cache, where setup.sh --vulkan
# put it there because the system's was too old.
# - VULKAN_SDK: Debian 13's Vulkan headers.
# - CMAKE_PROGRAM_PATH: a glslc that knows the GLSL extensions of the faster
#   shader paths. llama-cpp-sys-2 passes CMAKE_* variables on to CMake, whose
#   search for glslc looks there before the system's folders.
# shellcheck shell=bash
[[ -f "$cache_dir/vulkan-headers/.unpacked" ]] && export VULKAN_SDK=${VULKAN_SDK:-$cache_dir/vulkan-headers/usr}
[[ -f "$cache_dir/glslc/.unpacked" ]] && export CMAKE_PROGRAM_PATH=${CMAKE_PROGRAM_PATH:-$cache_dir/glslc/bin}
true
