"""Stable context: one region keeps its snippets from keystroke to keystroke."""

from __future__ import annotations

from pathlib import Path

from lsp_llm.config import Settings
from lsp_llm.context.index import WorkspaceIndex
from lsp_llm.context.stable import Region, StableContexts, region_of, stable_context
from lsp_llm.context.types import ContextSnippet
from lsp_llm.features.completion import DocumentSnapshot
from lsp_llm.server.indexing import Workspaces, _Root

from .conftest import write

PY = """\
import os


class Store:
    def load(self, key):
        value = os.environ.get(key)
        return value

    def save(self, key, value):
        pass


def main():
    store = Store()
"""


def test_region_is_the_enclosing_scope() -> None:
    load = PY.index("return value")
    save = PY.index("pass")
    end = len(PY)
    assert region_of(PY, load, "a.py") == Region("a.py", "def load(self, key):")
    assert region_of(PY, save, "a.py") == Region("a.py", "def save(self, key, value):")
    assert region_of(PY, end, "a.py") == Region("a.py", "def main():")
    assert region_of(PY, 0, "a.py") == Region("a.py", "")


def test_region_holds_while_typing_a_line() -> None:
    base = PY + "    total = "
    regions = {region_of(base + "store.lo"[:n], len(base) + n, "a.py") for n in range(9)}
    assert regions == {Region("a.py", "def main():")}
    # A new top-level line being typed belongs to the region above it until it is finished.
    typed = PY + "\n\ndef hel"
    assert region_of(typed, len(typed), "a.py") == Region("a.py", "def main():")
    assert region_of(typed + "per():\n    ", len(typed) + 11, "a.py").header == "def helper():"


def test_region_in_braced_languages() -> None:
    ts = "export class Client {\n  send(x: number) {\n    return x;\n  }\n}\n\nfunction go() {\n  "
    assert region_of(ts, ts.index("return"), "a.ts").header == "export class Client {"
    assert region_of(ts, len(ts), "a.ts").header == "function go() {"


def snippet(path: str, text: str) -> ContextSnippet:
    return ContextSnippet(path=path, text=text, score=1.0, source="definition")


def test_stable_context_reuses_until_region_source_ttl_or_budget_changes() -> None:
    calls: list[int] = []
    digests = {"lib.py": b"1"}

    def compute() -> list[ContextSnippet]:
        calls.append(1)
        return [snippet("lib.py", f"def f{len(calls)}(): ...")]

    region = Region("a.py", "def main():")
    first = stable_context(None, region, 0.0, digests.get, compute, ttl_s=10, budget=100)
    assert not first.reused and len(calls) == 1
    again = stable_context(first, region, 5.0, digests.get, compute, ttl_s=10, budget=100)
    assert again.reused and again.snippets == first.snippets and len(calls) == 1
    other = Region("a.py", "def other():")
    moved = stable_context(again, other, 5.0, digests.get, compute, ttl_s=10, budget=100)
    assert not moved.reused and len(calls) == 2
    digests["lib.py"] = b"2"  # the snippet's file changed
    changed = stable_context(moved, moved.region, 6.0, digests.get, compute, 10, 100)
    assert not changed.reused and len(calls) == 3
    expired = stable_context(changed, changed.region, 16.5, digests.get, compute, 10, 100)
    assert not expired.reused and len(calls) == 4
    rebudgeted = stable_context(expired, expired.region, 17.0, digests.get, compute, 10, 50)
    assert not rebudgeted.reused and len(calls) == 5


def test_stable_contexts_is_bounded() -> None:
    contexts = StableContexts(capacity=3)
    for i in range(10):
        contexts.get(
            f"file:///{i}.py",
            Region(f"{i}.py", ""),
            now=0.0,
            budget=10,
            digest_of=lambda p: None,
            compute=list,
        )
    assert len(contexts) == 3
    contexts.forget("file:///9.py")
    assert len(contexts) == 2


UNITS = '''
def convert_units(value: float, unit: str) -> float:
    """Convert a measure to metres."""
    return value * {"cm": 0.01, "m": 1.0}[unit]
'''

GEOMETRY = '''
def compute_area(width: float, height: float) -> float:
    """Area of a width x height rectangle."""
    return width * height
'''

MAIN = """\
from pkg.geometry import compute_area
from pkg.units import convert_units


def report(width, height):
    total = compute_area(width, height)
    scaled ="""


def test_server_retrieval_keeps_the_context_head_while_typing(tmp_path: Path) -> None:
    """Through ``Workspaces.retriever_for`` (the server's retriever): the snippets stay the same
    while a line is typed in one function, although plain retrieval's choice changes as the
    typed name appears; a change to a snippet's file or leaving the region recomputes them."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    write(root, "pkg/__init__.py", "")
    write(root, "pkg/geometry.py", GEOMETRY)
    write(root, "pkg/units.py", UNITS)
    main = write(root, "app/main.py", MAIN)
    settings = Settings()
    index = WorkspaceIndex(root, settings, tmp_path / "cache")
    index.build()
    workspaces = Workspaces(settings, tmp_path / "cache")
    workspaces.roots[index.root] = _Root(index=index, state="ready")
    retrieve = workspaces.retriever_for()

    def snap(text: str) -> DocumentSnapshot:
        return DocumentSnapshot(
            uri=main.as_uri(), path="app/main.py", language="python", version=1, text=text
        )

    budget = 80  # room for one definition
    heads = []
    for typed in ("", "conv", "convert_units("):
        text = MAIN + " " + typed
        heads.append([(s.path, s.text) for s in retrieve(snap(text), len(text), budget)])
    # Plain retrieval at the last keystroke prefers the name being typed.
    plain = index.retrieve(main, MAIN + " convert_units(", len(MAIN) + 15, budget=budget)
    assert heads[0] and heads[0] == heads[1] == heads[2]
    assert [(s.path, s.text) for s in plain] != heads[0]

    # The snippet's file changes (an unsaved edit in the editor): recomputed.
    source = heads[0][0][0]
    new_text = (root / source).read_text().replace('"""', '"""Changed: ', 1)
    assert index.set_open_document(root / source, new_text)
    text = MAIN + " convert_units(w"
    retrieve(snap(text), len(text), budget)
    state = workspaces.stable.peek(main.as_uri())
    assert state is not None and not state.reused
    # Leaving the region recomputes too: a new function.
    text = MAIN + "\n\ndef other():\n    x = "
    retrieve(snap(text), len(text), budget)
    state = workspaces.stable.peek(main.as_uri())
    assert state is not None and state.region.header == "def other():" and not state.reused
