"""LSP handlers: plain functions ``(ls: LlmServer, params)``, one module per area.

Each translates wire types, calls one domain function, and translates back. They import
:mod:`lsp_llm.server.session`, never each other's registration: :mod:`lsp_llm.server.routes` is
the one table that binds them to methods.
"""
