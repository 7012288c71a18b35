"""The evaluation harness: splicing, the sandbox, the repo-suite sampler and scorer, and a
``--quick`` run through the real server with a tiny random-weight model (no timing asserts)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from benchmarks import eval as ev
from benchmarks import eval_humaneval as he
from benchmarks import eval_repo as repo

DATA_DIR = ev.find_data_dir(None)
needs_data = pytest.mark.skipif(DATA_DIR is None, reason="HumanEval infilling data not found")


def _problems(suite: str, n: int = 10) -> list[he.Problem]:
    assert DATA_DIR is not None
    return he.select(he.load_problems(DATA_DIR / he.SUITE_FILES[suite]), n, seed=0)


def test_position_is_utf16_and_document_has_an_empty_hole_line() -> None:
    assert he.position_at("ab\ncd", 4) == (1, 1)
    assert he.position_at("x = '😀'\ny", 7) == (0, 8)  # the emoji counts as two units
    p = he.Problem("t/1", "def f():\n", "    return 1\n", "    x = 1\n", "", "f")
    doc, offset = he.make_document(p)
    assert doc == "def f():\n\n    return 1\n" and offset == len(p.prompt)
    assert he.position_at(doc, offset) == (1, 0)
    assert he.splice(p, "    x = 1\n\n") == "def f():\n    x = 1\n    return 1\n"
    q = he.Problem("t/2", "def f():\n", "\n    return 1\n", "    x = 1\n", "", "f")
    assert he.make_document(q)[0] == "def f():\n\n    return 1\n"
    assert he.splice(q, "    x = 1") == "def f():\n    x = 1\n    return 1\n"


@needs_data
@pytest.mark.parametrize("suite", ["humaneval-single", "humaneval-multi"])
def test_canonical_solutions_pass_through_the_splice_and_run_path(suite: str) -> None:
    problems = _problems(suite)
    runs = he.run_programs([he.build_program(p, p.canonical_solution) for p in problems])
    assert he.summarize_runs(runs)["pass@1"] == 1.0, [r.detail for r in runs if not r.passed]
    broken = he.run_programs([he.build_program(p, "    ) (\n") for p in problems])
    assert he.summarize_runs(broken)["passed"] == 0
    assert all(r.status == "failed" and "SyntaxError" in r.detail for r in broken)


def test_sandbox_enforces_timeouts_and_memory_limits() -> None:
    limits = he.Limits(timeout_s=1.0)
    assert he.run_program("while True:\n    pass\n", limits).status == "timeout"
    assert he.run_program("import time\ntime.sleep(60)\n", limits).status == "timeout"
    big = he.run_program("x = bytearray(8 << 30)\n", limits)
    assert big.status == "failed" and "MemoryError" in big.detail
    assert he.run_program("import sys\nsys.exit(0)\n", limits).passed
    net = he.run_program(
        he.NETWORK_GUARD + "import socket\nsocket.create_connection(('1.1.1.1', 53))\n"
    )
    assert net.status == "failed"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_repo_sampler_cuts_lines_that_use_identifiers_from_other_files(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    _write(pkg / "__init__.py", "")
    _write(
        pkg / "models.py",
        """\
        class Response:
            def __init__(self, code: int) -> None:
                self.code = code


        def make_response(code: int) -> Response:
            return Response(code)
        """,
    )
    _write(pkg / "util.py", "LIMIT = 10\n")
    _write(
        pkg / "client.py",
        '''\
        from pkg import util
        from .models import Response, make_response


        def local() -> int:
            return 1


        def fetch(code: int) -> Response:
            """Response docs are not a sample."""
            response = make_response(code)
            if code > util.LIMIT:
                return local()
            return response
        ''',
    )
    samples = repo.find_samples(pkg)
    by_target = {s.target: s for s in samples}
    assert set(by_target) == {
        " fetch(code: int) -> Response:",
        " = make_response(code)",
        " code > util.LIMIT:",
    }
    s = by_target[" = make_response(code)"]
    assert s.path == "pkg/client.py" and s.identifiers == ("make_response",)
    assert s.defined_in == ("pkg/models.py",)
    assert s.prefix.endswith('"""Response docs are not a sample."""\n    response')
    assert s.column == len("    response") and s.line == 10
    assert by_target[" code > util.LIMIT:"].defined_in == ("pkg/util.py",)
    # The models file only uses its own names: no sample there.
    assert all(x.path == "pkg/client.py" for x in samples)

    exact = repo.score(" = make_response(code)\nmore", s)
    assert exact["em"] and exact["es"] == 1.0 and exact["identifierHit"]
    near = repo.score(" = make_respons(code)", s)
    assert not near["em"] and near["es"] == pytest.approx(1 - 1 / len("= make_response(code)"))
    assert repo.score("", s)["es"] == 0.0
    assert repo.levenshtein("kitten", "sitting") == 3


def test_percentiles() -> None:
    assert ev.percentile([], 50) is None
    assert ev.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert ev.percentile([10.0] * 5 + [100.0], 95) == 77.5


def test_quick_run_writes_a_complete_report(
    tmp_path: Path, tiny_model_dir: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(cache_home / "config"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    suites = ["repo"] if DATA_DIR is None else ["humaneval-single", "humaneval-multi", "repo"]
    out = tmp_path / "report.json"
    argv = [
        "--quick",
        "--suite",
        ",".join(suites),
        "--model",
        str(tiny_model_dir),
        "--backend",
        "transformers",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert ev.main(argv) == 0
    report = json.loads(out.read_text())
    meta = report["meta"]
    assert meta["quick"] and meta["git"] and meta["sandbox"]
    assert meta["model"]["backend"] == "transformers"
    assert set(report["suites"]) == set(suites)
    for name in suites:
        if name == "repo":
            continue
        s = report["suites"][name]
        assert s["n"] == ev.QUICK_LIMIT == len(s["samples"])
        assert 0.0 <= s["pass@1"] <= 1.0 and s["passed"] == sum(x["passed"] for x in s["samples"])
        assert sum(s["statuses"].values()) == s["n"]
        assert s["latency"]["p50Ms"] is not None and "p95Ms" in s["latency"]
        assert 0.0 <= s["pass@1EmptyBaseline"] < 1.0
        assert all(isinstance(x["completion"], str) for x in s["samples"])
    assert "pass@1FirstLine" in report["suites"].get("humaneval-single", {"pass@1FirstLine": 0})
    r = report["suites"]["repo"]
    assert r["n"] == ev.QUICK_LIMIT == len(r["samples"])
    assert r["index"]["state"] == "ready" and r["index"]["files"] > 0
    for key in ("retrievalOn", "retrievalOff"):
        side = r[key]
        assert 0.0 <= side["em"] <= 1.0 and 0.0 <= side["es"] <= 1.0
        assert side["latency"]["p50Ms"] is not None
    assert r["delta"]["es"] == pytest.approx(r["retrievalOn"]["es"] - r["retrievalOff"]["es"])
    # Retrieval on puts context from other files into the prompt: the prompts differ.
    assert any(x["on"]["promptTokens"] != x["off"]["promptTokens"] for x in r["samples"])
    table = ev.format_table(report)
    assert "| repo (httpx) |" in table and "exact match" in table
