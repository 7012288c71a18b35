"""GPU suite: one prepared script (at most ~8 minutes) for a CUDA machine; skips without CUDA.

    python -m benchmarks.gpu --out gpu.json            # or: python -m benchmarks --only gpu
    python -m benchmarks.gpu --dry-run                 # the same script on the CPU, tiny model

A random-weight model with the exact Qwen2.5-Coder-1.5B configuration in bf16 (weights can't be
downloaded and speed does not depend on their values), saved as a model directory with a
word-level tokenizer over its whole vocabulary, and loaded by the server's own
``TransformersBackend``, so what is timed is the code that serves completions:

* decode tokens/s of the backend with ``fastPath: off`` (dynamic KV cache, eager) and
  ``fastPath: compile`` (static KV cache, the one-token decode step under ``torch.compile`` with
  CUDA graphs), against plain ``model.generate`` on the same weights and prompt (the baseline);
  goals: compile >= 1.5x generate, off >= 0.95x;
* time to first token for a 4096-token prompt (cold: prefix cache off) for each, and with the
  prefix cache on after the user typed a few characters at the end of that prompt;
* transformers' own ``generate(cache_implementation="static")`` as a reference, if time is left.

Tokens/s is counted the same way on both sides: (tokens - 1) / (last token - first token), from
the backend's streamed token events and from a ``generate`` streamer. The backend's end-of-text
ids are cleared so a random model always generates the full count, as ``min_new_tokens`` does
for ``generate``.

Importing this module never touches CUDA; ``run`` returns ``{"skipped": ...}`` without it.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

NAME = "gpu"

QWEN25_CODER_1_5B: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "vocab_size": 151936,
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
    "tie_word_embeddings": True,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
    "use_sliding_window": False,
}
"""config.json of Qwen/Qwen2.5-Coder-1.5B (the fields that shape compute)."""

DRY_RUN: dict[str, Any] = {
    **QWEN25_CODER_1_5B,
    "vocab_size": 4096,
    "hidden_size": 64,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "bos_token_id": 0,
    "eos_token_id": 0,
}
"""The same architecture, tiny: ``--dry-run`` proves the script on a CPU before a GPU run."""

DEADLINE_S = 420.0
"""Stop starting new measurements after this long (the whole GPU run must stay < 8 min)."""


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _prompt(vocab: int, n: int, seed: int) -> str:
    """``n`` words of the word-level tokenizer: exactly ``n`` tokens."""
    rng = random.Random(seed)
    return " ".join(f"t{rng.randrange(100, vocab - 100)}" for _ in range(n))


class Harness:
    """The model directory, the plain model for ``generate``, and backends to compare."""

    def __init__(self, config: dict[str, Any], device: str, dtype: str, work: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        from benchmarks.tiny_models import build_model_from_config

        self.device, self.dtype = device, dtype
        self.vocab = int(config["vocab_size"])
        self.model_dir = build_model_from_config(work / "model", config, dtype=dtype, device=device)
        model: Any = AutoModelForCausalLM.from_pretrained(
            self.model_dir, dtype=getattr(torch, dtype)
        )
        self.model = model.to(device)
        self.model.eval()
        from transformers import PreTrainedTokenizerFast

        from lsp_llm.engine.backends.hf_tokenizer import HFTokenizer

        self.tokenizer = HFTokenizer(
            PreTrainedTokenizerFast(tokenizer_file=str(self.model_dir / "tokenizer.json"))
        )

    def backend(self, fast_path: str, context_window: int, prefix_cache: bool = True) -> Any:
        from lsp_llm.config import Settings
        from lsp_llm.engine.backends.transformers import TransformersBackend
        from lsp_llm.engine.models import resolve_model

        settings = Settings(
            model=str(self.model_dir),
            backend="transformers",
            device=self.device,  # type: ignore[arg-type]
            dtype=self.dtype,  # type: ignore[arg-type]
            fast_path=fast_path,  # type: ignore[arg-type]
            context_window=context_window,
            prefix_cache=prefix_cache,
        )
        backend = TransformersBackend(settings, resolve_model(settings))
        t0 = time.perf_counter()
        backend.load(lambda _message, _fraction: None)
        backend.load_s = time.perf_counter() - t0  # type: ignore[attr-defined]
        backend._eos_ids = set()  # a random model must generate the full count (see module doc)
        backend._tokenizer = self.tokenizer  # see benchmarks.tiny_models.wordlevel_tokenizer
        return backend

    def run_backend(self, backend: Any, prompt: str, n: int) -> dict[str, float]:
        from lsp_llm.engine.requests import GenerationRequest, TokenEvent

        stamps: list[float] = []

        def emit(_event: TokenEvent) -> None:
            stamps.append(time.perf_counter())

        _sync(self.device)
        t0 = time.perf_counter()
        result = backend.generate(GenerationRequest(prompt=prompt, max_new_tokens=n), emit)
        _sync(self.device)
        t1 = time.perf_counter()
        if result.finish_reason == "error":
            raise RuntimeError(result.error)
        return _rates(t0, t1, stamps, result.timings.prompt_tokens)

    def run_generate(self, ids: list[int], n: int, **kwargs: Any) -> dict[str, float]:
        """Plain ``model.generate`` (greedy, exactly n tokens), timed per token by a streamer."""
        from benchmarks.common import timed_generate

        t0, t1, stamps = timed_generate(self.model, ids, n, self.device, 0, **kwargs)
        return _rates(t0, t1, stamps, len(ids))


def _rates(t0: float, t1: float, stamps: list[float], prompt_tokens: int) -> dict[str, float]:
    first = stamps[0] if stamps else t1
    span = (stamps[-1] - first) if len(stamps) > 1 else 0.0
    return {
        "ttft_s": first - t0,
        "decode_tok_s": (len(stamps) - 1) / span if span > 0 else 0.0,
        "total_s": t1 - t0,
        "tokens": float(len(stamps)),
        "prompt_tokens": float(prompt_tokens),
    }


def _median_runs(fn: Callable[[], dict[str, float]], reps: int) -> dict[str, Any]:
    runs = [fn() for _ in range(reps)]
    return {
        "decode_tok_s": round(statistics.median(r["decode_tok_s"] for r in runs), 1),
        "ttft_ms": round(statistics.median(r["ttft_s"] for r in runs) * 1000, 2),
        "runs": [{k: round(v, 4) for k, v in r.items()} for r in runs],
    }


def measure(
    *,
    device: str = "cuda",
    config: dict[str, Any] | None = None,
    dtype: str = "bfloat16",
    n_new: int = 128,
    prompt_tokens: int = 512,
    long_prompt: int = 4096,
    reps: int = 3,
) -> dict[str, Any]:
    import torch

    t_start = time.perf_counter()
    config = config or QWEN25_CODER_1_5B
    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else device,
        "model": f"random-weight {config['model_type']} "
        f"(hidden {config['hidden_size']}, {config['num_hidden_layers']} layers), {dtype}",
        "new_tokens": n_new,
        "prompt_tokens": prompt_tokens,
        "long_prompt_tokens": long_prompt,
        "torch": torch.__version__,
    }

    def left() -> bool:
        return time.perf_counter() - t_start < DEADLINE_S

    with tempfile.TemporaryDirectory(prefix="lsp-llm-gpu-") as tmp:
        h = Harness(config, device, dtype, Path(tmp))
        out["setup_s"] = round(time.perf_counter() - t_start, 1)
        out["params_m"] = round(sum(p.numel() for p in h.model.parameters()) / 1e6, 1)
        prompt = _prompt(h.vocab, prompt_tokens, 1)
        long_text = _prompt(h.vocab, long_prompt, 2)
        window = long_prompt + 64
        off = h.backend("off", window)
        ids = off.prompt_ids(_request(prompt))
        long_ids = off.prompt_ids(_request(long_text))
        # Warm up (cuBLAS handles, allocator), then alternate the two sides.
        h.run_generate(ids, 8)
        h.run_backend(off, prompt, 8)
        out["generate"] = _median_runs(lambda: h.run_generate(ids, n_new), reps)
        out["backend_off"] = _median_runs(lambda: h.run_backend(off, prompt, n_new), reps)
        base = out["generate"]["decode_tok_s"]
        out["off_vs_generate"] = _ratio(out["backend_off"]["decode_tok_s"], base)
        off.prefix_cache_enabled = False
        ttft: dict[str, Any] = {
            "generate": _median_runs(lambda: h.run_generate(long_ids, 2), reps)["ttft_ms"],
            "backend_off": _median_runs(lambda: h.run_backend(off, long_text, 2), reps)["ttft_ms"],
        }
        off.prefix_cache_enabled = True
        ttft["backend_off_typing"] = _typing_ttft(h, off, long_text, reps)
        off.close()
        out["ttft_4k_ms"] = ttft
        if left():
            try:
                fast = h.backend("compile", window)
                out["compile_load_s"] = round(fast.load_s, 1)
                out["fast_path"] = fast.fast_path
                h.run_backend(fast, prompt, 8)
                out["backend_compile"] = _median_runs(
                    lambda: h.run_backend(fast, prompt, n_new), reps
                )
                out["compile_vs_generate"] = _ratio(out["backend_compile"]["decode_tok_s"], base)
                fast.prefix_cache_enabled = False
                ttft["backend_compile"] = _median_runs(
                    lambda: h.run_backend(fast, long_text, 2), reps
                )["ttft_ms"]
                fast.prefix_cache_enabled = True
                ttft["backend_compile_typing"] = _typing_ttft(h, fast, long_text, reps)
                fast.close()
            except Exception as exc:
                out["backend_compile"] = {"error": f"{exc.__class__.__name__}: {exc}"[:800]}
        if left() and device == "cuda":
            try:
                h.run_generate(ids, 16, cache_implementation="static")  # compiles
                out["generate_static"] = _median_runs(
                    lambda: h.run_generate(ids, n_new, cache_implementation="static"), reps
                )
            except Exception as exc:
                out["generate_static"] = {"error": f"{exc.__class__.__name__}: {exc}"[:800]}
    out["seconds"] = round(time.perf_counter() - t_start, 1)
    return out


def _request(prompt: str) -> Any:
    from lsp_llm.engine.requests import GenerationRequest

    return GenerationRequest(prompt=prompt)


def _typing_ttft(h: Harness, backend: Any, text: str, reps: int) -> float:
    """TTFT with the prefix cache on, after typing a word at the end of a long prompt."""
    h.run_backend(backend, text, 2)
    runs = [h.run_backend(backend, f"{text} t{101 + i}", 2)["ttft_s"] for i in range(reps)]
    return round(statistics.median(runs) * 1000, 2)


def _ratio(value: float, base: float) -> float:
    return round(value / base, 3) if base else 0.0


def goals(res: dict[str, Any]) -> list[dict[str, Any]]:
    from benchmarks.common import goal

    fast = res.get("compile_vs_generate")
    off = res.get("off_vs_generate")
    return [
        goal(
            "fast path (fastPath=compile) decode tok/s vs generate",
            fast,
            ">= 1.5",
            None if fast is None else fast >= 1.5,
            str(res.get("backend_compile", {}).get("error", "")),
        ),
        goal(
            "backend (fastPath=off) decode tok/s vs generate",
            off,
            ">= 0.95",
            None if off is None else off >= 0.95,
        ),
    ]


def table(res: dict[str, Any]) -> list[tuple[str, Any]]:
    ttft = res.get("ttft_4k_ms", {})
    rows: list[tuple[str, Any]] = [
        (
            "decode tok/s generate / off / compile",
            f"{res['generate']['decode_tok_s']}/{res['backend_off']['decode_tok_s']}/"
            f"{res.get('backend_compile', {}).get('decode_tok_s', '-')}",
        ),
        (
            "TTFT 4k ms generate / off / compile",
            f"{ttft.get('generate')}/{ttft.get('backend_off')}/{ttft.get('backend_compile', '-')}",
        ),
        (
            "TTFT 4k ms after typing (prefix cache) off / compile",
            f"{ttft.get('backend_off_typing')}/{ttft.get('backend_compile_typing', '-')}",
        ),
    ]
    return rows


def run(ctx: Any = None) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"skipped": "torch is not installed", "goals": []}
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device (run on a GPU machine)", "goals": []}
    quick = bool(getattr(ctx, "quick", False))
    res = measure(n_new=32 if quick else 128)
    res["goals"] = goals(res)
    res["table"] = table(res)
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="JSON output file")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="run the whole script on the CPU with a tiny model of the same architecture",
    )
    args = parser.parse_args(argv)
    if args.dry_run:
        res = measure(
            device="cpu",
            config=DRY_RUN,
            dtype="float32",
            n_new=12,
            prompt_tokens=64,
            long_prompt=256,
            reps=1,
        )
        res["goals"], res["table"] = goals(res), table(res)
    else:
        res = run()
    text = json.dumps(res, indent=2, default=str)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
