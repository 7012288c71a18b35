"""What the user is working on reaches the prompt: open buffers and recent edits, through the
server's own ``Workspaces`` hooks and retriever and the prompt path (``completion_prompt``)."""

from __future__ import annotations

from pathlib import Path

from lsp_llm.config import Settings
from lsp_llm.context.index import WorkspaceIndex
from lsp_llm.context.types import ContextSnippet
from lsp_llm.engine.backends.approx_tokenizer import ApproxTokenizer
from lsp_llm.features.completion import DocumentSnapshot, completion_prompt
from lsp_llm.server.indexing import Workspaces, _Root

from .conftest import GEOMETRY, SECRET_VALUE, write

HELPERS = """\
import re

HEADER_RE = re.compile(r"^(\\w+): (.*)$")


def parse_header(stream, strict=False):
    line = stream.readline()
    match = HEADER_RE.match(line)
    if match is None and strict:
        raise ValueError(line)
    return match


def unrelated_thing(x):
    return x * 2
"""

READER = """\
from helpers import parse_header


def read_message(stream):
    headers = []
    while True:
        header = """


def _workspaces(tmp_path: Path, settings: Settings | None = None) -> tuple[Workspaces, Path]:
    """A real ``Workspaces`` with a built index of a small repository."""
    settings = settings or Settings()
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    write(root, "pkg/__init__.py", "")
    write(root, "pkg/geometry.py", GEOMETRY)
    write(root, ".gitignore", "generated/\n")
    index = WorkspaceIndex(root, settings, tmp_path / "cache")
    index.build()
    workspaces = Workspaces(settings, tmp_path / "cache")
    workspaces.roots[index.root] = _Root(index=index, state="ready")
    return workspaces, root


def _prompt_snippets(
    workspaces: Workspaces, file: Path, label: str, text: str
) -> list[ContextSnippet]:
    snap = DocumentSnapshot(uri=file.as_uri(), path=label, language="python", version=1, text=text)
    prompt = completion_prompt(
        snap,
        len(text),
        settings=workspaces.settings,
        tokenizer=ApproxTokenizer(),
        template=None,
        retriever=workspaces.retriever_for(),
    )
    return list(prompt.snippets)


def _holds(snippets: list[ContextSnippet], needle: str) -> list[ContextSnippet]:
    return [s for s in snippets if needle in s.text]


def test_a_definition_only_in_an_open_buffer_outside_the_workspace_reaches_the_prompt(
    tmp_path: Path,
) -> None:
    workspaces, root = _workspaces(tmp_path)
    helpers = write(tmp_path, "elsewhere/helpers.py", HELPERS)
    reader = write(root, "app/reader.py", READER)
    text = reader.read_text()
    # Not open yet: nothing knows parse_header (it is outside the workspace).
    assert not _holds(_prompt_snippets(workspaces, reader, "app/reader.py", text), "def parse_h")

    workspaces.observe_open(helpers.as_uri(), HELPERS, "python")
    workspaces.stable.forget(reader.as_uri())  # a new region's worth of context
    snippets = _prompt_snippets(workspaces, reader, "app/reader.py", text)
    found = _holds(snippets, "def parse_header(stream, strict=False):")
    assert found and found[0].path == str(helpers)
    assert found[0].source == "definition" and found[0].symbol == "parse_header"
    assert "raise ValueError(line)" in found[0].text  # the body, not just the line
    assert "unrelated_thing" not in found[0].text
    # Typing on in the same region keeps the same snippets, in the same order.
    for typed in ("p", "pa", "parse"):
        workspaces.observe_change(reader.as_uri(), text, text + typed)
        again = _prompt_snippets(workspaces, reader, "app/reader.py", text + typed)
        assert [(s.path, s.text) for s in again] == [(s.path, s.text) for s in snippets]
        text += typed

    # Closed: no longer offered (the stable context notices the buffer went away).
    workspaces.observe_close(helpers.as_uri())
    assert not _holds(_prompt_snippets(workspaces, reader, "app/reader.py", text), "def parse_h")


def test_a_recent_edit_reaches_the_prompt_without_an_index(tmp_path: Path) -> None:
    workspaces = Workspaces(Settings(), tmp_path / "cache")  # no root: no index at all
    other = write(tmp_path, "scratch/other.py", "import os\n\n\nvalue = 1\n" + "\n" * 30)
    current = write(tmp_path, "scratch/current.py", "def main():\n    return ")
    before = other.read_text()
    workspaces.observe_open(other.as_uri(), before, "python")
    after = before.replace("value = 1\n", "value = 1\n\n\ndef fresh_helper(n):\n    return n\n")
    workspaces.observe_change(other.as_uri(), before, after)
    snippets = _prompt_snippets(workspaces, current, "current.py", current.read_text())
    recent = [s for s in snippets if s.source == "recent"]
    assert recent and "def fresh_helper(n):" in recent[0].text
    assert recent[0].path == str(other)
    assert recent[0].start_line == after.split("\n").index("def fresh_helper(n):") - 2
    # The current file's own edits are never offered back to it.
    workspaces.observe_change(current.as_uri(), "x", "def main():\n    return zz_own_edit")
    snippets = _prompt_snippets(workspaces, current, "current.py", current.read_text())
    assert not _holds(snippets, "zz_own_edit")


def test_working_set_snippets_are_deduplicated(tmp_path: Path) -> None:
    workspaces, root = _workspaces(tmp_path)
    # An open buffer inside the workspace: the index (its overlay) serves its definitions, so
    # the open buffer does not offer them a second time.
    geometry = root / "pkg/geometry.py"
    workspaces.observe_open(geometry.as_uri(), geometry.read_text(), "python")
    main = write(root, "app/main.py", "from pkg.geometry import compute_area\n\nx = compute_area(")
    snippets = _prompt_snippets(workspaces, main, "app/main.py", main.read_text())
    assert len(_holds(snippets, "def compute_area(")) == 1
    # A buffer whose text the current file's window already shows is not offered.
    copy = write(tmp_path, "elsewhere/copy.py", "def shared_name(a, b):\n    return a + b\n")
    workspaces.observe_open(copy.as_uri(), copy.read_text(), "python")
    text = copy.read_text() + "\n\ndef use():\n    return shared_name("
    scratch = write(tmp_path, "elsewhere/scratch.py", text)
    snippets = _prompt_snippets(workspaces, scratch, "scratch.py", text)
    assert not [s for s in snippets if s.path == str(copy)]


def test_secrets_and_ignored_files_are_never_offered_from_open_buffers(tmp_path: Path) -> None:
    workspaces, root = _workspaces(tmp_path)
    body = (
        f"SECRET_TOKEN = '{SECRET_VALUE}'\n\n"
        f"def parse_header(stream):\n    return '{SECRET_VALUE}'\n"
    )
    secret = write(tmp_path, "elsewhere/.env", body)
    ignored = write(root, "generated/helpers.py", body)
    upper = write(tmp_path, "elsewhere/SECRETS.JSON", body)
    for file in (secret, ignored, upper):
        workspaces.observe_open(file.as_uri(), body, "python")
        workspaces.observe_change(file.as_uri(), body, body + "\nparse_header(stream)\n")
    assert len(workspaces.working.buffers) == 0 and len(workspaces.working.edits) == 0
    reader = write(root, "app/reader.py", READER)
    text = reader.read_text() + "parse_header(stream) or SECRET_TOKEN"
    snippets = _prompt_snippets(workspaces, reader, "app/reader.py", text)
    assert not _holds(snippets, SECRET_VALUE)
    # Completing inside a secret file gets no other files either.
    legit = write(tmp_path, "elsewhere/legit.py", HELPERS)
    workspaces.observe_open(legit.as_uri(), HELPERS, "python")
    assert (
        workspaces.retriever_for()(
            DocumentSnapshot(uri=secret.as_uri(), path=".env", language="", version=1, text=body),
            len(body),
            500,
        )
        == []
    )
