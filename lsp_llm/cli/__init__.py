"""Command line: ``lsp-llm serve | connect | complete | explain | docstring | index ...``.

:mod:`~lsp_llm.cli.main` has the parser and :func:`main` (the ``lsp-llm`` entry point),
:mod:`~lsp_llm.cli.common` what every command shares, and one module per group of commands.
"""

import os

# OpenMP threads that spin while waiting steal the CPU from the editor and from each other on
# small or busy machines (measured: decode steps 4-10x slower on 2 loaded cores). Must be set
# before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from lsp_llm.cli.main import main

__all__ = ["main"]
