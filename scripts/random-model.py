#!/usr/bin/env python3
"""Writes a llama-architecture GGUF model of a real shape with random weights.

For speed checks only (scripts/gpu-check.sh): the tensors, their sizes and the
kernels that run them are those of a real model of that shape, so tokens per
second and memory are real; what the model says is noise. No model of several
gigabytes has to be fetched.

    random-model.py --shape 7b --tokenizer SmolLM2.gguf --out random-7b.Q4_0.gguf

Quantized weights are random bytes in ggml's Q4_0 block layout (per 32
weights, an f16 scale and 16 bytes of 4-bit values) with one scale per tensor,
chosen so that a weight's root mean square is 1/sqrt(inputs): every matrix
product keeps its activations near unit size and finite, as in a trained
model. Norm weights are ones. The vocabulary, merges, special tokens and chat
template are copied from --tokenizer (every `tokenizer.*` key of that GGUF).
Needs numpy and gguf (the `gguf` package on PyPI, llama.cpp's own writer).
"""

import argparse
import math
import os
import sys

import gguf
import numpy as np

# Width, layers, feed-forward width, heads, key-value heads, rope base, context.
SHAPES = {
    # Mistral 7B (v0.2 and later): 3.9 GiB in Q4_0 with a 49,152-token vocabulary.
    "7b": (4096, 32, 14336, 32, 8, 1e6, 32768),
    # TinyLlama 1.1B, its context raised to 8192.
    "1b": (2048, 22, 5632, 32, 4, 1e4, 8192),
    # A few megabytes, for a trial of the check on a CPU.
    "tiny": (256, 4, 512, 4, 2, 1e4, 8192),
}

# Q4_0's integer values run from -8 to 7: their root mean square, uniform.
Q4_0_RMS = math.sqrt(sum(value * value for value in range(-8, 8)) / 16)
BLOCK, BLOCK_BYTES = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q4_0]


def tensors(shape, vocabulary):
    """(name, rows, inputs) of every tensor in file order; inputs is None for a norm."""
    width, layers, ff, heads, kv_heads, _, _ = shape
    head = width // heads
    names = gguf.TENSOR_NAMES
    kinds = gguf.MODEL_TENSOR

    def name(kind, layer=None):
        return (names[kind] if layer is None else names[kind].format(bid=layer)) + ".weight"

    plan = [(name(kinds.TOKEN_EMBD), vocabulary, width)]
    for layer in range(layers):
        plan += [
            (name(kinds.ATTN_NORM, layer), width, None),
            (name(kinds.ATTN_Q, layer), head * heads, width),
            (name(kinds.ATTN_K, layer), head * kv_heads, width),
            (name(kinds.ATTN_V, layer), head * kv_heads, width),
            (name(kinds.ATTN_OUT, layer), width, head * heads),
            (name(kinds.FFN_NORM, layer), width, None),
            (name(kinds.FFN_GATE, layer), ff, width),
            (name(kinds.FFN_UP, layer), ff, width),
            (name(kinds.FFN_DOWN, layer), width, ff),
        ]
    return plan + [(name(kinds.OUTPUT_NORM), width, None), (name(kinds.OUTPUT), vocabulary, width)]


def q4_0(generator, rows, inputs, scale):
    """rows x inputs random Q4_0 weights, every block's scale `scale`, as bytes."""
    blocks = rows * inputs // BLOCK
    data = generator.integers(0, 256, size=(blocks, BLOCK_BYTES), dtype=np.uint8)
    data[:, :2] = np.frombuffer(np.float16(scale).tobytes(), dtype=np.uint8)
    return data.reshape(rows, inputs // BLOCK * BLOCK_BYTES)


def tokenizer_fields(path):
    """Every `tokenizer.*` key of a GGUF file, as (key, value, type, item type)."""
    fields = []
    for key, field in gguf.GGUFReader(path).fields.items():
        if key.startswith("tokenizer.") and field.types:
            item = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
            fields.append((key, field.contents(), field.types[0], item))
    if not any(key == "tokenizer.ggml.tokens" for key, *_ in fields):
        sys.exit(f"random-model: {path} has no vocabulary (tokenizer.ggml.tokens)")
    return fields


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="7b")
    parser.add_argument("--tokenizer", required=True, help="a GGUF model whose vocabulary the model takes")
    parser.add_argument("--out", required=True, help="the GGUF file to write")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    shape = SHAPES[args.shape]
    width, layers, ff, heads, kv_heads, rope_base, context = shape
    fields = tokenizer_fields(args.tokenizer)
    vocabulary = len(next(value for key, value, *_ in fields if key == "tokenizer.ggml.tokens"))
    plan = tensors(shape, vocabulary)

    partial = args.out + ".part"
    writer = gguf.GGUFWriter(partial, "llama")
    writer.add_name(f"random-llama-{args.shape}-Q4_0")
    writer.add_description("random weights: for speed checks only (scripts/random-model.py)")
    writer.add_context_length(context)
    writer.add_embedding_length(width)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(rope_base)
    writer.add_rope_dimension_count(width // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocabulary)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for key, value, kind, item in fields:
        writer.add_key_value(key, value, kind, sub_type=item)

    # The header lists every tensor before any data: sizes first, then each
    # tensor made and written in turn, so one tensor at a time is in memory.
    for name, rows, inputs in plan:
        if inputs is None:
            writer.add_tensor_info(name, (rows,), np.dtype(np.float32), rows * 4)
        else:
            byte_shape = (rows, inputs // BLOCK * BLOCK_BYTES)
            writer.add_tensor_info(
                name, byte_shape, np.dtype(np.uint8), rows * byte_shape[1], raw_dtype=gguf.GGMLQuantizationType.Q4_0
            )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    generator = np.random.default_rng(args.seed)
    for name, rows, inputs in plan:
        if inputs is None:
            writer.write_tensor_data(np.ones(rows, dtype=np.float32))
        else:
            # Embeddings of unit size; every product's weights 1/sqrt(inputs).
            rms = 1.0 if name.startswith("token_embd") else 1.0 / math.sqrt(inputs)
            writer.write_tensor_data(q4_0(generator, rows, inputs, rms / Q4_0_RMS))
    writer.close()
    os.replace(partial, args.out)
    size = os.path.getsize(args.out)
    print(f"random-model: {args.out}: {args.shape}, {layers} layers, {size / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
