"""Secret patterns match the way file systems compare names: ``.ENV`` is ``.env`` on macOS and
Windows, ``%2Eenv`` in a URI is ``.env``, and backslashes, ``./`` and ``..`` segments change
nothing. Checked on ``is_secret_path``, on the index scanner, and end to end: such a document
never reaches a prompt (``lspLlm/debugLastPrompt`` on the shared tiny-model server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_llm.config import DEFAULT_SECRET_PATTERNS, Settings
from lsp_llm.context.scan import IgnoreRules, scan
from lsp_llm.security import is_secret_path, normalize_path
from tests.robustness.raw import RawServer

INLINE = "textDocument/inlineCompletion"
P = DEFAULT_SECRET_PATTERNS


@pytest.mark.parametrize(
    "path",
    [
        ".ENV",
        ".Env.Local",
        "Id_Rsa",
        "ID_ED25519.pub",
        "Server.PEM",
        "SECRETS.json",
        "file:///home/me/proj/.ENV",
        "file:///home/me/proj/%2Eenv",
        "file:///home/me/proj/%2eENV",
        "file:///home/me/proj/sub/%49d_rsa",
        "file:///c%3A/Users/me/proj/.Env",
        "C:\\Users\\me\\proj\\Id_Rsa",
        "proj\\.ENV",
        "./.env",
        "src/../.env",
        "/home/me/proj/./sub/../.ENV",
        ".env.",
        ".env::$DATA",
        "file:///home/me/proj/Caf%C3%A9/.ENV",
    ],
)
def test_secret_names_match_whatever_their_case_or_spelling(path: str) -> None:
    assert is_secret_path(path, P)


@pytest.mark.parametrize(
    "path",
    [
        "main.py",
        "env.py",
        "file:///home/me/proj/environment.py",
        "file:///home/me/proj/%2Eenvrc/readme.md",
        "docs/Id_Rsa_notes/../readme.md",
        "",
    ],
)
def test_ordinary_names_are_not_secret(path: str) -> None:
    assert not is_secret_path(path, P)


def test_user_patterns_match_case_insensitively_too() -> None:
    assert is_secret_path("config/Prod.Vault", ("*.vault",))
    assert is_secret_path("config/prod.vault", ("*.VAULT",))
    assert not is_secret_path("config/prod.vault", ())


def test_a_broken_pattern_does_not_disable_the_others() -> None:
    assert is_secret_path("a/.ENV", ("broken\\", ".env"))


def test_normalisation_resolves_segments_and_case() -> None:
    assert normalize_path("file:///Home/Me/./a/../%2EEnv") == "/home/me/.env"
    assert normalize_path("a\\b\\..\\C") == "a/c"
    assert normalize_path("../up/.ENV") == "../up/.env"


def test_the_index_skips_secret_files_whatever_their_case(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("x = 1\n")
    (tmp_path / ".ENV").write_text("API_KEY=x\n")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "Id_Rsa").write_text("-----BEGIN KEY-----\n")
    settings = Settings()
    rules = IgnoreRules(tmp_path, settings)
    assert rules.is_secret(".ENV") and rules.is_ignored_path("keys/Id_Rsa")
    assert [f.rel for f in scan(tmp_path, settings, rules)] == ["main.py"]


def _prompt(srv: RawServer) -> str | None:
    prompt: str | None = srv.request("lspLlm/debugLastPrompt", {})["result"]["prompt"]
    return prompt


@pytest.mark.parametrize(
    ("open_as", "complete_as"),
    [(".ENV", ".ENV"), ("Id_Rsa", "Id_Rsa"), ("%2Eenv", "%2Eenv"), ("%2Eenv", ".env")],
    ids=["ENV", "Id_Rsa", "percent-encoded", "percent-encoded-then-decoded"],
)
def test_a_secret_document_never_reaches_the_prompt(
    srv: RawServer, open_as: str, complete_as: str
) -> None:
    """pygls files documents under the percent-decoded URI, so the last case completes at
    ``.env`` in a document that was opened, and is named, ``%2Eenv``."""
    marker = f"CASE_SECRET_{open_as.replace('%', '')}_9d41"
    text = f"API_KEY = '{marker}'\n\ndef load():\n    return "
    base = srv.root.as_uri()
    srv.did_open(f"{base}/{open_as}", text, language="python")
    try:
        reply = srv.request(INLINE, srv.inline_params(f"{base}/{complete_as}", 3, 11), timeout=60)
        assert "result" in reply, reply
        assert reply["result"] in (None, []) or reply["result"].get("items") == [], reply
        prompt = _prompt(srv)
        assert prompt is None or marker not in prompt
        # Nor does its unsaved text reach another file's prompt as context.
        main = (srv.root / "main.py").as_uri()
        main_text = (srv.root / "main.py").read_text() + "\nkey = load()\n"
        srv.did_open(main, main_text)
        reply = srv.request(INLINE, srv.inline_params(main, main_text.count("\n"), 0), timeout=60)
        assert "result" in reply, reply
        prompt = _prompt(srv)
        assert prompt and marker not in prompt
        srv.did_close(main)
    finally:
        srv.did_close(f"{base}/{open_as}")
