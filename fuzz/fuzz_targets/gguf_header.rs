//! GGUF header, metadata and tensor-info reading on arbitrary bytes, as every
//! model file goes through it before llama.cpp sees it.
//!
//! Checks that `GgufFile::from_reader` never panics, that reading the bytes one
//! at a time gives exactly the answer that reading them at once does, and that
//! an accepted file keeps the reader's promises: a power-of-two alignment, an
//! aligned data section, at most four dimensions per tensor and every tensor's
//! data inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Read;
use workly::model::GgufFile;

/// A reader that hands out at most one byte per call, like a slow pipe.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buffer.first_mut()) {
            (Some((byte, rest)), Some(slot)) => {
                *slot = *byte;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let size = data.len() as u64;
    let whole = GgufFile::from_reader(data, size, "fuzz.gguf");
    let trickled = GgufFile::from_reader(Trickle(data), size, "fuzz.gguf");
    assert_eq!(format!("{whole:?}"), format!("{trickled:?}"));
    let Ok(file) = whole else { return };
    assert!(file.alignment_bytes().is_power_of_two());
    assert_eq!(file.data_offset_bytes() % file.alignment_bytes(), 0);
    for tensor in file.tensors() {
        assert!(tensor.dims().len() <= 4);
        assert_eq!(tensor.offset_bytes() % file.alignment_bytes(), 0);
        let end = file.data_offset_bytes() + tensor.offset_bytes() + tensor.size_bytes();
        assert!(end <= size, "tensor {} ends at {end} of {size}", tensor.name());
    }
});
