"""Settings layers: coercion of raw values, one warning per bad key, the previous value kept."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

from lsp_llm.config import (
    DEFAULT_SECRET_PATTERNS,
    Settings,
    load_settings,
    merge,
    to_camel,
    to_snake,
)


def test_defaults_and_wire_names() -> None:
    wire = Settings().to_wire()
    assert wire["maxNewTokens"] == 64
    assert wire["contextWindow"] == 2048
    assert wire["secretPatterns"] == list(DEFAULT_SECRET_PATTERNS)
    assert wire["extraIgnore"] == []
    assert set(wire) == {to_camel(f.name) for f in dataclasses.fields(Settings)}
    assert to_snake("maxNewTokens") == "max_new_tokens"
    assert to_snake("max-new-tokens") == "max_new_tokens"
    assert to_camel("request_timeout_s") == "requestTimeoutS"


@pytest.mark.parametrize(
    ("key", "raw", "value"),
    [
        ("maxNewTokens", "32", 32),
        ("max_new_tokens", 32, 32),
        ("maxNewTokens", 7.9, 7),
        ("contextWindow", " 4096 ", 4096),
        ("debounceMs", 0, 0),
        ("temperature", "0.7", 0.7),
        ("temperature", 1, 1.0),
        ("suffixShare", 1, 1.0),
        ("requestTimeoutS", "inf", math.inf),
        ("prefixCache", False, False),
        ("prefixCache", "no", False),
        ("retrieval", "TRUE", True),
        ("retrieval", "1", True),
        ("backend", "LlamaCpp", "llamacpp"),
        ("device", "cpu", "cpu"),
        ("docstringStyle", "NumPy", "numpy"),
        ("model", "Qwen/Qwen2.5-Coder-1.5B", "Qwen/Qwen2.5-Coder-1.5B"),
        ("extraIgnore", "build/", ("build/",)),
        ("extraIgnore", ["a", "b"], ("a", "b")),
        ("secretPatterns", ("x",), ("x",)),
    ],
)
def test_values_are_coerced(key: str, raw: Any, value: Any) -> None:
    settings, warnings = merge(Settings(), {key: raw}, "test")
    assert warnings == []
    got = getattr(settings, to_snake(key))
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("key", "raw", "reason"),
    [
        ("maxNewTokens", "lots", "must be an integer"),
        ("maxNewTokens", True, "must be an integer"),
        ("maxNewTokens", [1], "must be an integer"),
        ("maxNewTokens", "3.5", "must be an integer"),
        ("maxNewTokens", 0, "must be at least 1"),
        ("contextWindow", -5, "must not be negative"),
        ("tcpMaxConnections", 0, "must be at least 1"),
        ("debounceMs", -1, "must not be negative"),
        ("temperature", "hot", "must be a number"),
        ("temperature", False, "must be a number"),
        ("temperature", -0.5, "must be a non-negative number"),
        ("temperature", float("nan"), "must be a non-negative number"),
        ("suffixShare", 1.5, "must be between 0 and 1"),
        ("topP", "2", "must be between 0 and 1"),
        ("retrieval", "maybe", "must be true or false"),
        ("retrieval", 1, "must be true or false"),
        ("device", "tpu", "must be one of 'auto', 'cpu', 'cuda', 'mps'"),
        ("device", 3, "must be one of 'auto', 'cpu', 'cuda', 'mps'"),
        ("model", 5, "must be a string"),
        ("extraIgnore", [1, "a"], "must be a list of strings"),
        ("extraIgnore", {"a": 1}, "must be a list of strings"),
    ],
)
def test_bad_values_warn_once_and_keep_the_previous_value(key: str, raw: Any, reason: str) -> None:
    base, _ = merge(Settings(), {"maxNewTokens": 99, "temperature": 0.2}, "base")
    settings, warnings = merge(base, {key: raw, "debounce_max_ms": 300}, "layer")
    assert settings.debounce_max_ms == 300  # the good key of the same layer applies
    name = to_snake(key)
    previous = getattr(base, name)
    assert getattr(settings, name) == previous
    assert warnings == [f"layer: {to_camel(name)}={raw!r} {reason}; keeping {previous!r}"]


def test_unknown_keys_none_and_wrappers() -> None:
    settings, warnings = merge(Settings(), {"noSuch": 1, "model": None, "dtype": "float16"}, "x")
    assert warnings == ["x: unknown setting 'noSuch' ignored"]
    assert settings.dtype == "float16" and settings.model == ""
    for wrapper in ("lspLlm", "lsp-llm", "lsp_llm"):
        settings, warnings = merge(Settings(), {wrapper: {"maxNewTokens": 8}}, "x")
        assert settings.max_new_tokens == 8 and warnings == []
    assert merge(Settings(), None, "x") == (Settings(), [])
    assert merge(Settings(), {}, "x") == (Settings(), [])
    bad: Any = ["maxNewTokens"]
    assert merge(Settings(), bad, "x") == (Settings(), ["x: settings must be an object, ignored"])


def test_layers_later_wins(tmp_path: Path) -> None:
    user = tmp_path / "user.toml"
    user.write_text('maxNewTokens = 10\ndevice = "cpu"\nbogus = 1\n', encoding="utf-8")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".lsp-llm.toml").write_text("max_new_tokens = 20\ntemperature = 0.5\n")
    settings, warnings = load_settings(
        config_file=user,
        workspace_roots=[ws],
        init_options={"temperature": 0.6, "contextWindow": 1024},
        overrides={"contextWindow": "512"},
    )
    assert settings.max_new_tokens == 20
    assert settings.device == "cpu"
    assert settings.temperature == 0.6
    assert settings.context_window == 512
    assert warnings == [f"{user}: unknown setting 'bogus' ignored"]


def test_broken_toml_is_a_warning(tmp_path: Path) -> None:
    user = tmp_path / "user.toml"
    user.write_text("maxNewTokens = = 1\n", encoding="utf-8")
    settings, warnings = load_settings(config_file=user, workspace_roots=[])
    assert settings == Settings()
    assert len(warnings) == 1 and "cannot read settings" in warnings[0]
    assert warnings[0].startswith(str(user))
