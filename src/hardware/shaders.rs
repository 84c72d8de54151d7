//! Which of llama.cpp's faster Vulkan shader paths this binary has.
//!
//! ggml compiles its matrix-core, integer-dot-product and bfloat16 shaders
//! only when the glslc it is built with knows their GLSL extensions; an older
//! glslc leaves every GPU on the slow paths (prefill most of all) without a
//! word. The build script asks the same glslc the same questions and records
//! the answers (`WORKLY_VULKAN_SHADERS`, `WORKLY_VULKAN_GLSLC`); `workly
//! doctor` shows them. A path runs on a GPU only if its driver has the
//! extension too.

use serde::{Deserialize, Serialize};

/// One of the faster shader paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShaderPath {
    /// The GLSL extension it needs, e.g. `GL_EXT_integer_dot_product`.
    pub extension: String,
    /// What it is, for people: "integer dot product".
    pub name: String,
    /// Whether this build compiled it.
    pub compiled: bool,
}

/// The faster shader paths of a Vulkan build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VulkanShaders {
    /// The glslc that compiled the shaders, as its `--version` names itself.
    pub compiler: String,
    /// Each path, compiled or not.
    pub paths: Vec<ShaderPath>,
}

impl VulkanShaders {
    /// This binary's, when it has the Vulkan backend and its build could tell.
    pub fn of_this_build() -> Option<Self> {
        if !cfg!(feature = "vulkan") {
            return None;
        }
        Self::parse(option_env!("WORKLY_VULKAN_SHADERS")?, option_env!("WORKLY_VULKAN_GLSLC").unwrap_or_default())
    }

    /// The build script's record: `EXTENSION=1` or `EXTENSION=0`, comma
    /// separated; `None` when it holds nothing (the build could not tell).
    fn parse(record: &str, compiler: &str) -> Option<Self> {
        let paths: Vec<ShaderPath> = record
            .split(',')
            .filter_map(|entry| entry.split_once('='))
            .map(|(extension, compiled)| ShaderPath {
                extension: extension.to_owned(),
                name: name_of(extension).to_owned(),
                compiled: compiled == "1",
            })
            .collect();
        (!paths.is_empty()).then(|| Self { compiler: compiler.to_owned(), paths })
    }

    /// One line for `workly doctor`: the paths compiled and those left out.
    pub fn render(&self) -> String {
        let names = |compiled: bool| -> Vec<&str> {
            self.paths.iter().filter(|path| path.compiled == compiled).map(|path| path.name.as_str()).collect()
        };
        let (with, without) = (names(true), names(false));
        let compiler = if self.compiler.is_empty() { "glslc" } else { &self.compiler };
        match (with.is_empty(), without.is_empty()) {
            (_, true) => format!("{} (compiled by {compiler})", with.join(", ")),
            (true, false) => format!(
                "none of the faster paths ({}): {compiler} is too old (scripts/setup.sh --vulkan fetches a newer glslc)",
                without.join(", ")
            ),
            (false, false) => format!("{}; not {} (compiled by {compiler})", with.join(", "), without.join(", ")),
        }
    }
}

/// A shader path's name for people, by its GLSL extension.
fn name_of(extension: &str) -> &str {
    match extension {
        "GL_KHR_cooperative_matrix" => "matrix cores",
        "GL_NV_cooperative_matrix2" => "NVIDIA matrix cores 2",
        "GL_EXT_integer_dot_product" => "integer dot product",
        "GL_EXT_bfloat16" => "bfloat16",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_record_reads_as_the_paths_compiled_and_left_out() {
        let record =
            "GL_KHR_cooperative_matrix=1,GL_NV_cooperative_matrix2=1,GL_EXT_integer_dot_product=1,GL_EXT_bfloat16=0";
        let shaders = VulkanShaders::parse(record, "shaderc 2025.2-1").unwrap();
        assert_eq!(shaders.paths.len(), 4);
        assert!(shaders.paths[2].compiled && !shaders.paths[3].compiled);
        assert_eq!(
            shaders.render(),
            "matrix cores, NVIDIA matrix cores 2, integer dot product; not bfloat16 (compiled by shaderc 2025.2-1)"
        );
    }

    #[test]
    fn an_old_glslc_is_named_with_the_way_out() {
        let record = "GL_KHR_cooperative_matrix=0,GL_EXT_integer_dot_product=0";
        let line = VulkanShaders::parse(record, "shaderc 2023.2-1").unwrap().render();
        assert!(line.starts_with("none of the faster paths (matrix cores, integer dot product)"), "{line}");
        assert!(line.contains("shaderc 2023.2-1 is too old"), "{line}");
    }

    #[test]
    fn a_build_that_could_not_tell_has_no_record() {
        assert_eq!(VulkanShaders::parse("", ""), None);
    }

    #[test]
    fn only_a_vulkan_build_has_shaders() {
        assert_eq!(VulkanShaders::of_this_build().is_some(), cfg!(feature = "vulkan"));
    }
}
