"""Prompts for "explain this code" and "document this function", and parsing the answers.

Two prompt shapes for each task:

- ``*_messages``: chat messages, for models with a chat template (the backend applies it).
- ``*_plain_prompt``: a few-shot plain-text prompt for base models without a chat template
  (the embedded default, Gemma 3 270M base, is one). Each returns ``(prompt, stops)``: the
  prompt ends in the answer slot of a fixed format, and the stop sequences end the answer
  where the format's next header would begin, so a small model does not ramble on into
  another made-up example.

For docstrings the model is asked for prose only, in a line format that is trivial to parse::

    Summary: Compute the mean of a list of numbers.
    Param values: The numbers to average.
    Returns: The arithmetic mean.

:func:`parse_docstring_answer` turns any answer (well-formed or not) into a
:class:`~lsp_llm.docstrings.DocContent` whose parameters are exactly the real ones;
:func:`~lsp_llm.docstrings.render_docstring` then writes the docstring in the
requested style. Pure functions: no model, no LSP types.
"""

from __future__ import annotations

import dataclasses
import re

from lsp_llm.docstrings import (
    DocContent,
    DocTarget,
    fallback_param,
    fallback_returns,
    fallback_summary,
)
from lsp_llm.engine.requests import ChatMessage
from lsp_llm.languages import docstring_language, resolve

MAX_CODE_CHARS = 4000
"""Code longer than this is clipped in prompts (keeps the default 2048-token window safe)."""

EXPLAIN_STOPS: tuple[str, ...] = ("\n###", "### End", "\n\n\n", "<end_of_turn>")
"""Stops for :func:`explain_plain_prompt`: the next header of the few-shot format."""

DOCSTRING_STOPS: tuple[str, ...] = (
    "\n###",
    "### End",
    "\n\n",
    "\nSummary:",
    "\n```",
    "<end_of_turn>",
)
"""Stops for :func:`docstring_plain_prompt`: the answer format has no blank lines."""

EXPLAIN_MAX_SENTENCES = 5


def _name(language: str) -> str:
    """The docstring code's name for a language (``tsx``), else the id as given, lower case."""
    return docstring_language(language) or language.strip().lower()


def language_name(language: str) -> str:
    """A human name for an LSP language id (``typescriptreact`` -> ``TypeScript``)."""
    spec = resolve(language)
    if spec is not None and spec.display_name:
        return spec.display_name
    return language.strip() or "source"


def _fence_tag(language: str) -> str:
    spec = resolve(language)
    if spec is not None and spec.fence:
        return spec.fence
    return re.sub(r"[^\w+#-]", "", _name(language))


def clip_code(code: str, max_chars: int = MAX_CODE_CHARS) -> str:
    """``code`` without trailing whitespace; if too long, its head plus a ``...`` line."""
    code = code.rstrip()
    if len(code) <= max_chars:
        return code
    head = code[:max_chars]
    head = head[: head.rfind("\n")] if "\n" in head else head
    return head + "\n..."


# --------------------------------------------------------------------------------------------
# Few-shot examples


@dataclasses.dataclass(frozen=True)
class _Example:
    path: str
    code: str
    explanation: str
    summary: str
    params: tuple[tuple[str, str], ...]
    returns: str


_PY_EXAMPLE = _Example(
    path="stats.py",
    code=(
        "def mean(values, default=None):\n"
        "    if not values:\n"
        "        return default\n"
        "    return sum(values) / len(values)"
    ),
    explanation=(
        "`mean` computes the arithmetic mean of a sequence of numbers. For an empty "
        "sequence it returns `default` instead of dividing by zero; otherwise it divides "
        "the sum of the values by their count."
    ),
    summary="Compute the arithmetic mean of a sequence of numbers.",
    params=(
        ("values", "The numbers to average."),
        ("default", "The value returned when values is empty."),
    ),
    returns="The mean of values, or default if there are none.",
)

_EXAMPLES: dict[str, _Example] = {
    "python": _PY_EXAMPLE,
    "javascript": dataclasses.replace(
        _PY_EXAMPLE,
        path="stats.js",
        code=(
            "function mean(values, fallback = 0) {\n"
            "  if (values.length === 0) return fallback;\n"
            "  return values.reduce((a, b) => a + b, 0) / values.length;\n"
            "}"
        ),
        explanation=(
            "`mean` computes the arithmetic mean of an array of numbers. An empty array "
            "returns `fallback` instead of `NaN`; otherwise it sums the values with `reduce` "
            "and divides by the array's length."
        ),
        params=(
            ("values", "The numbers to average."),
            ("fallback", "The value returned when values is empty."),
        ),
        returns="The mean of values, or fallback if there are none.",
    ),
    "typescript": dataclasses.replace(
        _PY_EXAMPLE,
        path="stats.ts",
        code=(
            "export function mean(values: number[], fallback = 0): number {\n"
            "  if (values.length === 0) return fallback;\n"
            "  return values.reduce((a, b) => a + b, 0) / values.length;\n"
            "}"
        ),
        explanation=(
            "`mean` computes the arithmetic mean of an array of numbers. An empty array "
            "returns `fallback` instead of `NaN`; otherwise it sums the values with `reduce` "
            "and divides by the array's length."
        ),
        params=(
            ("values", "The numbers to average."),
            ("fallback", "The value returned when values is empty."),
        ),
        returns="The mean of values, or fallback if there are none.",
    ),
    "rust": dataclasses.replace(
        _PY_EXAMPLE,
        path="src/stats.rs",
        code=(
            "pub fn mean(values: &[f64]) -> Option<f64> {\n"
            "    if values.is_empty() {\n"
            "        return None;\n"
            "    }\n"
            "    Some(values.iter().sum::<f64>() / values.len() as f64)\n"
            "}"
        ),
        explanation=(
            "`mean` computes the arithmetic mean of a slice of floats. It returns `None` for "
            "an empty slice rather than dividing by zero, and otherwise `Some` of the sum "
            "divided by the number of values."
        ),
        summary="Compute the arithmetic mean of a slice of numbers.",
        params=(("values", "The numbers to average."),),
        returns="The mean, or None if values is empty.",
    ),
    "go": dataclasses.replace(
        _PY_EXAMPLE,
        path="stats/mean.go",
        code=(
            "func Mean(values []float64) (float64, error) {\n"
            "\tif len(values) == 0 {\n"
            '\t\treturn 0, errors.New("no values")\n'
            "\t}\n"
            "\tsum := 0.0\n"
            "\tfor _, v := range values {\n"
            "\t\tsum += v\n"
            "\t}\n"
            "\treturn sum / float64(len(values)), nil\n"
            "}"
        ),
        explanation=(
            "`Mean` computes the arithmetic mean of a slice of floats. An empty slice is "
            "reported as an error instead of dividing by zero; otherwise it sums the values "
            "in a loop and divides by their count."
        ),
        summary="Return the arithmetic mean of values.",
        params=(("values", "The numbers to average."),),
        returns="The mean, or an error if values is empty.",
    ),
    "java": dataclasses.replace(
        _PY_EXAMPLE,
        path="Stats.java",
        code=(
            "static double mean(double[] values) {\n"
            "    if (values.length == 0) {\n"
            '        throw new IllegalArgumentException("no values");\n'
            "    }\n"
            "    double sum = 0;\n"
            "    for (double v : values) sum += v;\n"
            "    return sum / values.length;\n"
            "}"
        ),
        explanation=(
            "`mean` computes the arithmetic mean of an array of doubles. It throws an "
            "`IllegalArgumentException` for an empty array instead of dividing by zero; "
            "otherwise it sums the values in a loop and divides by the array's length."
        ),
        summary="Compute the arithmetic mean of an array of numbers.",
        params=(("values", "The numbers to average."),),
        returns="The mean of the values.",
    ),
}
_EXAMPLES["tsx"] = _EXAMPLES["typescript"]


def _example_for(language: str) -> _Example:
    return _EXAMPLES.get(docstring_language(language) or "", _PY_EXAMPLE)


# --------------------------------------------------------------------------------------------
# Explain

_EXPLAIN_SYSTEM = (
    "You are an expert programmer explaining code to a colleague. Say what the code does and "
    "how, in plain prose: its purpose, its inputs and outputs, and anything non-obvious "
    "(edge cases, side effects, performance). Do not restate it line by line and do not "
    "rewrite it. Be concise: a short paragraph for a few lines of code, a few short "
    "paragraphs at most for long code. Use Markdown only for inline code."
)


def explain_messages(
    code: str, *, language: str, path: str, context: str = ""
) -> tuple[ChatMessage, ...]:
    """System + user messages asking a chat model to explain ``code``.

    ``context`` is optional related code from elsewhere in the workspace (already formatted);
    it is shown as reference, before the code to explain.
    """
    lang = language_name(language)
    parts: list[str] = []
    if context.strip():
        parts.append(
            "Related code from the workspace, for reference only:\n\n" + context.strip() + "\n"
        )
    where = f" from `{path}`" if path else ""
    parts.append(
        f"Explain what this {lang} code{where} does.\n\n"
        f"```{_fence_tag(language)}\n{clip_code(code)}\n```"
    )
    return (
        ChatMessage(role="system", content=_EXPLAIN_SYSTEM),
        ChatMessage(role="user", content="\n".join(parts)),
    )


def _code_header(language: str, path: str) -> str:
    lang = _name(language) or "code"
    return f"### Code ({lang}: {path})" if path else f"### Code ({lang})"


def explain_plain_prompt(code: str, *, language: str, path: str) -> tuple[str, tuple[str, ...]]:
    """A few-shot prompt for a base model, ending in the explanation slot; and its stops."""
    example = _example_for(language)
    example_lang = docstring_language(language) or "python"
    prompt = (
        f"Each piece of code below is followed by a short explanation, {2} to "
        f"{EXPLAIN_MAX_SENTENCES} sentences, of what it does.\n\n"
        f"{_code_header(example_lang, example.path)}\n{example.code}\n"
        f"### Explanation\n{example.explanation}\n### End\n\n"
        f"{_code_header(language, path)}\n{clip_code(code)}\n"
        "### Explanation\n"
    )
    return prompt, EXPLAIN_STOPS


_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def explain_should_stop(text: str, max_sentences: int = EXPLAIN_MAX_SENTENCES) -> bool:
    """For ``GenerationRequest.should_stop`` with a base model: stop a rambling answer.

    True once the text has a paragraph break after some content, or more than
    ``max_sentences`` complete sentences.
    """
    stripped = text.lstrip()
    if "\n\n" in stripped.rstrip("\n") or (stripped and stripped.endswith("\n\n")):
        return True
    return len(_SENTENCE_END.findall(stripped)) > max_sentences


def finish_explanation(text: str) -> str:
    """The final explanation text: stop markers removed, whitespace trimmed."""
    for marker in ("### End", "<end_of_turn>", "<eos>"):
        text = text.split(marker, 1)[0]
    return text.strip()


# --------------------------------------------------------------------------------------------
# Docstring prompts


def _params_line(target: DocTarget) -> str:
    return ", ".join(target.param_names) if target.params else "(none)"


def _answer_lines(example: _Example, with_returns: bool = True) -> str:
    lines = [f"Summary: {example.summary}"]
    lines += [f"Param {name}: {desc}" for name, desc in example.params]
    if with_returns and example.returns:
        lines.append(f"Returns: {example.returns}")
    return "\n".join(lines)


_DOCSTRING_SYSTEM = (
    "You write documentation comments for code. Reply in exactly this line format and "
    "nothing else, with no blank lines and no code:\n"
    "Summary: <one sentence in the imperative mood saying what it does>\n"
    "Param <name>: <what the parameter means>   (one line for each listed parameter)\n"
    "Returns: <what it returns>   (only when asked for)\n"
    "Raises <ExceptionName>: <when it is raised>   (optional, one line each)"
)


def _kind_word(target: DocTarget) -> str:
    return {"function": "function", "method": "method", "class": "class"}[target.kind]


def docstring_messages(target: DocTarget, style: str = "google") -> tuple[ChatMessage, ...]:
    """Chat messages asking for the prose of a docstring in the line format.

    ``style`` does not change the request (the docstring is rendered by our code); it is
    accepted so both prompt builders take the same arguments.
    """
    del style
    example = _example_for(target.language)
    lang = language_name(target.language)
    fence = _fence_tag(target.language)

    def ask(code: str, params: str, returns: bool, kind: str) -> str:
        want = "Include a Returns line." if returns else "No Returns line."
        return (
            f"Document this {lang} {kind}.\n\n```{fence}\n{code}\n```\n\n"
            f"Parameters: {params}\n{want}"
        )

    example_params = ", ".join(name for name, _ in example.params)
    return (
        ChatMessage(role="system", content=_DOCSTRING_SYSTEM),
        ChatMessage(role="user", content=ask(example.code, example_params, True, "function")),
        ChatMessage(role="assistant", content=_answer_lines(example)),
        ChatMessage(
            role="user",
            content=ask(
                clip_code(target.code),
                _params_line(target),
                target.returns_value,
                _kind_word(target),
            ),
        ),
    )


def docstring_plain_prompt(target: DocTarget, style: str = "google") -> tuple[str, tuple[str, ...]]:
    """A few-shot prompt for a base model, ending in the ``Summary:`` slot; and its stops.

    The model's continuation (without the ``Summary:`` prefix) goes to
    :func:`parse_docstring_answer`.
    """
    del style
    example = _example_for(target.language)
    lang = target.language
    example_params = ", ".join(name for name, _ in example.params)
    prompt = (
        "Each piece of code below is followed by its documentation: a one-sentence summary, "
        "one line for each parameter, and what it returns.\n\n"
        f"{_code_header(lang, example.path)}\n{example.code}\n"
        f"### Parameters\n{example_params}\n"
        f"### Doc\n{_answer_lines(example)}\n### End\n\n"
        f"{_code_header(lang, '')}\n{clip_code(target.code)}\n"
        f"### Parameters\n{_params_line(target)}\n"
        "### Doc\nSummary:"
    )
    return prompt, DOCSTRING_STOPS


# --------------------------------------------------------------------------------------------
# Parsing the answer

_STOP_LINE = re.compile(
    r"^\s*(###|```|<end_of_turn>|<eos>|<\|)|^\s*(def|async def|class|function|fn|func|pub fn)\s"
)
_SECTION = re.compile(
    r"^\s*(?:#+\s*)?(?P<name>args|arguments|parameters|params|attributes|returns?|yields?|"
    r"raises|throws|exceptions)\s*:?\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
_KEYED = re.compile(
    r"^\s*(?:[-*•]\s+)?(?:\*\*)?(?P<at>[@:])?(?P<key>summary|description|details|"
    r"param(?:eter)?|arg(?:ument)?|returns?|return value|yields?|raises?|throws?)"
    r"(?:\*\*)?(?P<rest>(?:[\s:=-].*)?)$",
    re.IGNORECASE,
)
_PARAM_REST = re.compile(
    r"^\s*(?:\{[^}]*\}\s*)?`?\[?(?P<name>\*{0,2}(?:\.\.\.)?[A-Za-z_$][\w$]*)(?:=[^\]]*)?\]?`?"
    r"\s*(?:\([^)]*\))?\s*(?:[:\-–—]\s*|\s+|$)(?P<desc>.*)$"
)
_ITEM = re.compile(
    r"^\s*(?:[-*•]\s+)?`?(?P<name>\*{0,2}[A-Za-z_$][\w$]*)`?\s*(?:\([^)]*\))?"
    r"\s*(?::|\s[-–—]\s)\s*(?P<desc>.*)$"
)
_NUMPY_ITEM = re.compile(r"^`?(?P<name>\*{0,2}[A-Za-z_$][\w$]*)`?(?:\s+:\s+.*)?$")
_RAISE_REST = re.compile(
    r"^\s*:?\s*`?(?P<name>[A-Za-z_][\w.]*)`?\s*(?::|\s[-–—]\s)\s*(?P<desc>.*)$"
)
_MARKER = re.compile(r"###|```|<end_of_turn>|<eos>|<\|")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PLACEHOLDER = re.compile(r"^<[^>]*>$|^\.\.\.$|^(tbd|todo|none|n/a)\.?$", re.IGNORECASE)
_MAX_DESC = 240


def _clean(text: str) -> str:
    text = " ".join(text.replace('"' * 3, "").replace("'" * 3, "").split())
    text = text.strip(" \t-–—:*")
    if _PLACEHOLDER.match(text):
        return ""
    return _clip_sentences(text)


def _clip_sentences(text: str, limit: int = _MAX_DESC) -> str:
    """Keep at most ``limit`` characters, cut at a sentence end where possible."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    ends = [m.end() for m in _SENTENCE_END.finditer(cut)]
    if ends:
        return cut[: ends[-1]].strip()
    return cut[: cut.rfind(" ")].rstrip(",;: ") + "..." if " " in cut else cut


def _name_lookup(target: DocTarget) -> dict[str, str]:
    lookup: dict[str, str] = {}
    for name in target.param_names:
        bare = name.lstrip("*.")
        for key in (name, bare, name.lower(), bare.lower()):
            lookup.setdefault(key, name)
    return lookup


def _after_key(rest: str) -> str:
    return re.sub(r"^\s*[:=\-–—]?\s*", "", rest)


class _Answer:
    """Accumulates the pieces of an answer while :func:`parse_docstring_answer` reads it."""

    def __init__(self, target: DocTarget) -> None:
        self.lookup = _name_lookup(target)
        self.summary: list[str] = []
        self.description: list[str] = []
        self.params: dict[str, list[str]] = {}
        self.returns: list[str] = []
        self.raises: dict[str, list[str]] = {}
        self.current: list[str] | None = None
        """Where continuation lines go; a throwaway list for an invented parameter."""
        self.section = ""
        self.saw_summary_key = False

    def real(self, name: str) -> str | None:
        return self.lookup.get(name) or self.lookup.get(name.lower())

    def param(self, name: str, desc: str) -> None:
        real = self.real(name)
        if real is None:
            self.current = []  # invented: drop it and its continuation lines
        else:
            self.current = self.params.setdefault(real, [])
            self.current.append(desc)
        self.section = "params"

    def exception(self, name: str, desc: str) -> None:
        self.current = self.raises.setdefault(name, [])
        self.current.append(desc)
        self.section = "raises"

    def keyed(self, key: str, at: bool, rest: str) -> bool | None:
        """Handle a ``Key ...`` line. True: consumed; False: not a key line; None: stop."""
        has_colon = bool(re.match(r"\s*:", rest))
        if key == "summary" and (has_colon or at):
            if self.saw_summary_key and (self.summary or self.params):
                return None  # a second answer begins
            self.saw_summary_key = True
            self.summary.append(_after_key(rest))
            self.current, self.section = self.summary, ""
            return True
        if key in ("description", "details") and (has_colon or at):
            self.description.append(_after_key(rest))
            self.current, self.section = self.description, ""
            return True
        if key.startswith(("param", "arg")):
            match = _PARAM_REST.match(_after_key(rest))
            if match and (at or ":" in rest or " - " in rest):
                self.param(match.group("name"), match.group("desc"))
                return True
            return False
        if key.startswith(("return", "yield")) and (has_colon or at):
            body = re.sub(r"^\{[^}]*\}\s*", "", _after_key(rest))  # @returns {T} ...
            self.returns.append(body)
            self.current, self.section = self.returns, "returns"
            return True
        if key.startswith(("raise", "throw")):
            match = _RAISE_REST.match(rest)
            if match is None and at:
                match = re.match(r"^\s*(?P<name>[A-Za-z_][\w.]*)\s*(?P<desc>.*)$", rest)
            if match:
                self.exception(match.group("name"), match.group("desc"))
                return True
        return False

    def line(self, line: str) -> bool:
        """Read one non-empty line; False when the answer is over."""
        if re.fullmatch(r"\s*[-=~]{3,}\s*", line):  # numpy section underline
            return True
        sec = _SECTION.match(line)
        if sec and (
            not sec.group("rest").strip()
            or all(
                self.real(w) or w == "(none)"
                for w in re.split(r"[,\s]+", sec.group("rest").strip())
            )
        ):
            word = sec.group("name").lower()
            if word.startswith(("ret", "yield")):
                self.section, self.current = "returns", self.returns
            elif word.startswith(("raise", "throw", "except")):
                self.section, self.current = "raises", None
            else:
                # A section header, or the prompt's "Parameters: a, b" echoed back.
                self.section, self.current = "params", None
            return True
        keyed = _KEYED.match(line)
        if keyed:
            done = self.keyed(keyed.group("key").lower(), bool(keyed.group("at")), keyed["rest"])
            if done is None:
                return False
            if done:
                return True
        numpy = _NUMPY_ITEM.match(line)
        if numpy and self.section == "params":  # "name" or "name : type", text below
            self.param(numpy.group("name"), "")
            return True
        item = _ITEM.match(line)
        if item and (self.real(item.group("name")) or self.section in ("params", "raises")):
            if self.section == "raises" and not self.real(item.group("name")):
                self.exception(item.group("name"), item.group("desc"))
            else:
                self.param(item.group("name"), item.group("desc"))
            return True
        if self.current is not None:
            self.current.append(line)
        elif not self.summary and not self.section:
            self.summary.append(line)
            self.current = self.summary
        return True


def parse_docstring_answer(text: str, target: DocTarget) -> DocContent:
    """Read the model's answer into a :class:`DocContent` for ``target``. Never raises.

    Accepts the requested line format and common deviations (Google ``Args:`` sections,
    ``@param``, ``:param x:``, bullets, a missing ``Summary:`` key as after the plain prompt's
    ``Summary:`` slot). Parameters that are not in the signature are dropped; missing pieces
    get fallbacks and are listed in ``fallbacks``.
    """
    answer = _Answer(target)
    started = False
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = _CONTROL.sub("", raw).rstrip()
        if not line.strip():
            continue
        if _STOP_LINE.match(line):
            if started:
                break
            continue
        started = True
        marker = _MARKER.search(line)
        if marker is not None:  # the format's next header, glued to this line
            line = line[: marker.start()].rstrip()
            if line.strip():
                answer.line(line)
            break
        if not answer.line(line):
            break
    summary_parts = answer.summary
    description_parts = answer.description
    params = answer.params
    returns_parts = answer.returns
    raises = answer.raises

    fallbacks: list[str] = []
    summary = _clean(" ".join(summary_parts))
    summary = _clip_sentences(summary, 200)
    if not re.search(r"[A-Za-z]{2}", summary):
        summary = fallback_summary(target)
        fallbacks.append("summary")
    out_params: dict[str, str] = {}
    for param in target.params:
        desc = _clean(" ".join(params.get(param.name, [])))
        if not desc:
            desc = fallback_param(param)
            fallbacks.append(f"param:{param.name}")
        out_params[param.name] = desc
    returns = _clean(" ".join(returns_parts)) if target.returns_value else ""
    if target.returns_value and not returns:
        returns = fallback_returns(target)
        fallbacks.append("returns")
    out_raises = {name: d for name, parts in raises.items() if (d := _clean(" ".join(parts)))}
    return DocContent(
        summary=summary,
        params=out_params,
        returns=returns,
        raises=out_raises,
        description=_clean(" ".join(description_parts)),
        fallbacks=tuple(fallbacks),
    )
