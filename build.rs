//! Embeds the page's JavaScript dependencies (three.js and three-vrm, pinned in
//! `web/package.json` and installed by `scripts/setup.sh` with `npm ci`) into
//! the binary, so `workly serve` needs no network and no files at run time.
//!
//! The build never runs npm itself: when `web/node_modules` is missing, the
//! binary still builds and its page says how to install them.
//!
//! With the `cuda` feature and `WORKLY_CUBLAS_DIR` (set by `scripts/setup.sh
//! --cuda` when it builds with the toolkit from NVIDIA's wheels), it also links
//! that folder's shared cuBLAS: llama-cpp-sys-2 asks for the static cuBLAS,
//! which the wheels do not ship.
//!
//! With the `vulkan` feature, it records which of llama.cpp's faster Vulkan
//! shader paths the build compiled, for `workly doctor` (see
//! [`record_vulkan_shaders`]).

use std::path::Path;

/// (path the server answers, file under `web/node_modules`).
const VENDOR: [(&str, &str); 6] = [
    ("/vendor/three/three.module.js", "three/build/three.module.js"),
    // three.module.js imports its core as a sibling module.
    ("/vendor/three/three.core.js", "three/build/three.core.js"),
    ("/vendor/three/addons/loaders/GLTFLoader.js", "three/examples/jsm/loaders/GLTFLoader.js"),
    ("/vendor/three/addons/utils/BufferGeometryUtils.js", "three/examples/jsm/utils/BufferGeometryUtils.js"),
    ("/vendor/three/addons/utils/SkeletonUtils.js", "three/examples/jsm/utils/SkeletonUtils.js"),
    ("/vendor/three-vrm/three-vrm.module.min.js", "@pixiv/three-vrm/lib/three-vrm.module.min.js"),
];

fn main() {
    link_shared_cublas();
    record_vulkan_shaders();
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let modules = Path::new(&manifest).join("web/node_modules");
    // npm rewrites this file on every install, so it marks a changed tree
    // without cargo scanning all of node_modules.
    println!("cargo:rerun-if-changed=web/package-lock.json");
    // Cargo reruns a script on every build while a watched file is missing:
    // without node_modules, watch `web/` itself, which changes when they come.
    if modules.join(".package-lock.json").is_file() {
        println!("cargo:rerun-if-changed=web/node_modules/.package-lock.json");
    } else {
        println!("cargo:rerun-if-changed=web");
    }

    let files: Vec<_> = VENDOR.iter().map(|(served, file)| (*served, modules.join(file))).collect();
    let complete = files.iter().all(|(_, path)| path.is_file());
    let mut code = String::from("/// The page's JavaScript dependencies: (served path, contents).\n");
    code.push_str("pub static VENDOR: &[(&str, &[u8])] = &[\n");
    if complete {
        // Paths from the crate's own directory as the compiler sees it, not as
        // this script did: a build cache shared by checkouts in other folders
        // may reuse this output after the folder it ran in is gone.
        for (served, file) in VENDOR {
            let path = format!("/web/node_modules/{file}");
            code.push_str(&format!(
                "    ({served:?}, include_bytes!(concat!(env!(\"CARGO_MANIFEST_DIR\"), {path:?}))),\n"
            ));
        }
    } else {
        println!(
            "cargo:warning=web/node_modules is missing or incomplete: the page will lack three.js (run scripts/setup.sh)"
        );
    }
    code.push_str("];\n");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out).join("vendor.rs"), code).expect("OUT_DIR is writable");
}

/// Links the shared cuBLAS of `WORKLY_CUBLAS_DIR` into a `cuda` build, and
/// lets the binary find it there at run time.
///
/// As link arguments they come after the static llama.cpp libraries on the
/// linker's command line, so `--as-needed` keeps them; the empty archives
/// that stand in for the static cuBLAS give nothing.
fn link_shared_cublas() {
    println!("cargo:rerun-if-env-changed=WORKLY_CUBLAS_DIR");
    let (Some(_), Some(dir)) = (std::env::var_os("CARGO_FEATURE_CUDA"), std::env::var_os("WORKLY_CUBLAS_DIR")) else {
        return;
    };
    let dir = Path::new(&dir);
    for library in ["libcublas.so", "libcublasLt.so"] {
        println!("cargo:rustc-link-arg={}", dir.join(library).display());
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
}

/// The GLSL extensions of llama.cpp's faster Vulkan shader paths, with the
/// feature-test shader ggml compiles to decide whether glslc knows each
/// (`ggml/src/ggml-vulkan/CMakeLists.txt`).
const VULKAN_SHADER_TESTS: [(&str, &str); 4] = [
    ("GL_KHR_cooperative_matrix", "coopmat.comp"),
    ("GL_NV_cooperative_matrix2", "coopmat2.comp"),
    ("GL_EXT_integer_dot_product", "integer_dot.comp"),
    ("GL_EXT_bfloat16", "bfloat16.comp"),
];

/// With the `vulkan` feature, tells the crate which of llama.cpp's faster
/// Vulkan shader paths were compiled: `WORKLY_VULKAN_SHADERS` lists
/// `EXTENSION=1` or `EXTENSION=0` for each of [`VULKAN_SHADER_TESTS`], and
/// `WORKLY_VULKAN_GLSLC` names the compiler.
///
/// ggml compiles a path only when the glslc its CMake found knows the
/// path's extension, and keeps the answer to itself (a compile definition).
/// So the same tests are run again on the same glslc, read from llama.cpp's
/// CMake cache, with ggml's own test shaders and its own criterion: glslc
/// saying "extension not supported" for it.
fn record_vulkan_shaders() {
    if std::env::var_os("CARGO_FEATURE_VULKAN").is_none() {
        return;
    }
    let report = match vulkan_shaders() {
        Ok(report) => report,
        Err(why) => {
            println!("cargo:warning=cannot tell which Vulkan shader paths llama.cpp compiled: {why}");
            (String::new(), String::new())
        }
    };
    println!("cargo:rustc-env=WORKLY_VULKAN_SHADERS={}", report.0);
    println!("cargo:rustc-env=WORKLY_VULKAN_GLSLC={}", report.1);
}

/// (`WORKLY_VULKAN_SHADERS`, `WORKLY_VULKAN_GLSLC`), or why not.
fn vulkan_shaders() -> Result<(String, String), String> {
    // llama-cpp-sys-2 (`links = "llama"`) gives its CMake package folder,
    // `OUT/lib/cmake`; CMake's cache is in `OUT/build`.
    let cmake_dir = std::env::var_os("DEP_LLAMA_GGML_CMAKE_DIR").ok_or("llama-cpp-sys-2 gave no CMake folder")?;
    let out = Path::new(&cmake_dir).parent().and_then(Path::parent).ok_or("llama-cpp-sys-2's CMake folder")?;
    let cache_file = out.join("build/CMakeCache.txt");
    println!("cargo:rerun-if-changed={}", cache_file.display());
    let cache = std::fs::read_to_string(&cache_file).map_err(|error| format!("{}: {error}", cache_file.display()))?;
    // Entries read `NAME:TYPE=VALUE`.
    let entry = |name: &str| {
        cache.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.split(':').next() == Some(name)).then(|| value.to_owned())
        })
    };
    let glslc = entry("Vulkan_GLSLC_EXECUTABLE").ok_or("no glslc in llama.cpp's CMake cache")?;
    let ggml = entry("ggml_SOURCE_DIR").ok_or("no ggml source folder in llama.cpp's CMake cache")?;
    let tests = Path::new(&ggml).join("src/ggml-vulkan/vulkan-shaders/feature-tests");
    let mut compiled = Vec::new();
    for (extension, shader) in VULKAN_SHADER_TESTS {
        let output = std::process::Command::new(&glslc)
            .args(["-o", "-", "-fshader-stage=compute", "--target-env=vulkan1.3"])
            .arg(tests.join(shader))
            .output()
            .map_err(|error| format!("{glslc}: {error}"))?;
        let lacks = String::from_utf8_lossy(&output.stderr).contains(&format!("extension not supported: {extension}"));
        compiled.push(format!("{extension}={}", u8::from(!lacks)));
    }
    let version =
        std::process::Command::new(&glslc).arg("--version").output().map_err(|error| format!("{glslc}: {error}"))?;
    let version = String::from_utf8_lossy(&version.stdout).lines().next().unwrap_or("glslc").trim().to_owned();
    Ok((compiled.join(","), version))
}
