//! The `vulkan` build on a real Vulkan device: Mesa's software one
//! (lavapipe), the only Vulkan device this machine has. It shows that the
//! device list, its memory and the automatic GPU plan come from llama.cpp's
//! Vulkan backend and that the layers really go there; it says nothing about
//! a GPU's speed.
//!
//! `scripts/test.sh` builds that binary first and names it in
//! `WORKLY_VULKAN_BINARY`. llama.cpp skips CPU-type Vulkan devices unless
//! `GGML_VK_VISIBLE_DEVICES` names them, so the tests name lavapipe's.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{binary_in, json_output, small_model, text};

/// The Vulkan build, with lavapipe visible; `None` (said on stderr) when the
/// test command did not build one.
fn vulkan_workly(dir: &std::path::Path) -> Option<Command> {
    let Some(binary) = std::env::var_os("WORKLY_VULKAN_BINARY").map(PathBuf::from) else {
        eprintln!("WORKLY_VULKAN_BINARY is not set: scripts/test.sh builds the Vulkan binary and sets it");
        return None;
    };
    let mut command = binary_in(&binary, dir);
    command.env("GGML_VK_VISIBLE_DEVICES", "0");
    Some(command)
}

#[test]
fn doctor_lists_the_vulkan_device_and_plans_every_layer_onto_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut doctor) = vulkan_workly(dir.path()) else { return };
    let report = json_output(doctor.args(["doctor", "--json", "--model"]).arg(small_model()));
    assert_eq!(report["gpu_backend"], "vulkan");
    let gpu = &report["gpus"][0];
    assert_eq!(gpu["index"], 0, "{report:#}");
    assert_eq!(gpu["backend"], "Vulkan", "{report:#}");
    assert!(gpu["name"].as_str().unwrap().contains("llvmpipe"), "{report:#}");
    let (total, free) = (gpu["total_bytes"].as_u64().unwrap(), gpu["free_bytes"].as_u64().unwrap());
    assert!(total > 0 && free <= total, "{report:#}");
    // SmolLM2-135M: 30 layers and the output one, a few hundred MiB at most.
    assert_eq!(report["tuning"]["gpu_layers"], 31, "{report:#}");
    let reason = report["tuning"]["gpu_reason"].as_str().unwrap();
    assert!(reason.starts_with("all 30 layers and the output layer fit"), "{reason}");
}

#[test]
fn doctor_says_which_faster_shader_paths_the_build_compiled() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut doctor) = vulkan_workly(dir.path()) else { return };
    let report = json_output(doctor.args(["doctor", "--json", "--model"]).arg(small_model()));
    let shaders = &report["vulkan_shaders"];
    let compiled = |extension: &str| {
        let paths = shaders["paths"].as_array().unwrap_or_else(|| panic!("no shader paths: {report:#}"));
        let path = paths.iter().find(|path| path["extension"] == extension);
        path.unwrap_or_else(|| panic!("{extension} is not listed: {shaders:#}"))["compiled"] == true
    };
    // The set-up gives the build a glslc that knows these (the system's, or
    // Debian 13's where the system's does not).
    for extension in ["GL_KHR_cooperative_matrix", "GL_NV_cooperative_matrix2", "GL_EXT_integer_dot_product"] {
        assert!(compiled(extension), "{extension} was not compiled: {shaders:#}");
    }
    assert!(shaders["compiler"].as_str().unwrap().starts_with("shaderc "), "{shaders:#}");

    let Some(mut doctor) = vulkan_workly(dir.path()) else { return };
    let output = doctor.args(["doctor", "--model"]).arg(small_model()).output().unwrap();
    let shown = text(&output.stdout);
    assert!(shown.contains("\nShaders:  matrix cores, NVIDIA matrix cores 2, integer dot product"), "{shown}");
}

#[test]
fn a_reply_runs_with_the_layers_on_the_vulkan_device() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut chat) = vulkan_workly(dir.path()) else { return };
    let output = chat
        .args(["-v", "chat", "-p", "Hello!", "--max-tokens", "8", "--json", "--no-unity", "--model"])
        .arg(small_model())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{}\n{stderr}", output.status);
    let turn: serde_json::Value = serde_json::from_str(&text(&output.stdout)).unwrap();
    assert!(turn["completion_tokens"].as_u64().unwrap() > 0, "{turn:#}");
    // llama.cpp says where the weights went as it loads them.
    assert!(stderr.contains("Vulkan0 model buffer size"), "{stderr}");
}
