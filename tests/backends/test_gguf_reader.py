"""The small GGUF header reader used by the llama.cpp backend."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lsp_llm.engine.backends.llamacpp import read_gguf_info


def _kv_string(key: str, value: str) -> bytes:
    k, v = key.encode(), value.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<IQ", 8, len(v)) + v


def _kv_strings(key: str, values: list[str]) -> bytes:
    k = key.encode()
    out = struct.pack("<Q", len(k)) + k + struct.pack("<IIQ", 9, 8, len(values))
    for value in values:
        out += struct.pack("<Q", len(value.encode())) + value.encode()
    return out


def _kv_ints(key: str, values: list[int]) -> bytes:
    k = key.encode()
    return (
        struct.pack("<Q", len(k))
        + k
        + struct.pack("<IIQ", 9, 5, len(values))
        + struct.pack(f"<{len(values)}i", *values)
    )


def _kv_u32(key: str, value: int) -> bytes:
    k = key.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<II", 4, value)


def test_synthetic_header(tmp_path: Path) -> None:
    kvs = [
        _kv_string("general.name", "Tiny"),
        _kv_strings("tokenizer.ggml.tokens", ["<s>", "a", "<|fim_prefix|>", "<0x0A>"]),
        _kv_ints("tokenizer.ggml.token_type", [3, 1, 4, 6]),
        _kv_u32("tokenizer.ggml.bos_token_id", 0),
        _kv_string("tokenizer.chat_template", "{{ messages }}"),
    ]
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs))
    info = read_gguf_info(path)
    assert info.metadata["general.name"] == "Tiny"
    assert info.tokens == ["<s>", "a", "<|fim_prefix|>", "<0x0A>"]
    assert info.special_tokens == frozenset({"<s>", "<|fim_prefix|>"})
    assert info.token("tokenizer.ggml.bos_token_id") == "<s>"
    assert info.chat_template == "{{ messages }}"


def test_rejects_non_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + b"\0" * 40)
    with pytest.raises(ValueError, match="magic"):
        read_gguf_info(bad)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 5))
    with pytest.raises(ValueError):
        read_gguf_info(truncated)


def test_embedded_gemma(embedded_gguf: Path) -> None:
    info = read_gguf_info(embedded_gguf)
    assert len(info.tokens) == 262144
    assert info.token("tokenizer.ggml.bos_token_id") == "<bos>"
    assert {"<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"} <= info.special_tokens
    assert info.chat_template is None  # this GGUF carries no template (a base model)
