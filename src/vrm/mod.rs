//! VRM avatars Workly makes itself: the default avatar the page shows until a
//! person loads their own `.vrm`.
//!
//! [`glb`] writes glTF 2.0 binaries; [`kira`] builds Kira's head, skeleton and
//! expressions as VRM 1.0. Reading or validating other people's VRM files is
//! the browser's job (three-vrm), not this module's.

pub mod glb;
pub mod kira;

pub use kira::{EXPRESSIONS, default_avatar};

#[cfg(test)]
mod tests {
    use super::glb::{CHUNK_BIN, CHUNK_JSON, MAGIC};
    use super::*;
    use serde_json::Value;

    fn word(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    /// The JSON document and the binary chunk, checking the container on the way.
    fn split(glb: &[u8]) -> (Value, &[u8]) {
        assert_eq!(word(glb, 0), MAGIC);
        assert_eq!(word(glb, 4), 2, "glTF version");
        assert_eq!(word(glb, 8) as usize, glb.len(), "total length in the header");
        let json_length = word(glb, 12) as usize;
        assert_eq!(word(glb, 16), CHUNK_JSON);
        assert_eq!(json_length % 4, 0, "JSON chunk padded to 4 bytes");
        let document = serde_json::from_slice(&glb[20..20 + json_length]).expect("the JSON chunk parses");
        let bin_at = 20 + json_length;
        let bin_length = word(glb, bin_at) as usize;
        assert_eq!(word(glb, bin_at + 4), CHUNK_BIN);
        assert_eq!(bin_length % 4, 0, "BIN chunk padded to 4 bytes");
        assert_eq!(bin_at + 8 + bin_length, glb.len(), "nothing after the BIN chunk");
        (document, &glb[bin_at + 8..])
    }

    fn floats(document: &Value, bin: &[u8], accessor: u64) -> Vec<[f32; 3]> {
        let accessor = &document["accessors"][accessor as usize];
        let view = &document["bufferViews"][accessor["bufferView"].as_u64().unwrap() as usize];
        let offset = view["byteOffset"].as_u64().unwrap() as usize;
        let count = accessor["count"].as_u64().unwrap() as usize;
        assert_eq!(offset % 4, 0, "float data aligned");
        assert_eq!(view["byteLength"].as_u64().unwrap() as usize, count * 12);
        (0..count)
            .map(|i| [0, 1, 2].map(|k| f32::from_le_bytes(bin[offset + i * 12 + k * 4..][..4].try_into().unwrap())))
            .collect()
    }

    #[test]
    fn the_default_avatar_is_a_well_formed_glb() {
        let glb = default_avatar();
        let (document, bin) = split(&glb);
        assert_eq!(document["buffers"][0]["byteLength"].as_u64().unwrap() as usize, bin.len());
        for view in document["bufferViews"].as_array().unwrap() {
            let end = view["byteOffset"].as_u64().unwrap() + view["byteLength"].as_u64().unwrap();
            assert!(end as usize <= bin.len(), "view inside the buffer");
        }
        let mut checked = 0;
        for mesh in document["meshes"].as_array().unwrap() {
            for primitive in mesh["primitives"].as_array().unwrap() {
                let positions = primitive["attributes"]["POSITION"].as_u64().unwrap();
                let targets = primitive["targets"].as_array().cloned().unwrap_or_default();
                let vertex_count = document["accessors"][positions as usize]["count"].as_u64().unwrap();
                let indices = &document["accessors"][primitive["indices"].as_u64().unwrap() as usize];
                assert_eq!(indices["count"].as_u64().unwrap() % 3, 0, "whole triangles");
                let accessors =
                    std::iter::once(positions).chain(targets.iter().map(|t| t["POSITION"].as_u64().unwrap()));
                for accessor in accessors {
                    let values = floats(&document, bin, accessor);
                    assert_eq!(values.len() as u64, vertex_count);
                    let declared = &document["accessors"][accessor as usize];
                    for axis in 0..3 {
                        let min = values.iter().map(|v| v[axis]).fold(f32::INFINITY, f32::min);
                        let max = values.iter().map(|v| v[axis]).fold(f32::NEG_INFINITY, f32::max);
                        assert_eq!(declared["min"][axis].as_f64().unwrap() as f32, min);
                        assert_eq!(declared["max"][axis].as_f64().unwrap() as f32, max);
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 50, "positions and morph targets were checked ({checked})");
    }

    #[test]
    fn the_default_avatar_is_vrm_1_with_a_humanoid_and_expressions() {
        let glb = default_avatar();
        let (document, _) = split(&glb);
        assert!(document["extensionsUsed"].as_array().unwrap().contains(&"VRMC_vrm".into()));
        let vrm = &document["extensions"]["VRMC_vrm"];
        assert_eq!(vrm["specVersion"], "1.0");
        let nodes = document["nodes"].as_array().unwrap();
        let bones = vrm["humanoid"]["humanBones"].as_object().unwrap();
        // The bones VRM 1.0 requires.
        for side in ["left", "right"] {
            for limb in ["UpperLeg", "LowerLeg", "Foot", "UpperArm", "LowerArm", "Hand"] {
                assert!(bones.contains_key(&format!("{side}{limb}")), "{side}{limb}");
            }
        }
        for bone in ["hips", "spine", "head"] {
            assert!(bones.contains_key(bone), "{bone}");
        }
        for bone in bones.values() {
            assert!((bone["node"].as_u64().unwrap() as usize) < nodes.len());
        }
        let presets = vrm["expressions"]["preset"].as_object().unwrap();
        for name in ["happy", "angry", "sad", "relaxed", "surprised", "blink", "aa"] {
            let binds = presets[name]["morphTargetBinds"].as_array().unwrap();
            assert!(!binds.is_empty(), "{name} moves something");
            for bind in binds {
                let node = &nodes[bind["node"].as_u64().unwrap() as usize];
                let mesh = &document["meshes"][node["mesh"].as_u64().expect("bound node has a mesh") as usize];
                for primitive in mesh["primitives"].as_array().unwrap() {
                    assert!(bind["index"].as_u64().unwrap() < primitive["targets"].as_array().unwrap().len() as u64);
                }
            }
        }
    }

    #[test]
    fn expressions_move_the_face() {
        let glb = default_avatar();
        let (document, bin) = split(&glb);
        let face = document["meshes"].as_array().unwrap().iter().find(|mesh| mesh["name"] == "face").unwrap();
        for (index, name) in EXPRESSIONS.iter().enumerate() {
            let moved = face["primitives"].as_array().unwrap().iter().any(|primitive| {
                let accessor = primitive["targets"][index]["POSITION"].as_u64().unwrap();
                floats(&document, bin, accessor).iter().any(|delta| delta.iter().any(|d| d.abs() > 1e-4))
            });
            // Blinking moves the brows a little; every expression shows on the face.
            assert!(moved, "{name} moves the face");
        }
    }
}
