"""The transformers + torch backend: the model stays resident, one decode step at a time.

We run our own prefill/decode loop instead of ``model.generate`` so that

* cancellation and early stops are checked between every two decode steps, and
* the KV cache of the previous prompt is kept: the next prompt reuses its longest common token
  prefix (the cache is cropped to it) and only the new tail is prefilled. While a person types,
  consecutive prompts share almost everything, so prefill shrinks to a few tokens.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lsp_llm.config import Settings, cache_dir, cpu_threads
from lsp_llm.engine.backends.base import BackendError, EmitFn, OutOfMemory, ProgressFn
from lsp_llm.engine.backends.hf_tokenizer import HFTokenizer
from lsp_llm.engine.models import ModelSpec
from lsp_llm.engine.requests import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    Timings,
    TokenEvent,
    cut_at_stop,
)

log = logging.getLogger(__name__)


def pick_device(requested: str) -> str:
    if requested != "auto":
        if requested == "cuda" and not torch.cuda.is_available():
            raise BackendError("device 'cuda' requested but torch sees no CUDA device")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(requested: str, device: str) -> torch.dtype:
    if requested != "auto":
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
            requested
        ]
    if device == "cuda":
        return torch.bfloat16
    if device == "mps":
        return torch.float16
    return torch.float32


def _gguf_cache_dir(gguf: Path) -> Path:
    import transformers

    st = gguf.stat()
    key = f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}|{transformers.__version__}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / "converted" / f"{gguf.stem}-{digest}"


def load_gguf(path: Path, progress: ProgressFn) -> tuple[Any, Any]:
    """Load a GGUF through transformers, converting once and caching the result on disk.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so we save the config, the
    tokenizer and the weights (safetensors ``save_model``) ourselves; that cache loads in seconds.
    """
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = _gguf_cache_dir(path)
    if (target / "done").is_file():
        progress(f"loading cached conversion of {path.name}", 0.3)
        tok = AutoTokenizer.from_pretrained(target)
        model = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32)
        return model, tok
    progress(f"converting {path.name} for transformers (first start only, ~2 min)", 0.05)
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    )
    progress("saving the conversion to the cache", 0.8)
    tmp = target.with_name(target.name + ".tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model.config.save_pretrained(tmp)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"))
        (tmp / "done").write_text(json.dumps({"source": str(path)}))
        shutil.rmtree(target, ignore_errors=True)
        tmp.replace(target)
    except OSError as exc:
        log.warning("could not cache the GGUF conversion in %s: %s", target, exc)
        shutil.rmtree(tmp, ignore_errors=True)
    return model, tok


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    if isinstance(exc, MemoryError):
        return True
    # CUDA/MPS say "out of memory"; torch's CPU allocator says "can't allocate memory".
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


class TransformersBackend:
    """See the module docstring. Used only from the engine's worker thread."""

    name = "transformers"

    def __init__(self, settings: Settings, spec: ModelSpec) -> None:
        self.settings = settings
        self.spec = spec
        self.model_name = spec.display_name
        self.device = "unloaded"
        self.dtype = "unloaded"
        self.model: Any = None
        self._tokenizer: HFTokenizer | None = None
        self._eos_ids: set[int] = set()
        self._cache: Any = None
        self._cache_ids: list[int] = []
        self._cache_kw = "past_key_values"
        self.prefix_cache_enabled = settings.prefix_cache

    # -- loading ---------------------------------------------------------------------------
    def load(self, progress: ProgressFn) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = pick_device(self.settings.device)
        dtype = pick_dtype(self.settings.dtype, device)
        if device == "cpu":
            torch.set_num_threads(cpu_threads(self.settings))
        try:
            if self.spec.format == "gguf":
                model, tok = load_gguf(Path(self.spec.path), progress)
            else:
                progress(f"loading {self.spec.display_name}", 0.1)
                tok = AutoTokenizer.from_pretrained(self.spec.path)
                model = AutoModelForCausalLM.from_pretrained(self.spec.path, dtype=dtype)
        except OSError as exc:
            raise BackendError(f"cannot load model {self.spec.path!r}: {exc}") from exc
        except ValueError as exc:
            raise BackendError(f"cannot load model {self.spec.path!r}: {exc}") from exc
        progress(f"moving the model to {device}", 0.9)
        model = model.to(device=device, dtype=dtype)
        model.eval()
        self.model = model
        params = inspect.signature(model.forward).parameters
        # transformers 5 renamed past_key_values to cache; accept both.
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._tokenizer = HFTokenizer(tok)
        self.device = device
        self.dtype = str(dtype).removeprefix("torch.")
        eos: set[int] = set()
        for source in (getattr(tok, "eos_token_id", None), model.config.eos_token_id):
            if isinstance(source, int):
                eos.add(source)
            elif isinstance(source, (list, tuple)):
                eos.update(int(i) for i in source)
        gen_cfg = getattr(model, "generation_config", None)
        gen_eos = getattr(gen_cfg, "eos_token_id", None)
        if isinstance(gen_eos, int):
            eos.add(gen_eos)
        elif isinstance(gen_eos, (list, tuple)):
            eos.update(int(i) for i in gen_eos)
        self._eos_ids = eos
        progress("warming up", 0.95)
        self._warm_up()

    def _warm_up(self) -> None:
        with torch.inference_mode():
            ids = torch.tensor(
                [self._bos() + self.tokenizer.encode("def f():")], device=self.device
            )
            self.model(input_ids=ids, use_cache=False)

    @property
    def tokenizer(self) -> HFTokenizer:
        if self._tokenizer is None:
            raise BackendError("model not loaded")
        return self._tokenizer

    def _bos(self) -> list[int]:
        tok = self.tokenizer.tok
        bos = getattr(tok, "bos_token_id", None)
        add_bos = getattr(tok, "add_bos_token", None)
        if bos is None:
            return []
        if add_bos is False:
            return []
        # Only models whose tokenizer adds BOS by itself expect it (Gemma, Llama); probe once.
        probe = tok.encode("a", add_special_tokens=True)
        return [int(bos)] if probe and probe[0] == bos else []

    def render_chat(self, messages: Sequence[ChatMessage]) -> str | None:
        tok = self.tokenizer.tok
        if not getattr(tok, "chat_template", None):
            return None
        try:
            return str(
                tok.apply_chat_template(
                    [{"role": m.role, "content": m.content} for m in messages],
                    tokenize=False,
                    add_generation_prompt=True,
                )
            )
        except Exception as exc:  # a template that rejects e.g. system messages
            log.debug("chat template failed (%s); using the plain prompt", exc)
            return None

    def close(self) -> None:
        self.model = None
        self._cache = None
        self._cache_ids = []
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- generation ------------------------------------------------------------------------
    def stop_token_ids(self, stops: Sequence[str]) -> set[int]:
        ids = set(self._eos_ids)
        for stop in stops:
            if stop in self.tokenizer.special_tokens:
                tid = self.tokenizer.token_id(stop)
                if tid is not None:
                    ids.add(tid)
        return ids

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        prompt = request.prompt
        if request.messages:
            rendered = self.render_chat(request.messages)
            if rendered is None:
                raise BackendError("this model has no chat template; send a plain prompt")
            # The chat template already carries BOS where the model wants it.
            return self.tokenizer.encode(rendered)
        return self._bos() + self.tokenizer.encode(prompt)

    def generate(self, request: GenerationRequest, emit: EmitFn) -> GenerationResult:
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                return self._generate(request, emit, t0)
        except BackendError:
            raise
        except Exception as exc:
            if _is_oom(exc):
                self._cache, self._cache_ids = None, []
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                raise OutOfMemory(
                    f"out of memory while generating ({exc.__class__.__name__}); "
                    "try a smaller contextWindow or maxNewTokens"
                ) from exc
            raise

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        if hasattr(cache, "activate_past_recording"):
            cache.activate_past_recording()
        return cache

    def _prepare_cache(self, ids: list[int]) -> tuple[Any, int]:
        """Reuse the longest common prefix of the kept cache. Returns (cache, reused tokens)."""
        if not self.prefix_cache_enabled or self._cache is None:
            return self._new_cache(), 0
        common = 0
        limit = min(len(ids) - 1, len(self._cache_ids))  # prefill at least one token
        old = self._cache_ids
        while common < limit and old[common] == ids[common]:
            common += 1
        if common == 0:
            return self._new_cache(), 0
        try:
            drop = self._cache.get_seq_length() - common
            if drop > 0:
                self._cache.crop(-drop)
            if self._cache.get_seq_length() != common:
                raise RuntimeError("crop left an unexpected length")
        except Exception as exc:  # a cache type that cannot roll back
            log.debug("prefix cache reset: %s", exc)
            return self._new_cache(), 0
        return self._cache, common

    def _forward(self, input_ids: torch.Tensor, cache: Any) -> Any:
        """One forward pass that extends ``cache``; logits only for the last position."""
        kwargs: dict[str, Any] = {self._cache_kw: cache, "use_cache": True, "logits_to_keep": 1}
        return self.model(input_ids=input_ids, **kwargs)

    def _sample(self, logits: torch.Tensor, request: GenerationRequest) -> torch.Tensor:
        if request.temperature <= 0:
            return torch.argmax(logits, dim=-1)
        probs = torch.softmax(logits.float() / request.temperature, dim=-1)
        if request.top_p < 1.0:
            sorted_p, sorted_i = torch.sort(probs, descending=True, dim=-1)
            cum = torch.cumsum(sorted_p, dim=-1)
            sorted_p[(cum - sorted_p) > request.top_p] = 0
            probs = torch.zeros_like(probs).scatter_(-1, sorted_i, sorted_p)
        return torch.multinomial(probs, 1).squeeze(-1)

    def _generate(self, request: GenerationRequest, emit: EmitFn, t0: float) -> GenerationResult:
        if self.model is None:
            raise BackendError("model not loaded")
        ids = self.prompt_ids(request)
        if not ids:
            ids = self._bos() or [next(iter(self._eos_ids), 0)]
        n = max(1, request.num_return_sequences)
        stop_ids = self.stop_token_ids(request.stop)
        cache, reused = self._prepare_cache(ids)
        # Forget the kept cache while we work: if anything fails, it is in an unknown state.
        self._cache, self._cache_ids = None, []
        device = self.device
        if request.cancel.cancelled:
            return GenerationResult(texts=("",) * n, finish_reason="cancelled")
        t_prefill = time.perf_counter()
        inp = torch.tensor([ids[reused:]], device=device)
        out = self._forward(inp, cache)
        logits = out.logits[:, -1, :]
        fed: list[int] = list(ids)  # tokens whose K/V are in the cache (batch row 0)
        if n > 1:
            cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, dim=0)
        prefill_s = time.perf_counter() - t_prefill
        generated: list[list[int]] = [[] for _ in range(n)]
        texts = [""] * n
        done = [False] * n
        finish = "length"
        t_first = 0.0
        steps = 0
        while True:
            if request.cancel.cancelled:
                finish = "cancelled"
                break
            next_tokens = self._sample(logits, request).tolist()
            steps += 1
            if t_first == 0.0:
                t_first = time.perf_counter() - t0
            for i, tok in enumerate(next_tokens):
                if done[i]:
                    continue
                if tok in stop_ids:
                    done[i] = True
                    continue
                generated[i].append(int(tok))
                text = self.tokenizer.decode(generated[i])
                if text.endswith("\ufffd"):
                    continue  # an incomplete UTF-8 sequence; wait for the next token
                text, hit = cut_at_stop(text, request.stop)
                if len(text) > len(texts[i]) and text.startswith(texts[i]):
                    emit(TokenEvent(text[len(texts[i]) :], i))
                texts[i] = text
                if hit or (request.should_stop is not None and request.should_stop(text)):
                    done[i] = True
            if all(done):
                finish = "stop"
                break
            if steps >= request.max_new_tokens:
                finish = "length"
                break
            feed = torch.tensor([[t] for t in next_tokens], device=device)
            out = self._forward(feed, cache)
            logits = out.logits[:, -1, :]
            fed.append(int(next_tokens[0]))
        if n > 1:
            cache.batch_select_indices(torch.tensor([0], device=device))
        if self.prefix_cache_enabled and finish != "error":
            self._cache, self._cache_ids = cache, fed
        now = time.perf_counter()
        timings = Timings(
            queued_s=max(0.0, t0 - request.created_at),
            prefill_s=prefill_s,
            first_token_s=t_first,
            decode_s=max(0.0, now - t0 - prefill_s),
            total_s=now - t0,
            prompt_tokens=len(ids),
            prefill_tokens=len(ids) - reused,
            new_tokens=sum(len(g) for g in generated),
        )
        # Final texts: decode once more in full (a trailing partial character is dropped).
        final = []
        for i in range(n):
            text, _ = cut_at_stop(self.tokenizer.decode(generated[i]), request.stop)
            final.append(text.removesuffix("\ufffd") if finish != "cancelled" else texts[i])
        return GenerationResult(texts=tuple(final), finish_reason=finish, timings=timings)  # type: ignore[arg-type]
