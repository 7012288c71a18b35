"""The language registry: every name and extension resolves, normalisation goes one way."""

from __future__ import annotations

import pytest

from lsp_llm.context.parse import language_for, parse_file
from lsp_llm.docstrings import find_target
from lsp_llm.languages import (
    GRAMMARS,
    LANGUAGES,
    PLAINTEXT,
    LanguageSpec,
    comment_prefix,
    docstring_language,
    grammar_for,
    language_from_path,
    language_id,
    resolve,
    spec_for_path,
)

SPEC_IDS = [s.id for s in LANGUAGES]


def test_ids_are_unique_and_lower_case() -> None:
    assert len(SPEC_IDS) == len(set(SPEC_IDS))
    for spec in LANGUAGES:
        names = (spec.id, *spec.aliases, *spec.extensions, *spec.filenames)
        assert all(n == n.strip().lower() and n for n in names), spec.id


@pytest.mark.parametrize("spec", LANGUAGES, ids=SPEC_IDS)
def test_every_id_and_alias_resolves_to_its_row(spec: LanguageSpec) -> None:
    for name in (spec.id, *spec.aliases):
        assert resolve(name) is spec
        assert resolve(f"  {name.upper()} ") is spec
        assert language_id(name) == spec.id


@pytest.mark.parametrize("spec", LANGUAGES, ids=SPEC_IDS)
def test_every_extension_and_file_name_resolves(spec: LanguageSpec) -> None:
    for ext in spec.extensions:
        assert spec_for_path(f"src/a.{ext}") is spec
        assert spec_for_path(f"C:\\src\\A.{ext.upper()}") is spec
        assert language_from_path(f"x/y.{ext}") == spec.id
        assert resolve(ext) is not None  # an alias of the same name may win (``sh``)
        assert resolve("." + ext) is spec
    for name in spec.filenames:
        assert spec_for_path(f"dir/{name}") is spec
        assert language_from_path(name.upper()) == spec.id


@pytest.mark.parametrize("spec", LANGUAGES, ids=SPEC_IDS)
def test_normalisation_round_trips(spec: LanguageSpec) -> None:
    for name in (spec.id, *spec.aliases, *spec.extensions):
        once = language_id(name)
        assert language_id(once) == once
        assert resolve(once) is resolve(name) or resolve(name) is None
    if spec.grammar is not None:
        # A grammar name is never a key of its own: it resolves to a row with that grammar.
        back = resolve(spec.grammar.name)
        assert back is not None and back.grammar == spec.grammar
        assert grammar_for(spec.id) == spec.grammar
    doc = docstring_language(spec.id)
    assert (doc is not None) == bool(spec.docstring_styles)
    if doc is not None:
        assert docstring_language(doc) == doc
        row = resolve(doc)
        assert row is not None and row.grammar == spec.grammar


def test_tsx_maps_one_way() -> None:
    # The two old normalisers disagreed: tsx -> typescriptreact and typescriptreact -> tsx.
    assert language_id("tsx") == "typescriptreact"
    assert language_id("typescriptreact") == "typescriptreact"
    assert docstring_language("typescriptreact") == "tsx"
    assert docstring_language("tsx") == "tsx"
    assert language_for("View.tsx") == "tsx"
    assert language_from_path("View.tsx") == "typescriptreact"
    assert docstring_language("javascriptreact") == "javascript"
    assert language_for("App.jsx") == "javascript"


def test_unknown_names() -> None:
    assert resolve("unknown-language") is None
    assert language_id(" Kotlinish ") == "kotlinish"
    assert comment_prefix("unknown-language") == "#"
    assert language_from_path("no_extension") == PLAINTEXT
    assert language_from_path(".gitignore") == PLAINTEXT
    assert spec_for_path("archive.") is None
    assert docstring_language("kotlin") is None
    assert docstring_language("c") is None  # a grammar, but no docstring support
    assert find_target("fun f() {}\n", 0, "kotlin") is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sh", "shellscript"),
        ("c++", "cpp"),
        ("c#", "csharp"),
        ("golang", "go"),
        ("h", "c"),
        ("mjs", "javascript"),
        (".cts", "typescript"),
        ("yml", "yaml"),
        ("text", "plaintext"),
    ],
)
def test_aliases_and_extensions(name: str, expected: str) -> None:
    assert language_id(name) == expected


def test_index_languages_are_grammar_names() -> None:
    names = {g.name for g in GRAMMARS}
    assert names == {"python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp"}
    for spec in LANGUAGES:
        for ext in spec.extensions:
            expected = spec.grammar.name if spec.grammar is not None else None
            assert language_for(f"a.{ext}") == expected
    assert parse_file("web/App.jsx", "function f() {}\n").language == "javascript"
    assert parse_file("lib/x.ipp", "int f();\n").language == "cpp"
    assert parse_file("Makefile", "all:\n").language == "text"


def test_comment_markers() -> None:
    by_marker = {s.line_comment for s in LANGUAGES}
    assert by_marker == {"#", "//", "--", ";", "%", '"', "REM"}
    assert comment_prefix("typescriptreact") == "//"
    assert comment_prefix("json") == "#"  # JSON has no comments; the lexer still skips //
    json = resolve("json")
    assert json is not None and json.lexer.line_comments == ("//",)
