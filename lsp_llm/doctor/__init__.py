"""``lsp-llm doctor``: check an installation and say, in plain words, how to fix what is wrong.

Every check produces one :class:`Check` (name, ok, detail, fix, data). A check is *required*
when the server cannot work without it (the model, the cache directory, the Python packages);
a failed required check makes the exit code 1. Other checks only warn (a missing tree-sitter
grammar, a settings warning) or inform (index state, editor configs) and never fail the run.

The model check goes through the real :class:`~lsp_llm.engine.worker.Engine`: the same backend
selection, loading and generation the server uses, so a passing doctor means a working server.

The checks are grouped by what they look at: :mod:`~lsp_llm.doctor.system` (Python, packages,
device, cache, the command), :mod:`~lsp_llm.doctor.grammars`, :mod:`~lsp_llm.doctor.model`
(model, backend, load and generation), :mod:`~lsp_llm.doctor.workspace` (settings, index,
editors); :mod:`~lsp_llm.doctor.report` prints them and :mod:`~lsp_llm.doctor.run` runs them.
"""

from lsp_llm.doctor.report import Check, Printer, Status
from lsp_llm.doctor.run import run_doctor
from lsp_llm.doctor.system import check_writable, read_meminfo
from lsp_llm.doctor.workspace import find_editor_configs

__all__ = [
    "Check",
    "Printer",
    "Status",
    "check_writable",
    "find_editor_configs",
    "read_meminfo",
    "run_doctor",
]
