"""HumanEval infilling (Bavarian et al. 2022): problems, the hole, splicing, sandboxed tests.

Each row has ``prompt`` (code before the hole), ``suffix`` (code after it),
``canonical_solution`` (the hole: whole lines, with their indentation and final newline),
``test`` and ``entry_point``. The data is read from its path and never copied anywhere.

The hole and the document
-------------------------
``prompt`` always ends with a newline, so the hole starts at column 0 of a line. The document
opened in the server is ``prompt + suffix`` when the suffix starts with a newline (the hole's
line is then an empty line, where an editor user would ask for a completion), and
``prompt + "\\n" + suffix`` otherwise, so the cursor never has code after it on its line (which
would make the server answer with one line only and glue it to that code). The program that
is tested is ``prompt + completion + "\\n" + suffix`` minus the one newline the document
already has; trailing newlines of the completion are dropped (a blank line more or less does
not change Python semantics, and the canonical solutions pass through the same path).

The sandbox
-----------
Each program runs in a fresh temporary directory with ``python -I`` (isolated: no user site,
no ``PYTHON*`` variables) and a minimal environment (no proxies, no tokens), in its own process
group (killed as a whole on timeout), with ``setrlimit`` limits: CPU seconds, address space,
file size, open files, no core files. A prologue makes ``socket`` unusable, and when
``unshare -n`` works (root, or unprivileged user namespaces via ``unshare -rn``) the program
runs in an empty network namespace. Without namespaces a determined program could still reach
the network through other means (ctypes); :func:`sandbox_method` reports which applies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

SUITE_FILES = {
    "humaneval-single": "HumanEval-SingleLineInfilling.jsonl.gz",
    "humaneval-multi": "HumanEval-MultiLineInfilling.jsonl.gz",
}

RunStatus = Literal["passed", "failed", "timeout", "error"]


@dataclasses.dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    suffix: str
    canonical_solution: str
    test: str
    entry_point: str

    @property
    def file_name(self) -> str:
        """A file name for the problem (``HumanEval_0_L5.py``)."""
        name = self.task_id.split("/", 1)[-1]
        return "".join(c if c.isalnum() else "_" for c in name) + ".py"


def load_problems(path: Path) -> list[Problem]:
    """All rows of one ``.jsonl.gz`` file, in file order."""
    fields = {f.name for f in dataclasses.fields(Problem)}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [
            Problem(**{k: v for k, v in json.loads(line).items() if k in fields})
            for line in fh
            if line.strip()
        ]


def select(problems: Sequence[Problem], limit: int | None, seed: int) -> list[Problem]:
    """A seeded random subset (all problems when ``limit`` is None), in file order."""
    if limit is None or limit >= len(problems):
        return list(problems)
    chosen = sorted(random.Random(seed).sample(range(len(problems)), limit))
    return [problems[i] for i in chosen]


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def position_at(text: str, offset: int) -> tuple[int, int]:
    """LSP position (line, UTF-16 column) of a character offset."""
    before = text[:offset]
    line = before.count("\n")
    return line, utf16_len(before[before.rfind("\n") + 1 :])


def _separator(suffix: str) -> str:
    return "" if suffix.startswith("\n") else "\n"


def make_document(problem: Problem) -> tuple[str, int]:
    """The file the server sees and the cursor offset (the end of ``prompt``)."""
    return problem.prompt + _separator(problem.suffix) + problem.suffix, len(problem.prompt)


def splice(problem: Problem, completion: str) -> str:
    """The completed source: the suggestion inserted at the hole."""
    return problem.prompt + completion.rstrip("\n") + _separator(problem.suffix) + problem.suffix


NETWORK_GUARD = """\
import socket as _eval_socket


def _eval_no_network(*args, **kwargs):
    raise OSError("network access is disabled in the evaluation sandbox")


_eval_socket.socket = _eval_no_network
_eval_socket.create_connection = _eval_no_network
_eval_socket.getaddrinfo = _eval_no_network
del _eval_socket, _eval_no_network
"""


def build_program(problem: Problem, completion: str) -> str:
    """The test program: guard, completed source, the problem's tests, ``check(entry)``."""
    return (
        NETWORK_GUARD
        + "\n"
        + splice(problem, completion)
        + "\n"
        + problem.test
        + f"\ncheck({problem.entry_point})\n"
    )


@dataclasses.dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0
    """Wall clock; CPU time is limited to the same number of seconds."""
    memory_bytes: int = 2 << 30
    file_bytes: int = 16 << 20
    open_files: int = 64


@functools.lru_cache(maxsize=1)
def sandbox_method() -> tuple[list[str], str]:
    """The command prefix that isolates the network, and a description of the sandbox."""
    unshare = shutil.which("unshare")
    base = "python -I, minimal env, rlimits (CPU, AS, FSIZE, NOFILE, CORE), process group"
    if unshare:
        for args in (["-n"], ["-rn"]):
            try:
                ok = subprocess.run(
                    [unshare, *args, "true"], capture_output=True, timeout=10
                ).returncode
            except (OSError, subprocess.SubprocessError):
                continue
            if ok == 0:
                return [unshare, *args], f"{base}, unshare {' '.join(args)} (no network)"
    return [], f"{base}, socket disabled in-process (no network namespace available)"


def _limit(limits: Limits) -> Callable[[], None]:
    cpu = max(1, int(limits.timeout_s + 0.999))

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _sandbox_env() -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": "/nonexistent",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@dataclasses.dataclass(frozen=True)
class RunResult:
    status: RunStatus
    seconds: float
    detail: str = ""
    """The tail of stderr (failures), or why it could not run."""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def run_program(source: str, limits: Limits = Limits()) -> RunResult:
    """Run one program in the sandbox; passed means exit status 0 within the limits."""
    prefix, _ = sandbox_method()
    with tempfile.TemporaryDirectory(prefix="lsp-llm-eval-run-") as tmp:
        path = Path(tmp) / "program.py"
        path.write_text(source, encoding="utf-8")
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(
                [*prefix, sys.executable, "-I", "-B", str(path)],
                cwd=tmp,
                env=_sandbox_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=_limit(limits),
            )
        except OSError as exc:
            return RunResult("error", 0.0, f"could not start: {exc}")
        try:
            _, err = proc.communicate(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            return RunResult("timeout", time.perf_counter() - t0, "wall-clock timeout")
        finally:
            _kill_group(proc)  # anything the program forked and left behind
        seconds = time.perf_counter() - t0
        tail = err.decode("utf-8", "replace")[-400:]
        if proc.returncode == 0:
            return RunResult("passed", seconds)
        if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            return RunResult("timeout", seconds, f"killed by signal {-proc.returncode}")
        return RunResult("failed", seconds, tail)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_programs(
    sources: Iterable[str], limits: Limits = Limits(), workers: int = 2
) -> list[RunResult]:
    """Run programs concurrently (``workers`` at a time), results in input order."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda s: run_program(s, limits), sources))


def first_line(completion: str) -> str:
    """The completion cut at its first newline (the classic single-line protocol)."""
    return completion.split("\n", 1)[0]


def summarize_runs(results: Sequence[RunResult]) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    passed = statuses.get("passed", 0)
    return {
        "passed": passed,
        "pass@1": passed / len(results) if results else 0.0,
        "statuses": statuses,
    }
