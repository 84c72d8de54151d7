//! A small glTF 2.0 binary (GLB) writer: geometry goes into one binary buffer
//! as accessors, the caller assembles the JSON around them, and [`GlbBuilder::finish`]
//! packs both chunks with the alignment the format requires.
//!
//! It writes only what Workly's generated avatar needs (float vectors, `u16`
//! indices, one buffer); it does not read GLB files.

use serde_json::{Value, json};

/// glTF's `componentType` for 32-bit floats.
const FLOAT: u32 = 5126;
/// glTF's `componentType` for unsigned 16-bit integers.
const UNSIGNED_SHORT: u32 = 5123;
/// `bufferView.target` for vertex attributes.
const ARRAY_BUFFER: u32 = 34962;
/// `bufferView.target` for indices.
const ELEMENT_ARRAY_BUFFER: u32 = 34963;

/// The GLB header's magic, `glTF` in little-endian.
pub const MAGIC: u32 = 0x4654_6C67;
/// The JSON chunk's type, `JSON`.
pub const CHUNK_JSON: u32 = 0x4E4F_534A;
/// The binary chunk's type, `BIN\0`.
pub const CHUNK_BIN: u32 = 0x004E_4942;

/// Collects the binary buffer, its views and accessors.
#[derive(Debug, Default)]
pub struct GlbBuilder {
    bin: Vec<u8>,
    buffer_views: Vec<Value>,
    accessors: Vec<Value>,
}

impl GlbBuilder {
    /// Appends `bytes` as a buffer view, 4-byte aligned as every accessor
    /// component type here needs; returns the view's index.
    fn push_view(&mut self, bytes: &[u8], target: u32) -> usize {
        while !self.bin.len().is_multiple_of(4) {
            self.bin.push(0);
        }
        self.buffer_views.push(json!({
            "buffer": 0,
            "byteOffset": self.bin.len(),
            "byteLength": bytes.len(),
            "target": target,
        }));
        self.bin.extend_from_slice(bytes);
        self.buffer_views.len() - 1
    }

    /// Adds `VEC3` float data (positions, normals, morph deltas) with its
    /// bounds (glTF requires them on every `POSITION` accessor, morph targets
    /// included); returns the accessor's index.
    pub fn push_vec3(&mut self, values: &[[f32; 3]]) -> usize {
        let mut min = [f32::INFINITY; 3];
        let mut max = [f32::NEG_INFINITY; 3];
        let mut bytes = Vec::with_capacity(values.len() * 12);
        for value in values {
            for axis in 0..3 {
                min[axis] = min[axis].min(value[axis]);
                max[axis] = max[axis].max(value[axis]);
                bytes.extend_from_slice(&value[axis].to_le_bytes());
            }
        }
        if values.is_empty() {
            (min, max) = ([0.0; 3], [0.0; 3]);
        }
        let view = self.push_view(&bytes, ARRAY_BUFFER);
        self.accessors.push(json!({
            "bufferView": view,
            "componentType": FLOAT,
            "count": values.len(),
            "type": "VEC3",
            "min": min,
            "max": max,
        }));
        self.accessors.len() - 1
    }

    /// Adds triangle indices; returns the accessor's index.
    pub fn push_indices(&mut self, indices: &[u16]) -> usize {
        let bytes: Vec<u8> = indices.iter().flat_map(|index| index.to_le_bytes()).collect();
        let view = self.push_view(&bytes, ELEMENT_ARRAY_BUFFER);
        self.accessors.push(json!({
            "bufferView": view,
            "componentType": UNSIGNED_SHORT,
            "count": indices.len(),
            "type": "SCALAR",
        }));
        self.accessors.len() - 1
    }

    /// Packs `document` (everything but `buffers`, `bufferViews` and
    /// `accessors`, which this fills in) and the buffer into GLB bytes.
    pub fn finish(mut self, mut document: Value) -> Vec<u8> {
        while !self.bin.len().is_multiple_of(4) {
            self.bin.push(0);
        }
        document["buffers"] = json!([{ "byteLength": self.bin.len() }]);
        document["bufferViews"] = Value::Array(self.buffer_views);
        document["accessors"] = Value::Array(self.accessors);
        let mut json = serde_json::to_vec(&document).unwrap_or_default();
        // The JSON chunk is padded with spaces, so it stays valid JSON.
        while !json.len().is_multiple_of(4) {
            json.push(b' ');
        }
        let total = 12 + 8 + json.len() + 8 + self.bin.len();
        let mut out = Vec::with_capacity(total);
        for word in [MAGIC, 2, total as u32, json.len() as u32, CHUNK_JSON] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&json);
        for word in [self.bin.len() as u32, CHUNK_BIN] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&self.bin);
        out
    }
}
