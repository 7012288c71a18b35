"""Tiny random-weight models of real architectures, for tests and benchmarks.

Weights can't be downloaded here, and speed does not depend on their values, so tests and the
benchmark suite build models from real configs (Llama, Qwen2, Gemma 3...) with random weights and
a byte-level BPE tokenizer trained offline on Python's own standard library sources. The
tokenizer carries FIM special tokens (StarCoder spelling by default) so the FIM path is real.
"""

from __future__ import annotations

import json
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FIM_TOKENS = {
    "starcoder": ["<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<file_sep>", "<repo_name>"],
    "qwen": ["<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|file_sep|>", "<|repo_name|>"],
    "none": [],
}


def _corpus(max_bytes: int = 1_500_000) -> Iterator[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    total = 0
    for path in sorted(stdlib.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        total += len(text)
        yield text
        if total > max_bytes:
            return


def train_tokenizer(out_dir: Path, *, vocab_size: int = 2048, fim: str = "starcoder") -> Any:
    """Train a byte-level BPE on stdlib sources; save a PreTrainedTokenizerFast to out_dir."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", *FIM_TOKENS[fim]]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=FIM_TOKENS[fim],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


def build_tiny_model(
    out_dir: Path,
    *,
    arch: str = "llama",
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    vocab_size: int = 2048,
    fim: str = "starcoder",
    seed: int = 0,
) -> Path:
    """A random-weight model directory that transformers loads like any other.

    The output head is shaped so that greedy decoding prefers ordinary code tokens over
    whitespace-only and special tokens: random weights otherwise loop on newlines, which
    post-processing turns into empty suggestions.
    """
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    if (out_dir / "config.json").is_file() and (out_dir / "tokenizer.json").is_file():
        return out_dir
    tok = train_tokenizer(out_dir, vocab_size=vocab_size, fim=fim)
    vocab = len(tok)
    common: dict[str, Any] = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=8192,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    config: Any
    if arch == "gemma3":
        # Gemma 3's mix of sliding-window and full attention layers, with a small window so
        # that short test prompts already go past it.
        from transformers import Gemma3TextConfig

        config = Gemma3TextConfig(
            **common,
            head_dim=hidden // heads,
            sliding_window=16,
            layer_types=[
                "full_attention" if (i + 1) % 4 == 0 else "sliding_attention" for i in range(layers)
            ],
        )
    elif arch == "qwen2":
        config = Qwen2Config(**common)
    else:
        config = LlamaConfig(**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        for token, idx in tok.get_vocab().items():
            text = tok.convert_tokens_to_string([token])
            if idx in tok.all_special_ids or not text.strip():
                head[idx].zero_()  # logit 0: below the best of ~2k random tokens
    model.save_pretrained(out_dir)
    (out_dir / "lsp_llm_tiny.json").write_text(json.dumps({"arch": arch, "fim": fim}))
    return out_dir


def wordlevel_tokenizer(out_dir: Path, vocab_size: int) -> Any:
    """A tokenizer whose every id ``i`` is the word ``t<i>`` (for models with a real, large
    vocabulary and random weights: any id the model picks decodes, every word is one token).

    Load it with ``PreTrainedTokenizerFast(tokenizer_file=...)``: transformers 5's AutoTokenizer
    substitutes the architecture's own class for some model types (Qwen2), whose
    pre-tokenizer splits these words apart."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<|endoftext|>": 0, **{f"t{i}": i for i in range(1, vocab_size)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


def build_model_from_config(
    out_dir: Path, config: dict[str, Any], *, dtype: str = "bfloat16", device: str = "cpu"
) -> Path:
    """A random-weight model with a real architecture's exact shapes (e.g. the config.json of
    Qwen2.5-Coder-1.5B), saved with a :func:`wordlevel_tokenizer` as a model directory."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if (out_dir / "config.json").is_file() and (out_dir / "tokenizer.json").is_file():
        return out_dir
    cfg = dict(config)
    model_type = cfg.pop("model_type")
    cfg.pop("architectures", None)
    conf = AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(conf, dtype=getattr(torch, dtype))
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    model.save_pretrained(tmp)
    wordlevel_tokenizer(tmp, int(conf.vocab_size))
    del model
    tmp.replace(out_dir)
    return out_dir
