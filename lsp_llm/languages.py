"""The one language registry: every per-language fact the server uses, in one table.

Each :class:`LanguageSpec` is keyed by its **LSP language id** (``typescriptreact``,
``shellscript``, ``cpp``): the id editors send in ``textDocument/didOpen``. Everything else about
a language (aliases, file extensions, tree-sitter grammar, comment markers, the lexer rules of
post-processing, docstring styles, completion-shape rules) is a column of that row.

Normalisation goes one way only: any spelling a caller has (an LSP id, an alias such as ``sh`` or
``c++``, a file extension such as ``mjs`` or ``.tsx``) resolves *to* an LSP id with
:func:`resolve` / :func:`language_id`. Tree-sitter grammar names (``tsx``, ``javascript`` for
JSX files) are a property of a row (``spec.grammar.name``), never a key: the index and the
docstring code use them as their internal language names, and they resolve back to a row whose
grammar has that name, so ``resolve(spec.grammar.name).grammar == spec.grammar``.

Pure data and lookups: nothing here imports tree-sitter (see :mod:`lsp_llm.treesitter`).
"""

from __future__ import annotations

import dataclasses
import posixpath

# -- columns ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Grammar:
    """A tree-sitter grammar wheel: ``importlib.import_module(module).<function>()``."""

    name: str
    """The grammar's name here (``python``, ``tsx``...): the index's language name."""
    module: str
    function: str = "language"

    @property
    def distribution(self) -> str:
        """The pip package that provides the module (``tree-sitter-typescript``)."""
        return self.module.replace("_", "-")


@dataclasses.dataclass(frozen=True, slots=True)
class LexerSyntax:
    """Which characters start strings and comments, for post-processing's small lexer."""

    line_comments: tuple[str, ...] = ("#",)
    block_comment: tuple[str, str] | None = None
    quotes: str = '"'
    multiline_quotes: str = ""
    triple_quotes: bool = False
    char_literals: bool = False
    """``'`` starts a string only as a one-character literal ('a', '\\n'); else it is ignored."""
    hash_needs_space: bool = False
    """``#`` starts a comment only at a word start (shell ``$#``)."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ShapeRules:
    """How one language opens blocks, and which tree-sitter nodes are blocks and strings.

    Used by :mod:`lsp_llm.prompts.shape`; the grammar that parses for it is the row's
    :attr:`LanguageSpec.grammar` (a row without one uses the text rules alone).
    """

    openers: tuple[str, ...] = ("{", "(", "[")
    """Line endings after which a multi-line completion is expected (when the block is empty)."""
    block_nodes: frozenset[str] = frozenset()
    """Node types whose body is the code between their brackets."""
    literal_nodes: frozenset[str] = frozenset()
    """Strings and comments: a cursor inside one gets a single line."""


DEFAULT_LEXER = LexerSyntax(hash_needs_space=True)
"""The lexer rules of a language with no row, or a row that sets none."""
DEFAULT_SHAPE = ShapeRules()
"""The shape rules of a language with no row, or a row that sets none (text rules only)."""
DEFAULT_COMMENT = "#"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class LanguageSpec:
    """Everything the server knows about one language."""

    id: str
    """The LSP language id."""
    aliases: tuple[str, ...] = ()
    """Other names callers use (lower case): ``sh``, ``c++``, ``golang``..."""
    extensions: tuple[str, ...] = ()
    """File extensions without the dot, lower case."""
    filenames: tuple[str, ...] = ()
    """Whole file names (lower case) for files without a telling extension: ``makefile``."""
    grammar: Grammar | None = None
    line_comment: str = DEFAULT_COMMENT
    """The marker that comments out one line in prompts (snippets of other files)."""
    lexer: LexerSyntax = DEFAULT_LEXER
    prose: bool = False
    """Text, not code: no bracket balancing in post-processing."""
    offside: bool = False
    """Blocks are made by indentation (Python): post-processing tracks the block's indent."""
    shape: ShapeRules = DEFAULT_SHAPE
    docstring_styles: tuple[str, ...] = ()
    """Docstring formats :mod:`lsp_llm.docstrings` writes, the default first; () = none."""
    display_name: str = ""
    """The name prompts use (``TypeScript``); "" = the id as the caller spelled it."""
    fence: str = ""
    """The Markdown code-fence tag prompts use, when it is not the language name."""


# -- shared values ------------------------------------------------------------------------------

_PY = Grammar("python", "tree_sitter_python")
_JS = Grammar("javascript", "tree_sitter_javascript")
_TS = Grammar("typescript", "tree_sitter_typescript", "language_typescript")
_TSX = Grammar("tsx", "tree_sitter_typescript", "language_tsx")

_C_LEXER = LexerSyntax(line_comments=("//",), block_comment=("/*", "*/"), char_literals=True)
_JS_LEXER = LexerSyntax(
    line_comments=("//",), block_comment=("/*", "*/"), quotes="'\"`", multiline_quotes="`"
)
_SLASH_LEXER = LexerSyntax(line_comments=("//",), block_comment=("/*", "*/"), quotes="'\"")
_HASH_LEXER = LexerSyntax(quotes="'\"", hash_needs_space=True)
_SHELL_LEXER = dataclasses.replace(_HASH_LEXER, quotes="'\"`")
_DASH_LEXER = LexerSyntax(line_comments=("--",), quotes="'\"")

_COMMENT_NODES = frozenset({"comment", "line_comment", "block_comment"})
_JS_BLOCKS = frozenset({"statement_block", "class_body", "switch_body", "object"})
_JS_LITERALS = frozenset({"string", "template_string", "comment", "regex"})
_C_BLOCKS = frozenset(
    {"compound_statement", "field_declaration_list", "declaration_list", "enumerator_list"}
)
_C_LITERALS = frozenset(
    {"string_literal", "raw_string_literal", "char_literal", "system_lib_string", "comment"}
)
_JS_SHAPE = ShapeRules(
    openers=("{", "(", "[", "=>"), block_nodes=_JS_BLOCKS, literal_nodes=_JS_LITERALS
)
_TS_SHAPE = dataclasses.replace(
    _JS_SHAPE, block_nodes=_JS_BLOCKS | {"interface_body", "enum_body", "object_type"}
)
_C_SHAPE = ShapeRules(block_nodes=_C_BLOCKS, literal_nodes=_C_LITERALS)
_JSDOC = ("jsdoc",)


# -- the table ----------------------------------------------------------------------------------

LANGUAGES: tuple[LanguageSpec, ...] = (
    LanguageSpec(
        id="python",
        aliases=("py", "python3"),
        extensions=("py", "pyi", "pyw"),
        grammar=_PY,
        lexer=LexerSyntax(quotes="'\"", triple_quotes=True),
        offside=True,
        shape=ShapeRules(
            openers=(":", "(", "[", "{"),
            block_nodes=frozenset({"block"}),
            literal_nodes=frozenset({"string", "comment"}),
        ),
        docstring_styles=("google", "numpy", "rest"),
        display_name="Python",
    ),
    LanguageSpec(
        id="javascript",
        aliases=("js",),
        extensions=("js", "mjs", "cjs"),
        grammar=_JS,
        line_comment="//",
        lexer=_JS_LEXER,
        shape=_JS_SHAPE,
        docstring_styles=_JSDOC,
        display_name="JavaScript",
        fence="js",
    ),
    LanguageSpec(
        id="javascriptreact",
        aliases=("jsx",),
        extensions=("jsx",),
        grammar=_JS,
        line_comment="//",
        lexer=_JS_LEXER,
        shape=_JS_SHAPE,
        docstring_styles=_JSDOC,
        display_name="JavaScript",
        fence="js",
    ),
    LanguageSpec(
        id="typescript",
        aliases=("ts",),
        extensions=("ts", "mts", "cts"),
        grammar=_TS,
        line_comment="//",
        lexer=_JS_LEXER,
        shape=_TS_SHAPE,
        docstring_styles=_JSDOC,
        display_name="TypeScript",
        fence="ts",
    ),
    LanguageSpec(
        id="typescriptreact",
        aliases=("tsx",),
        extensions=("tsx",),
        grammar=_TSX,
        line_comment="//",
        lexer=_JS_LEXER,
        shape=_TS_SHAPE,
        docstring_styles=_JSDOC,
        display_name="TypeScript",
        fence="tsx",
    ),
    LanguageSpec(
        id="go",
        aliases=("golang",),
        extensions=("go",),
        grammar=Grammar("go", "tree_sitter_go"),
        line_comment="//",
        lexer=dataclasses.replace(_C_LEXER, quotes='"`', multiline_quotes="`"),
        shape=ShapeRules(
            block_nodes=frozenset({"block", "field_declaration_list", "literal_value"}),
            literal_nodes=frozenset(
                {"interpreted_string_literal", "raw_string_literal", "comment"}
            ),
        ),
        docstring_styles=("godoc",),
        display_name="Go",
    ),
    LanguageSpec(
        id="rust",
        aliases=("rs",),
        extensions=("rs",),
        grammar=Grammar("rust", "tree_sitter_rust"),
        line_comment="//",
        lexer=_C_LEXER,
        shape=ShapeRules(
            openers=("{", "(", "[", "=>"),
            block_nodes=frozenset(
                {"block", "declaration_list", "field_declaration_list", "match_block"}
            ),
            literal_nodes=frozenset({"string_literal", "raw_string_literal", "char_literal"})
            | _COMMENT_NODES,
        ),
        docstring_styles=("rustdoc",),
        display_name="Rust",
    ),
    LanguageSpec(
        id="java",
        extensions=("java",),
        grammar=Grammar("java", "tree_sitter_java"),
        line_comment="//",
        lexer=_C_LEXER,
        shape=ShapeRules(
            openers=("{", "(", "[", "->"),
            block_nodes=frozenset(
                {"block", "class_body", "constructor_body", "interface_body", "switch_block"}
            ),
            literal_nodes=frozenset({"string_literal", "text_block", "character_literal"})
            | _COMMENT_NODES,
        ),
        docstring_styles=("javadoc",),
        display_name="Java",
    ),
    LanguageSpec(
        id="c",
        extensions=("c", "h"),
        grammar=Grammar("c", "tree_sitter_c"),
        line_comment="//",
        lexer=_C_LEXER,
        shape=_C_SHAPE,
        display_name="C",
    ),
    LanguageSpec(
        id="cpp",
        aliases=("c++",),
        extensions=("cc", "cpp", "cxx", "c++", "hpp", "hh", "hxx", "h++", "ipp", "inl"),
        grammar=Grammar("cpp", "tree_sitter_cpp"),
        line_comment="//",
        lexer=_C_LEXER,
        shape=_C_SHAPE,
        display_name="C++",
    ),
    LanguageSpec(
        id="csharp",
        aliases=("cs", "c#"),
        extensions=("cs",),
        line_comment="//",
        lexer=_C_LEXER,
        display_name="C#",
    ),
    LanguageSpec(
        id="kotlin", aliases=("kt",), extensions=("kt", "kts"), line_comment="//", lexer=_C_LEXER
    ),
    LanguageSpec(id="scala", extensions=("scala",), line_comment="//", lexer=_C_LEXER),
    LanguageSpec(id="swift", extensions=("swift",), line_comment="//", lexer=_C_LEXER),
    LanguageSpec(id="zig", extensions=("zig",), line_comment="//", lexer=_C_LEXER),
    LanguageSpec(id="objective-c", line_comment="//", lexer=_C_LEXER),
    LanguageSpec(id="objective-cpp", line_comment="//", lexer=_C_LEXER),
    LanguageSpec(id="groovy", line_comment="//", lexer=_C_LEXER),
    LanguageSpec(id="proto", extensions=("proto",), line_comment="//", lexer=_C_LEXER),
    LanguageSpec(id="solidity", extensions=("sol",), line_comment="//", lexer=_C_LEXER),
    LanguageSpec(id="jsonc", extensions=("jsonc",), line_comment="//", lexer=_C_LEXER),
    LanguageSpec(id="json", extensions=("json",), lexer=_C_LEXER),
    LanguageSpec(id="dart", extensions=("dart",), line_comment="//", lexer=_SLASH_LEXER),
    LanguageSpec(id="php", extensions=("php",), line_comment="//", lexer=_SLASH_LEXER),
    LanguageSpec(id="vue", extensions=("vue",), line_comment="//", lexer=_JS_LEXER),
    LanguageSpec(id="svelte", extensions=("svelte",), line_comment="//", lexer=_JS_LEXER),
    LanguageSpec(
        id="shellscript",
        aliases=("sh", "bash", "zsh", "shell"),
        extensions=("sh", "bash", "zsh"),
        filenames=(".bashrc", ".zshrc", ".profile"),
        lexer=_SHELL_LEXER,
    ),
    LanguageSpec(id="ruby", aliases=("rb",), extensions=("rb",), lexer=_SHELL_LEXER),
    LanguageSpec(id="perl", extensions=("pl",), lexer=_SHELL_LEXER),
    LanguageSpec(id="yaml", aliases=("yml",), extensions=("yaml", "yml"), lexer=_HASH_LEXER),
    LanguageSpec(id="toml", extensions=("toml",), lexer=_HASH_LEXER),
    LanguageSpec(id="r", extensions=("r",), lexer=_HASH_LEXER),
    LanguageSpec(id="makefile", filenames=("makefile", "gnumakefile"), lexer=_HASH_LEXER),
    LanguageSpec(id="dockerfile", filenames=("dockerfile",), lexer=_HASH_LEXER),
    LanguageSpec(id="elixir", extensions=("ex", "exs"), lexer=_HASH_LEXER),
    LanguageSpec(id="lua", extensions=("lua",), line_comment="--", lexer=_DASH_LEXER),
    LanguageSpec(id="sql", extensions=("sql",), line_comment="--", lexer=_DASH_LEXER),
    LanguageSpec(
        id="haskell",
        extensions=("hs",),
        line_comment="--",
        lexer=LexerSyntax(line_comments=("--",), quotes='"', char_literals=True),
    ),
    LanguageSpec(id="elm", line_comment="--"),
    LanguageSpec(id="ada", line_comment="--"),
    LanguageSpec(id="purescript", line_comment="--"),
    LanguageSpec(id="clojure", extensions=("clj",), line_comment=";"),
    LanguageSpec(id="lisp", extensions=("el",), line_comment=";"),
    LanguageSpec(id="scheme", line_comment=";"),
    LanguageSpec(id="erlang", extensions=("erl",), line_comment="%"),
    LanguageSpec(id="latex", extensions=("tex",), line_comment="%", prose=True),
    LanguageSpec(id="tex", line_comment="%", prose=True),
    LanguageSpec(id="matlab", line_comment="%"),
    LanguageSpec(id="vim", extensions=("vim",), line_comment='"'),
    LanguageSpec(id="bat", line_comment="REM"),
    LanguageSpec(id="markdown", aliases=("md",), extensions=("md", "markdown"), prose=True),
    LanguageSpec(id="restructuredtext", extensions=("rst",), prose=True),
    LanguageSpec(id="plaintext", aliases=("text", "txt"), extensions=("txt",), prose=True),
    LanguageSpec(id="git-commit", prose=True),
    LanguageSpec(id="html", extensions=("html", "htm")),
    LanguageSpec(id="css", extensions=("css",)),
    LanguageSpec(id="scss", extensions=("scss",)),
    LanguageSpec(id="xml", extensions=("xml",)),
)
"""Every language the server knows by name. Unknown ids get the ``DEFAULT_*`` values."""

PLAINTEXT = "plaintext"
"""The LSP id of a file whose language is unknown."""


def _index() -> tuple[dict[str, LanguageSpec], dict[str, LanguageSpec], dict[str, LanguageSpec]]:
    names: dict[str, LanguageSpec] = {}
    extensions: dict[str, LanguageSpec] = {}
    filenames: dict[str, LanguageSpec] = {}
    for spec in LANGUAGES:
        for key, table in (
            *((name, names) for name in (spec.id, *spec.aliases)),
            *((ext, extensions) for ext in spec.extensions),
            *((fn, filenames) for fn in spec.filenames),
        ):
            if key in table:
                raise ValueError(f"{key!r} is claimed by {table[key].id} and {spec.id}")
            table[key] = spec
    return names, extensions, filenames


_BY_NAME, _BY_EXTENSION, _BY_FILENAME = _index()

GRAMMARS: tuple[Grammar, ...] = tuple(
    dict.fromkeys(spec.grammar for spec in LANGUAGES if spec.grammar is not None)
)
"""Every tree-sitter grammar the registry uses, once each (javascript serves JSX too)."""


# -- lookups ------------------------------------------------------------------------------------


def resolve(language: str) -> LanguageSpec | None:
    """The row for an LSP language id, an alias or a file extension (any case, ``.`` optional).

    Ids and aliases win over extensions (``sh`` is the shell alias; ``h`` is C by extension).
    Grammar names resolve to a row with that grammar (``tsx`` -> ``typescriptreact``).
    """
    key = language.strip().lower()
    spec = _BY_NAME.get(key)
    if spec is None:
        spec = _BY_EXTENSION.get(key.lstrip("."))
    return spec


def language_id(language: str) -> str:
    """The LSP language id for any spelling; an unknown name comes back stripped, lower case."""
    spec = resolve(language)
    return spec.id if spec is not None else language.strip().lower()


def spec_for_path(path: str) -> LanguageSpec | None:
    """The row for a file path (``/`` or ``\\`` separated), by whole name, then by extension."""
    name = posixpath.basename(path.replace("\\", "/")).lower()
    spec = _BY_FILENAME.get(name)
    if spec is None and "." in name.lstrip("."):
        spec = _BY_EXTENSION.get(name.rsplit(".", 1)[-1])
    return spec


def language_from_path(path: str) -> str:
    """The LSP language id for a file path (``plaintext`` when unknown)."""
    spec = spec_for_path(path)
    return spec.id if spec is not None else PLAINTEXT


def grammar_for(language: str) -> Grammar | None:
    """The tree-sitter grammar for an LSP id, alias, extension or grammar name, if any."""
    spec = resolve(language)
    return spec.grammar if spec is not None else None


def comment_prefix(language: str) -> str:
    """The line-comment marker for a language id (``#`` when unknown)."""
    spec = resolve(language)
    return spec.line_comment if spec is not None else DEFAULT_COMMENT


def docstring_language(language: str) -> str | None:
    """The docstring code's name for a language (its grammar name: ``tsx``), or None.

    None when :mod:`lsp_llm.docstrings` cannot write docstrings for it.
    """
    spec = resolve(language)
    if spec is None or not spec.docstring_styles or spec.grammar is None:
        return None
    return spec.grammar.name
