"""One typed, frozen, fully defaulted configuration tree.

Layers, lowest first: defaults < user config file (platformdirs) < workspace ``.lsp-llm.toml``
< ``initializationOptions`` < ``workspace/didChangeConfiguration`` (< command-line flags).

Every layer is a plain mapping. Keys may be camelCase (the wire) or snake_case (TOML, CLI).
Unknown keys and invalid values never raise: they are reported as warnings and the previous
layer's value is kept. ``Settings`` itself is immutable; a new layer produces a new object.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

import cattrs
import platformdirs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

APP_NAME = "lsp-llm"
WORKSPACE_CONFIG_NAME = ".lsp-llm.toml"

Backend = Literal["auto", "transformers", "llamacpp", "openai"]
Device = Literal["auto", "cpu", "cuda", "mps"]
DType = Literal["auto", "float32", "bfloat16", "float16"]
DocstringStyle = Literal["google", "numpy", "rest"]
FastPath = Literal["auto", "off", "static", "compile"]


@dataclasses.dataclass(frozen=True)
class Limit:
    """Bounds of a number setting beyond the non-negativity all of them have."""

    low: float
    high: float
    reason: str
    """The warning's words for a value outside them."""


AtLeastOne = Annotated[int, Limit(1, math.inf, "must be at least 1")]
Share = Annotated[float, Limit(0, 1, "must be between 0 and 1")]

DEFAULT_SECRET_PATTERNS: tuple[str, ...] = (
    ".env",
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.keystore",
    "*.jks",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    "credentials",
    "credentials.*",
    "*credentials*.json",
    "secrets.*",
    "*.secret",
    "*.secrets",
    ".htpasswd",
    "*.kdbx",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the server, the engine and the index read. Every field has a default."""

    # Model and engine
    model: str = ""
    """HF model directory, hub id, or a ``.gguf`` file. Empty means the embedded default."""
    backend: Backend = "auto"
    device: Device = "auto"
    dtype: DType = "auto"
    max_new_tokens: AtLeastOne = 64
    context_window: AtLeastOne = 2048
    """Tokens of prompt (prefix + suffix + retrieved context) plus ``max_new_tokens``."""
    suffix_share: Share = 0.25
    """Share of the prompt budget given to text after the cursor (FIM models only)."""
    threads: int = 0
    """CPU threads for the model; 0 picks: all but one core on small machines, half on big."""
    temperature: float = 0.0
    top_p: Share = 0.95
    debounce_ms: int = 0
    """Server-side wait before an automatic completion; a newer request supersedes."""
    adaptive_debounce: Literal["adaptive", "off"] = "adaptive"
    """Debounce from the typing rhythm and response time (1.5-3x the mean keystroke gap, at
    most ``debounceMaxMs``); "off": the fixed ``debounceMs``."""
    debounce_max_ms: int = 250
    """Upper bound of the adaptive debounce."""
    request_recycling: bool = True
    """A request that types what a running generation produced attaches to it."""
    accept_ahead: bool = True
    """While idle, compute the completion after the shown one as if it were accepted."""
    idle_warmup: bool = True
    """While idle, prefill the prompt where a document was opened or the cursor went (no
    generation; dropped when real work arrives), so the next suggestion pays only the tail."""
    time_budget_ms: int = 600
    """Automatic single-line completions show what is ready this long after the request
    (when useful); 0: wait for the whole line."""
    num_suggestions: int = 3
    """Items for an explicitly invoked inline completion (automatic triggers get one)."""
    prefix_cache: bool = True
    cache_reuse: int = 64
    """Smallest chunk (tokens) of a changed prompt whose cached K/V are reused at a shifted
    position (the suffix after an edit; like llama.cpp's ``n_cache_reuse``); 0 turns it off."""
    prompt_cache_mib: int = 128
    """llama.cpp backend: host memory (MiB) kept for the KV states of earlier prompts, restored
    when one comes back (switching files); oldest dropped first; 0 turns it off."""
    completion_cache: bool = True
    fast_path: FastPath = "auto"
    """transformers backend decode path: "compile" (static KV cache + ``torch.compile``d step,
    CUDA graphs on a GPU), "static" (static KV cache, eager), "off" (dynamic cache);
    "auto" = compile on CUDA, off elsewhere."""
    # OpenAI-compatible backend
    endpoint: str = ""
    api_key_env: str = ""
    request_timeout_s: float = 30.0
    # Explanations and docstrings
    explain_max_new_tokens: int = 256
    docstring_max_new_tokens: int = 160
    docstring_style: DocstringStyle = "google"
    # Workspace index and retrieval
    retrieval: bool = True
    retrieval_share: Share = 0.3
    """Share of the prompt budget for snippets from other files."""
    index_max_file_bytes: int = 1_000_000
    index_max_files: int = 200_000
    secret_patterns: tuple[str, ...] = DEFAULT_SECRET_PATTERNS
    extra_ignore: tuple[str, ...] = ()
    # Daemon (read from the daemon's own configuration only; see docs/deploy.md)
    tcp_token: str = ""
    tcp_auth_timeout_s: float = 10.0
    """A TCP connection that has not sent a token-checked ``initialize`` this long after
    connecting is closed."""
    tcp_max_connections: AtLeastOne = 64
    """Concurrent TCP connections. When full, a new connection takes the place of the oldest
    one that is not authenticated yet; with none of those, it is refused."""

    def to_wire(self) -> dict[str, Any]:
        """The settings as camelCase JSON (``lspLlm/status`` and tests)."""
        return {
            to_camel(f.name): (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
            for f in dataclasses.fields(self)
        }


RELOAD_KEYS: tuple[str, ...] = (
    "model",
    "backend",
    "device",
    "dtype",
    "fast_path",
    "endpoint",
    "api_key_env",
    "threads",
    "request_timeout_s",
    "cache_reuse",
    "prompt_cache_mib",
)
"""Engine settings that take a model reload to change."""
ENGINE_KEYS: tuple[str, ...] = (*RELOAD_KEYS, "prefix_cache")
"""Settings of the one engine that every session of a process shares. On a daemon they change
only through the daemon's own configuration, or from the one authenticated session when it is
alone; everything else in :class:`Settings` is per session."""
DAEMON_KEYS: tuple[str, ...] = ("tcp_token", "tcp_auth_timeout_s", "tcp_max_connections")
"""Read once from the daemon's configuration when it starts listening; a session's value has
no effect."""


_CAMEL_RE = re.compile(r"(?<!^)(?=[A-Z])")


def to_snake(name: str) -> str:
    return _CAMEL_RE.sub("_", name).lower().replace("-", "_")


def cpu_threads(settings: Settings) -> int:
    """Threads for CPU inference. Leaving a core free on small machines keeps decoding steady
    while the editor and other tools are busy (llama.cpp's threads meet at every step)."""
    if settings.threads > 0:
        return settings.threads
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores - 1) if cores <= 4 else max(4, cores // 2)


def to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# -- coercion of raw layer values (TOML, JSON from the client, `--set` strings) -------------------


def _to_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
        return value.lower() in {"true", "1", "yes"}
    raise ValueError("must be true or false")


def _to_int(value: Any, _: type) -> int:
    """Every integer setting is a count or a duration: never negative."""
    if isinstance(value, bool) or not isinstance(value, (int, str, float)):
        raise ValueError("must be an integer")
    try:
        number = int(value)
    except ValueError:
        raise ValueError("must be an integer") from None
    if number < 0:
        raise ValueError("must not be negative")
    return number


def _to_float(value: Any, _: type) -> float:
    """Every number setting is a share, a temperature or a duration: never negative."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("must be a number")
    try:
        number = float(value)
    except ValueError:
        raise ValueError("must be a number") from None
    if number < 0 or number != number:
        raise ValueError("must be a non-negative number")
    return number


def _to_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _is_literal(hint: Any) -> bool:
    return get_origin(hint) is Literal


def _to_literal(value: Any, hint: Any) -> str:
    """Case-insensitive: ``backend = "LlamaCpp"`` is ``llamacpp``."""
    allowed = get_args(hint)
    if isinstance(value, str) and value.lower() in allowed:
        return value.lower()
    raise ValueError(f"must be one of {', '.join(map(repr, allowed))}")


def _is_str_tuple(hint: Any) -> bool:
    return get_origin(hint) is tuple


def _to_str_tuple(value: Any, _: Any) -> tuple[str, ...]:
    """A list of strings; one string is a list of one."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return tuple(value)


def _is_limited(hint: Any) -> bool:
    return any(isinstance(m, Limit) for m in getattr(hint, "__metadata__", ()))


def _limited(value: Any, hint: Any) -> Any:
    """The base type's coercion, then the :class:`Limit` of the field."""
    number = _converter.structure(value, hint.__origin__)
    for limit in hint.__metadata__:
        if isinstance(limit, Limit) and not limit.low <= number <= limit.high:
            raise ValueError(limit.reason)
    return number


_converter = cattrs.Converter()
"""Raw values to field types. A hook raises ValueError with the reason a value is refused
(the warning's text)."""
_converter.register_structure_hook(bool, _to_bool)
_converter.register_structure_hook(int, _to_int)
_converter.register_structure_hook(float, _to_float)
_converter.register_structure_hook(str, _to_str)
_converter.register_structure_hook_func(_is_literal, _to_literal)
_converter.register_structure_hook_func(_is_str_tuple, _to_str_tuple)
_converter.register_structure_hook_func(_is_limited, _limited)

_HINTS = get_type_hints(Settings, include_extras=True)


def _coerce(name: str, value: Any) -> Any:
    """Convert one raw value to the field's type, or raise ValueError with a reason."""
    return _converter.structure(value, _HINTS[name])


def _flatten(layer: Mapping[str, Any]) -> dict[str, Any]:
    """Accept ``{"lspLlm": {...}}`` / ``{"lsp-llm": {...}}`` wrappers as well as flat maps."""
    for key in ("lspLlm", "lsp-llm", "lsp_llm"):
        inner = layer.get(key)
        if isinstance(inner, Mapping) and len(layer) == 1:
            return dict(inner)
    return dict(layer)


def merge(
    base: Settings, layer: Mapping[str, Any] | None, source: str
) -> tuple[Settings, list[str]]:
    """Apply one layer on top of ``base``. Returns the new settings and warnings."""
    if not layer:
        return base, []
    if not isinstance(layer, Mapping):
        return base, [f"{source}: settings must be an object, ignored"]
    warnings: list[str] = []
    changes: dict[str, Any] = {}
    for raw_key, value in _flatten(layer).items():
        if value is None:
            continue
        name = to_snake(str(raw_key))
        if name not in _HINTS:
            warnings.append(f"{source}: unknown setting {raw_key!r} ignored")
            continue
        try:
            changes[name] = _coerce(name, value)
        except ValueError as exc:
            default = getattr(base, name)
            warnings.append(f"{source}: {to_camel(name)}={value!r} {exc}; keeping {default!r}")
    return dataclasses.replace(base, **changes), warnings


def user_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME))


def read_toml(path: Path) -> tuple[dict[str, Any], list[str]]:
    """Read a TOML settings file. A missing file is empty; a broken one is a warning."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}, []
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return {}, [f"{path}: cannot read settings ({exc}); ignored"]
    return data, []


def load_settings(
    *,
    config_file: Path | None = None,
    workspace_roots: list[Path] | None = None,
    init_options: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Settings, list[str]]:
    """Build settings from every file layer plus explicit maps. Never raises."""
    settings = Settings()
    warnings: list[str] = []
    layers: list[tuple[Mapping[str, Any] | None, str]] = []
    data, errs = read_toml(config_file or user_config_path())
    warnings += errs
    layers.append((data, str(config_file or user_config_path())))
    for root in workspace_roots or []:
        path = root / WORKSPACE_CONFIG_NAME
        data, errs = read_toml(path)
        warnings += errs
        layers.append((data, str(path)))
    layers.append((init_options, "initializationOptions"))
    layers.append((overrides, "command line"))
    for layer, source in layers:
        settings, errs = merge(settings, layer, source)
        warnings += errs
    return settings, warnings
