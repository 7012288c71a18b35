"""GPU suite: one prepared script (a few minutes) for a CUDA machine; skips without CUDA.

    python -m benchmarks --only gpu --out gpu.json     # or: python -m benchmarks.gpu

A random-weight model with the exact Qwen2.5-Coder-1.5B configuration, in bf16 (weights can't
be downloaded and speed does not depend on their values). Measured in one process:

* decode tokens/s of our decode loop (``TransformersBackend``'s ``_forward`` with a
  ``DynamicCache``, ``logits_to_keep=1``, greedy) vs plain ``model.generate`` (the baseline);
* the fast path: ``generate`` with ``cache_implementation="static"`` (transformers compiles the
  decode step with ``torch.compile`` when the cache is static), and our own loop over a
  ``StaticCache`` with the one-token decode step compiled (``mode="reduce-overhead"``: CUDA
  graphs); goal >= 1.5x plain ``generate``;
* time to first token for a 4096-token prompt (prefill + one step), our loop and ``generate``.

Importing this module never touches CUDA; ``run`` returns ``{"skipped": ...}`` without it.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
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

DEADLINE_S = 420.0
"""Stop starting new measurements after this long (the whole GPU run must stay < 8 min)."""


def build_model(config: dict[str, Any] | None = None, dtype: str = "bfloat16") -> Any:
    """A random-weight model from a config dict, directly on the GPU (no download)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(config or QWEN25_CODER_1_5B)
    model_type = cfg.pop("model_type")
    cfg.pop("architectures", None)
    conf = AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(conf, dtype=getattr(torch, dtype))
    return model.eval()


def _sync() -> None:
    import torch

    torch.cuda.synchronize()


def _cache_kw(model: Any) -> str:
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def our_loop(model: Any, ids: Any, n: int) -> dict[str, float]:
    """The server's decode loop (same calls as TransformersBackend._generate), greedy."""
    import torch
    from transformers import DynamicCache

    kw = _cache_kw(model)
    with torch.inference_mode():
        _sync()
        t0 = time.perf_counter()
        cache = DynamicCache(config=model.config)
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1, **{kw: cache})
        tok = out.logits[:, -1, :].argmax(-1)
        int(tok[0])  # the server reads each token on the host (to decode and stream it)
        t_first = time.perf_counter()
        for _ in range(n - 1):
            out = model(input_ids=tok.view(1, 1), use_cache=True, logits_to_keep=1, **{kw: cache})
            tok = out.logits[:, -1, :].argmax(-1)
            int(tok[0])
        t1 = time.perf_counter()
    return {"ttft_s": t_first - t0, "decode_tok_s": (n - 1) / (t1 - t_first), "total_s": t1 - t0}


def compiled_loop(model: Any, ids: Any, n: int, state: dict[str, Any]) -> dict[str, float]:
    """Fast path: StaticCache + the one-token decode step under torch.compile (CUDA graphs)."""
    import torch
    from transformers import StaticCache

    kw = _cache_kw(model)
    max_len = ids.shape[1] + n + 8
    if state.get("max_len") != max_len:
        state["cache"] = StaticCache(config=model.config, max_cache_len=max_len)
        state["max_len"] = max_len

        def step(tok: Any, pos: Any, cache: Any) -> Any:
            out = model(
                input_ids=tok, cache_position=pos, use_cache=True, logits_to_keep=1, **{kw: cache}
            )
            return out.logits[:, -1, :].argmax(-1)

        state["step"] = torch.compile(step, mode="reduce-overhead", fullgraph=False)
    cache = state["cache"]
    step = state["step"]
    with torch.inference_mode():
        cache.reset()
        _sync()
        t0 = time.perf_counter()
        plen = ids.shape[1]
        out = model(
            input_ids=ids,
            cache_position=torch.arange(plen, device=ids.device),
            use_cache=True,
            logits_to_keep=1,
            **{kw: cache},
        )
        tok = out.logits[:, -1, :].argmax(-1)
        int(tok[0])
        t_first = time.perf_counter()
        for i in range(n - 1):
            pos = torch.tensor([plen + i], device=ids.device)
            tok = step(tok.view(1, 1), pos, cache).clone()
            int(tok[0])
        t1 = time.perf_counter()
    return {"ttft_s": t_first - t0, "decode_tok_s": (n - 1) / (t1 - t_first), "total_s": t1 - t0}


def generate(model: Any, ids: Any, n: int, **kwargs: Any) -> dict[str, float]:
    """Plain ``model.generate`` (greedy, exactly n tokens), timed per token with a streamer."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    stamps: list[float] = []

    class Stamp(BaseStreamer):
        def put(self, value: Any) -> None:
            stamps.append(time.perf_counter())

        def end(self) -> None:
            pass

    with torch.inference_mode():
        _sync()
        t0 = time.perf_counter()
        model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            streamer=Stamp(),
            pad_token_id=0,
            **kwargs,
        )
        _sync()
        t1 = time.perf_counter()
    tokens = stamps[1:]  # the first put() is the prompt
    first = tokens[0] if tokens else t1
    span = (tokens[-1] - first) if len(tokens) > 1 else 0.0
    return {
        "ttft_s": first - t0,
        "decode_tok_s": (len(tokens) - 1) / span if span > 0 else 0.0,
        "total_s": t1 - t0,
    }


def _median_runs(fn: Callable[[], dict[str, float]], reps: int) -> dict[str, Any]:
    runs = [fn() for _ in range(reps)]
    return {
        "decode_tok_s": round(statistics.median(r["decode_tok_s"] for r in runs), 1),
        "ttft_ms": round(statistics.median(r["ttft_s"] for r in runs) * 1000, 2),
        "runs": [{k: round(v, 4) for k, v in r.items()} for r in runs],
    }


def measure(n_new: int = 128, prompt_tokens: int = 512, long_prompt: int = 4096) -> dict[str, Any]:
    import torch

    t_start = time.perf_counter()
    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0),
        "model": "random-weight Qwen2.5-Coder-1.5B config, bfloat16",
        "new_tokens": n_new,
        "prompt_tokens": prompt_tokens,
    }
    model = build_model()
    out["params_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 1)
    vocab = QWEN25_CODER_1_5B["vocab_size"]
    gen = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(100, vocab - 100, (1, prompt_tokens), generator=gen).cuda()
    long_ids = torch.randint(100, vocab - 100, (1, long_prompt), generator=gen).cuda()

    def left() -> bool:
        return time.perf_counter() - t_start < DEADLINE_S

    # Warm up both eager paths (cuBLAS handles, allocator).
    our_loop(model, ids, 8)
    generate(model, ids, 8)
    out["our_loop"] = _median_runs(lambda: our_loop(model, ids, n_new), 3)
    out["generate"] = _median_runs(lambda: generate(model, ids, n_new), 3)
    base = out["generate"]["decode_tok_s"]
    out["our_loop_vs_generate"] = round(out["our_loop"]["decode_tok_s"] / base, 3) if base else 0
    out["ttft_4k_ms"] = {
        "our_loop": _median_runs(lambda: our_loop(model, long_ids, 2), 3)["ttft_ms"],
        "generate": _median_runs(lambda: generate(model, long_ids, 2), 3)["ttft_ms"],
    }
    fast: dict[str, Any] = {}
    if left():
        try:
            generate(model, ids, 16, cache_implementation="static")  # compiles
            fast["generate_static"] = _median_runs(
                lambda: generate(model, ids, n_new, cache_implementation="static"), 3
            )
        except Exception as exc:
            fast["generate_static"] = {"error": f"{exc.__class__.__name__}: {exc}"[:500]}
    if left():
        try:
            state: dict[str, Any] = {}
            compiled_loop(model, ids, n_new, state)  # compile + capture
            compiled_loop(model, ids, n_new, state)
            fast["compiled_loop"] = _median_runs(lambda: compiled_loop(model, ids, n_new, state), 3)
            if left():
                st4: dict[str, Any] = {}
                compiled_loop(model, long_ids, 4, st4)
                fast["compiled_loop_ttft_4k_ms"] = _median_runs(
                    lambda: compiled_loop(model, long_ids, 2, st4), 3
                )["ttft_ms"]
        except Exception as exc:
            fast["compiled_loop"] = {"error": f"{exc.__class__.__name__}: {exc}"[:500]}
    out["fast_path"] = fast
    best = max(
        (v["decode_tok_s"] for v in fast.values() if isinstance(v, dict) and "decode_tok_s" in v),
        default=0.0,
    )
    out["fast_path_vs_generate"] = round(best / base, 3) if base else 0.0
    out["seconds"] = round(time.perf_counter() - t_start, 1)
    return out


def run(ctx: Any = None) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"skipped": "torch is not installed", "goals": []}
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device (run on a GPU machine)", "goals": []}
    from benchmarks.common import goal

    quick = bool(getattr(ctx, "quick", False))
    res = measure(n_new=32 if quick else 128)
    fast = res["fast_path_vs_generate"]
    res["goals"] = [
        goal("fast path decode tok/s vs generate", fast, ">= 1.5", fast >= 1.5),
        goal(
            "our loop decode tok/s vs generate",
            res["our_loop_vs_generate"],
            ">= 0.95",
            res["our_loop_vs_generate"] >= 0.95,
        ),
    ]
    res["table"] = [
        (
            "TTFT 4k prompt ms (ours/generate)",
            f"{res['ttft_4k_ms']['our_loop']}/{res['ttft_4k_ms']['generate']}",
        ),
        (
            "decode tok/s ours/generate",
            f"{res['our_loop']['decode_tok_s']}/{res['generate']['decode_tok_s']}",
        ),
    ]
    return res


if __name__ == "__main__":
    result = run()
    text = json.dumps(result, indent=2, default=str)
    if len(sys.argv) > 2 and sys.argv[1] == "--out":
        with open(sys.argv[2], "w") as fh:
            fh.write(text)
    print(text)
