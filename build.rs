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
