"""The transformers + torch backend: the model stays resident, one decode step at a time.

We run our own prefill/decode loop instead of ``model.generate`` so that

* cancellation and early stops are checked between every two decode steps, and
* the KV cache of the previous prompt is kept: the next prompt reuses its longest common token
  prefix (the cache is cropped to it) and only the new tail is prefilled. While a person types,
  consecutive prompts share almost everything, so prefill shrinks to a few tokens.
* after that common prefix, chunks of the new prompt that the kept cache already holds at other
  positions (the suffix of a FIM prompt, moved by each keystroke in the prefix) are reused too:
  their keys are re-rotated to the new positions (RoPE models only; see :func:`plan_chunks`
  and :meth:`TransformersBackend._take_chunks`), so only the changed middle is prefilled.
"""

from __future__ import annotations

import dataclasses
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
    CancelToken,
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


def resolve_fast_path(requested: str, device: str, sliding_window: bool = False) -> str:
    """``fastPath`` "auto" means the compiled static-cache decode step on CUDA, off elsewhere
    (on a CPU the compiled step saves little and compiling costs a minute per start), and off
    for sliding-window models: their static cache cannot be cropped once past the window, so
    it would lose the prefix reuse that typing depends on."""
    if requested == "auto":
        return "compile" if device == "cuda" and not sliding_window else "off"
    return requested


def _static_len(settings: Settings) -> int:
    """Tokens the static KV cache holds: the prompt budget plus the longest answer, rounded up."""
    longest = max(
        settings.max_new_tokens, settings.explain_max_new_tokens, settings.docstring_max_new_tokens
    )
    need = settings.context_window + longest + 64
    return -(-need // 256) * 256


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
        self.cache_reuse = settings.cache_reuse
        """Smallest chunk (tokens) reused at a shifted position; 0 turns chunk reuse off."""
        self._cache_ages: list[int] = []
        """Per kept token: how many times its K/V were shifted since they were computed."""
        self._inv_freq: torch.Tensor | None = None
        """The model's RoPE frequencies when chunk reuse is possible for it (set at load)."""
        self.fast_path = "off"
        """Resolved at load: "off" (dynamic cache), "static" or "compile" (see Settings)."""
        self._static: Any = None
        self._static_len = _static_len(settings)
        self._step: Any = None
        self._abort_token: CancelToken | None = None
        self._bos_ids: list[int] = []

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
        self._bos_ids = self._probe_bos()
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
        self._install_abort_hooks(model)
        self._inv_freq = rope_inv_freq(model)
        progress("warming up", 0.95)
        self._warm_up()
        self.fast_path = resolve_fast_path(
            self.settings.fast_path, device, has_sliding_window(model.config)
        )
        if self.fast_path == "compile":
            progress("compiling the decode step (torch.compile; slow on the first start)", 0.96)
            t0 = time.perf_counter()
            try:
                self._compile_step()
            except Exception as exc:  # no compiler, an unsupported model: eager still works
                log.warning(
                    "torch.compile failed (%s: %s); using the eager static cache",
                    exc.__class__.__name__,
                    exc,
                )
                self.fast_path = "static"
                self._static = None
            else:
                log.info("decode step compiled in %.1fs", time.perf_counter() - t0)

    def _warm_up(self) -> None:
        with torch.inference_mode():
            self.model(input_ids=self._warm_ids(), use_cache=False)

    def _warm_ids(self) -> torch.Tensor:
        ids = self._bos() + self.tokenizer.encode("def f(x):")
        return torch.tensor([ids or [0]], device=self.device)

    @property
    def tokenizer(self) -> HFTokenizer:
        if self._tokenizer is None:
            raise BackendError("model not loaded")
        return self._tokenizer

    def _bos(self) -> list[int]:
        """The BOS the model expects in front of a plain prompt (probed once, at load)."""
        return list(self._bos_ids)

    def _probe_bos(self) -> list[int]:
        tok = self.tokenizer.tok
        bos = getattr(tok, "bos_token_id", None)
        add_bos = getattr(tok, "add_bos_token", None)
        if bos is None:
            return []
        if add_bos is False:
            return []
        # Only models whose tokenizer adds BOS by itself expect it (Gemma, Llama).
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
        self._static = None
        self._step = None
        self._cache_ids = []
        self._cache_ages = []
        self._inv_freq = None
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
        except Exception as exc:  # only to turn any OOM into OutOfMemory; re-raised
            if _is_oom(exc):
                self._cache, self._cache_ids = None, []
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                raise OutOfMemory(
                    f"out of memory while generating ({exc.__class__.__name__}); "
                    "try a smaller contextWindow or maxNewTokens"
                ) from exc
            raise

    def _new_cache(self, static: bool) -> Any:
        if static:
            # One static cache for the life of the model: CUDA graphs replay on fixed addresses.
            if self._static is None:
                from transformers import StaticCache

                self._static = StaticCache(config=self.model.config, max_cache_len=self._static_len)
            self._static.reset()
            return self._static
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        if hasattr(cache, "activate_past_recording"):
            cache.activate_past_recording()
        return cache

    def _prepare_cache(self, ids: list[int], static: bool) -> tuple[Any, int, list[_Splice]]:
        """Reuse the longest common prefix of the kept cache, and after it the chunks of
        ``ids`` that the kept cache holds elsewhere. Returns (cache, reused prefix, splices)."""
        kept = self._cache
        if (
            not self.prefix_cache_enabled
            or kept is None
            or (kept is self._static) != static  # the kept cache is of the other kind
        ):
            return self._new_cache(static), 0, []
        common = 0
        limit = min(len(ids) - 1, len(self._cache_ids))  # prefill at least one token
        old = self._cache_ids
        while common < limit and old[common] == ids[common]:
            common += 1
        # The chunks are copied out before the crop: it drops (dynamic) or lets the middle
        # overwrite (static) the K/V they come from.
        splices = self._take_chunks(kept, ids, common) if common > 0 else []
        if common == 0 or not _rollback(kept, common):
            return self._new_cache(static), 0, []
        return kept, common, splices

    def _take_chunks(self, cache: Any, ids: list[int], start: int) -> list[_Splice]:
        """K/V for the chunks of ``ids`` after ``start`` that ``cache`` holds at other positions,
        the keys already re-rotated to their new positions.

        RoPE applies a rotation by ``position * inv_freq`` to each key, and rotations compose,
        so ``rotate(K_old, new - old)`` is exactly the key the model computes for the same
        hidden state at the new position; values carry no position and are copied as they are.
        Only the hidden states are approximate: a chunk's K/V (beyond the first layer) were
        computed attending to the older text in front of it, not to the new middle. The new
        middle itself is exact (it comes before the chunk and attends to it only causally, i.e.
        not at all). A token's K/V are shifted at most ``_MAX_SHIFTS`` times before the chunk
        is computed afresh, which bounds both that staleness and the rounding of repeated
        rotations in bfloat16.
        """
        inv_freq = self._inv_freq
        if self.cache_reuse <= 0 or inv_freq is None:
            return []
        old = self._cache_ids
        ages = self._kept_ages()
        try:
            layers = list(cache.layers)
            if int(cache.get_seq_length()) != len(old) or not all(
                _shiftable(layer, inv_freq) for layer in layers
            ):
                return []
            chunks = [
                c
                for c in plan_chunks(old, ids, start, self.cache_reuse)
                if max(ages[c.old_start : c.old_start + c.length]) < _MAX_SHIFTS
            ]
            splices = []
            for c in chunks:
                span = slice(c.old_start, c.old_start + c.length)
                keys = [shift_rope(layer.keys[:, :, span], c.delta, inv_freq) for layer in layers]
                values = [layer.values[:, :, span].clone() for layer in layers]
                age = [a + 1 for a in ages[span]]
                splices.append(_Splice(c.new_start, c.length, keys, values, age))
        except Exception as exc:  # a cache layout we do not know: plain prefix reuse only
            log.debug("chunk reuse skipped: %s", exc)
            return []
        if splices:
            log.debug(
                "reusing %d shifted chunk(s), %d tokens",
                len(splices),
                sum(sp.length for sp in splices),
            )
        return splices

    def _prefill(
        self,
        ids: list[int],
        head_ages: list[int],
        splices: list[_Splice],
        cache: Any,
        cancel: CancelToken,
    ) -> tuple[torch.Tensor, list[int]]:
        """Compute the rest of ``ids`` into ``cache``, which holds the first
        ``len(head_ages)``, splicing in the reused chunks between the computed parts. Returns
        the last logits and the ages (shift counts) of the K/V of all of ``ids``."""
        ages = list(head_ages)
        pos = len(head_ages)
        for splice in splices:
            if splice.at > pos:
                self._abortable(
                    torch.tensor([ids[pos : splice.at]], device=self.device), cache, cancel
                )
                ages += [0] * (splice.at - pos)
            for layer, k, v in zip(cache.layers, splice.keys, splice.values, strict=True):
                layer.update(k, v)
            ages += splice.ages
            pos = splice.at + splice.length
        logits = self._abortable(torch.tensor([ids[pos:]], device=self.device), cache, cancel)
        ages += [0] * (len(ids) - pos)
        return logits, ages

    def _forward(self, input_ids: torch.Tensor, cache: Any) -> torch.Tensor:
        """One forward pass that extends ``cache``; the logits of the last position."""
        kwargs: dict[str, Any] = {self._cache_kw: cache, "use_cache": True, "logits_to_keep": 1}
        return self.model(input_ids=input_ids, **kwargs).logits[:, -1, :]

    def _abortable(self, input_ids: torch.Tensor, cache: Any, cancel: CancelToken) -> torch.Tensor:
        """``_forward`` that stops between decoder layers once ``cancel`` is set (``_Aborted``).

        Only the eager path is abortable mid-pass; the caller rolls the cache back.
        """
        self._abort_token = cancel
        try:
            return self._forward(input_ids, cache)
        finally:
            self._abort_token = None

    def _install_abort_hooks(self, model: Any) -> None:
        """A pre-hook on every decoder layer: a cancel stops a long prefill or a decode step
        after the layer that is running, not at the end of the whole pass."""
        layers = _decoder_layers(model)
        if not layers:
            log.debug("no decoder layer list found; cancellation is checked between steps only")
            return

        def hook(_module: Any, _args: Any) -> None:
            if torch.compiler.is_compiling():
                return  # compiled steps are short; cancellation is checked between them
            token = self._abort_token
            if token is not None and token.cancelled:
                raise _Aborted

        for layer in layers:
            layer.register_forward_pre_hook(hook)

    def _compile_step(self) -> None:
        """The fast path: the one-token decode step under ``torch.compile`` over the static
        cache (CUDA graphs on a GPU). Compiled and captured here, at load, not on a request."""
        mode = "reduce-overhead" if self.device == "cuda" else "default"
        step = torch.compile(self._forward, mode=mode, dynamic=False)
        with torch.inference_mode():
            cache = self._new_cache(static=True)
            logits = self._forward(self._warm_ids(), cache)
            for _ in range(3):  # compile, then warm up and record the graph
                tok = torch.argmax(logits, dim=-1).view(1, 1)
                _mark_step()
                logits = step(tok, cache).clone()
            cache.reset()
        self._step = step

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
        static = (
            self.fast_path != "off"
            and n == 1
            and len(ids) + request.max_new_tokens + 1 <= self._static_len
        )
        cache, reused, splices = self._prepare_cache(ids, static)
        head_ages = self._kept_ages()[:reused]
        # Forget the kept cache while we work: if anything fails, it is in an unknown state.
        self._cache, self._cache_ids = None, []
        device = self.device
        cancel = request.cancel
        if cancel.cancelled:
            self._keep(cache, ids[:reused], head_ages)
            return GenerationResult(texts=("",) * n, finish_reason="cancelled")
        t_prefill = time.perf_counter()
        try:
            logits, ages = self._prefill(ids, head_ages, splices, cache, cancel)
        except _Aborted:
            # Cancelled mid-prefill: the layers that ran hold part of the new tail; drop it.
            if _rollback(cache, reused):
                self._keep(cache, ids[:reused], head_ages)
            return GenerationResult(texts=("",) * n, finish_reason="cancelled")
        computed = len(ids) - reused - sum(sp.length for sp in splices)
        fed: list[int] = list(ids)  # tokens whose K/V are in the cache (batch row 0)
        if n > 1:
            cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, dim=0)
        prefill_s = time.perf_counter() - t_prefill
        compiled = self._step if static else None
        generated: list[list[int]] = [[] for _ in range(n)]
        texts = [""] * n
        done = [False] * n
        finish = "length"
        t_first = 0.0
        steps = 0
        while True:
            if cancel.cancelled:
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
            if compiled is not None:
                _mark_step()
                logits = compiled(feed, cache).clone()
            else:
                try:
                    logits = self._abortable(feed, cache, cancel)
                except _Aborted:
                    finish = "cancelled"
                    if not _rollback(cache, len(fed)):
                        cache = None
                    break
            fed.append(int(next_tokens[0]))
        if cache is not None:
            if n > 1:
                cache.batch_select_indices(torch.tensor([0], device=device))
            self._keep(cache, fed, ages + [0] * (len(fed) - len(ages)))
        now = time.perf_counter()
        timings = Timings(
            queued_s=max(0.0, t0 - request.created_at),
            prefill_s=prefill_s,
            first_token_s=t_first,
            decode_s=max(0.0, now - t0 - prefill_s),
            total_s=now - t0,
            prompt_tokens=len(ids),
            prefill_tokens=computed,
            new_tokens=sum(len(g) for g in generated),
        )
        # Final texts: decode once more in full (a trailing partial character is dropped).
        final = []
        for i in range(n):
            text, _ = cut_at_stop(self.tokenizer.decode(generated[i]), request.stop)
            final.append(text.removesuffix("\ufffd") if finish != "cancelled" else texts[i])
        return GenerationResult(texts=tuple(final), finish_reason=finish, timings=timings)  # type: ignore[arg-type]

    def _kept_ages(self) -> list[int]:
        """Shift counts of the kept cache's tokens (zeros if ``_cache_ids`` was set alone)."""
        n = len(self._cache_ids)
        return list(self._cache_ages) if len(self._cache_ages) == n else [0] * n

    def _keep(self, cache: Any, ids: list[int], ages: list[int]) -> None:
        """Keep ``cache`` (holding exactly ``ids``, shifted ``ages`` times) for the next
        request's prefix and chunk reuse."""
        if self.prefix_cache_enabled and ids:
            self._cache, self._cache_ids, self._cache_ages = cache, ids, ages


class _Aborted(Exception):
    """Raised by the layer hook to stop a forward pass that was cancelled."""


def _mark_step() -> None:
    """Tell CUDA-graph trees that a new decode step starts (the last outputs are consumed)."""
    mark = getattr(torch.compiler, "cudagraph_mark_step_begin", None)
    if mark is not None:
        mark()


def _window_survives(layer: Any, extra: int, length: int) -> bool:
    """Whether a sliding-window layer still holds a full window after dropping ``extra``
    tokens. Such a layer keeps only the states since its last crop plus one window; cropping
    back further than that would leave the next tokens attending to a short window (wrong
    logits, or a mask of the wrong size)."""
    if not getattr(layer, "is_sliding", False):
        return True
    keys = getattr(layer, "keys", None)
    window = getattr(layer, "sliding_window", None)
    if keys is None or window is None:
        return True
    if getattr(layer, "is_compileable", False):  # static layers: ``is_croppable`` decides
        return True
    held = int(keys.shape[-2])
    return held - extra >= min(int(window) - 1, length)


def has_sliding_window(config: Any) -> bool:
    """Whether the model has sliding-window attention layers (Gemma 2/3, Mistral...)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    kinds = getattr(text, "layer_types", None) or ()
    if any("sliding" in str(kind) for kind in kinds):
        return True
    return bool(getattr(text, "sliding_window", None)) and bool(
        getattr(text, "use_sliding_window", True)
    )


def _decoder_layers(model: Any) -> list[Any]:
    """The model's list of decoder blocks (``model.model.layers`` in most architectures)."""
    try:
        decoder = model.get_decoder()
    except Exception:  # get_decoder's own lookup failing (any model code): try .model
        decoder = getattr(model, "model", None)
    layers = getattr(decoder, "layers", None)
    if isinstance(layers, torch.nn.ModuleList) and len(layers) > 0:
        return list(layers)
    return []


def _rollback(cache: Any, length: int) -> bool:
    """Crop every layer of ``cache`` to ``length`` tokens (layers may differ after an aborted
    pass). False when the cache cannot be put back exactly; the caller then starts afresh."""
    try:
        layers = list(cache.layers)
        extras = [int(layer.get_seq_length()) - length for layer in layers]
        for layer, extra in zip(layers, extras, strict=True):
            if not getattr(layer, "is_croppable", True):
                return False
            if extra < 0 and getattr(layer, "is_initialized", True):
                return False
            if extra > 0 and not _window_survives(layer, extra, length):
                return False
        for layer, extra in zip(layers, extras, strict=True):
            if extra > 0:
                layer.crop(-extra)
        return int(cache.get_seq_length()) == length
    except Exception as exc:  # a cache type that cannot roll back
        log.debug("prefix cache reset: %s", exc)
        return False


# -- chunk reuse at shifted positions (RoPE) ----------------------------------------------------

_MAX_SHIFTS = 16
"""A token's K/V are shifted at most this many times (keystrokes) before they are recomputed."""
_ROPE_SHIFT_MODELS = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma"})
"""Architectures whose keys are cached after a full-width ``rotate_half`` RoPE, as checked."""
_ROPE_SHIFT_TYPES = frozenset({"default", "linear", "llama3", "yarn"})
"""RoPE variants whose frequencies do not depend on the sequence length ("dynamic" and
"longrope" recompute them as the prompt grows, so a rotation by a delta would be wrong)."""


@dataclasses.dataclass(frozen=True)
class Chunk:
    """``new[new_start : new_start + length] == old[old_start : old_start + length]``."""

    new_start: int
    old_start: int
    length: int

    @property
    def delta(self) -> int:
        return self.new_start - self.old_start


@dataclasses.dataclass
class _Splice:
    """A reused chunk's K/V per layer, already at its new positions ``at ...``."""

    at: int
    length: int
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    ages: list[int]


def plan_chunks(old: Sequence[int], new: Sequence[int], start: int, min_len: int) -> list[Chunk]:
    """Chunks of ``new[start:-1]`` of at least ``min_len`` tokens found in ``old[start:]``, in
    order (each after the previous one in both), longest match first at each position (what
    llama.cpp's ``n_cache_reuse`` does, but also across inserted tokens). The last token of
    ``new`` is never reused: its logits start the answer. ``min_len`` < 1 means no chunks."""
    end = len(new) - 1
    if min_len < 1 or end - start < min_len or len(old) - start < min_len:
        return []
    k = min(min_len, 16)
    index: dict[tuple[int, ...], list[int]] = {}
    for q in range(start, len(old) - min_len + 1):
        bucket = index.setdefault(tuple(old[q : q + k]), [])
        if len(bucket) < 8:  # repetitive text: a few candidates are enough
            bucket.append(q)
    chunks: list[Chunk] = []
    p, floor = start, start
    while p <= end - min_len:
        best_q, best_len = -1, 0
        for q in index.get(tuple(new[p : p + k]), ()):
            if q < floor or new[p : p + min_len] != old[q : q + min_len]:
                continue
            n, limit = min_len, min(end - p, len(old) - q)
            while n < limit and new[p + n] == old[q + n]:
                n += 1
            if n > best_len:
                best_q, best_len = q, n
        if best_len:
            chunks.append(Chunk(p, best_q, best_len))
            p, floor = p + best_len, best_q + best_len
        else:
            p += 1
    return chunks


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def shift_rope(keys: torch.Tensor, delta: int, inv_freq: torch.Tensor) -> torch.Tensor:
    """Keys RoPE-rotated at positions ``p`` (``[..., seq, head_dim]``), rotated to ``p + delta``
    (a new tensor, in float32 arithmetic). A pure rotation: YaRN's attention factor, already in
    the keys, is kept as it is."""
    angle = float(delta) * inv_freq.to(device=keys.device, dtype=torch.float32)
    emb = torch.cat((angle, angle))
    k = keys.float()
    return (k * emb.cos() + _rotate_half(k) * emb.sin()).to(keys.dtype)


def rope_inv_freq(model: Any) -> torch.Tensor | None:
    """The RoPE frequencies to re-rotate ``model``'s cached keys with, or None when chunk reuse
    is not possible for it: not an architecture of ``_ROPE_SHIFT_MODELS``, sliding-window
    layers (their cache holds only a window), partial or length-dependent RoPE."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    kind = str(getattr(text, "model_type", ""))
    reason = ""
    rotary: Any = None
    try:
        decoder = model.get_decoder()
    except Exception:  # get_decoder's own lookup failing (any model code): try .model
        decoder = getattr(model, "model", None)
    rotary = getattr(decoder, "rotary_emb", None)
    inv_freq = getattr(rotary, "inv_freq", None)
    rope_type = str(getattr(rotary, "rope_type", "default"))
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    if kind not in _ROPE_SHIFT_MODELS:
        reason = f"model type {kind!r}"
    elif has_sliding_window(config):
        reason = "sliding-window attention"
    elif not isinstance(inv_freq, torch.Tensor) or 2 * inv_freq.numel() != head_dim:
        reason = "no full-width rotary embedding"
    elif rope_type not in _ROPE_SHIFT_TYPES:
        reason = f"RoPE type {rope_type!r}"
    elif float(getattr(text, "partial_rotary_factor", 1.0) or 1.0) != 1.0:
        reason = "partial RoPE"
    if reason:
        log.info("shifted chunk reuse is off for this model (%s)", reason)
        return None
    assert isinstance(inv_freq, torch.Tensor)
    return inv_freq.detach().float().clone()


def _shiftable(layer: Any, inv_freq: torch.Tensor) -> bool:
    """A plain full-attention layer (dynamic or static) holding RoPE keys of the right width."""
    if type(layer).__name__ not in {"DynamicLayer", "StaticLayer"}:
        return False
    keys = getattr(layer, "keys", None)
    return (
        bool(getattr(layer, "is_initialized", False))
        and isinstance(keys, torch.Tensor)
        and keys.dim() == 4
        and int(keys.shape[-1]) == 2 * inv_freq.numel()
    )
