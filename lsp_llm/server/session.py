"""One LSP session (``LlmServer``) over what all sessions share (``Shared``).

``Shared`` holds the engine (one warm model), the workspace indexes, the acceptance statistics
and the base settings. ``LlmServer`` is one session (stdio: the only one; TCP: one per
connection): its settings, its completion service, and the status it publishes, including the
deferred-status rule (a change in timings only waits for the session's pending answers).

Handlers live in ``server/handlers/`` as plain functions ``(ls, params)``; ``server/routes.py``
is the one table that binds them to methods. This module imports no handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from lsp_llm import __version__
from lsp_llm.config import ENGINE_KEYS, RELOAD_KEYS, Settings, load_settings, merge, to_camel
from lsp_llm.engine.worker import Engine, EngineStatus
from lsp_llm.features.completion import CompletionOutcome, CompletionService
from lsp_llm.server import wire
from lsp_llm.server.documents import workspace_roots
from lsp_llm.server.protocol import LlmProtocol

if TYPE_CHECKING:
    from lsp_llm.server.indexing import Workspaces
    from lsp_llm.stats import AcceptanceStats

log = logging.getLogger(__name__)

STATUS_CHANGED = wire.STATUS_CHANGED
STATUS_REQUEST = wire.STATUS
_session_ids = itertools.count(1)

INFO_STATUS_FIELDS = frozenset({"last", "last_cancel"})
"""Engine status fields that only report on finished work (timings). A change to nothing else
is published after the session's pending responses, never in front of one."""
STATUS_AFTER_RESPONSE_S = 0.05
"""A deferred status notification goes out this long after the last pending response: the
client has read the answer before it has a notification to parse."""
STATUS_MAX_DEFER_S = 1.0
"""...and at the latest this long after the change (a long request must not hide it)."""


@dataclasses.dataclass
class Shared:
    """State shared by all sessions of one process. Lives on the event loop."""

    engine: Engine
    base_settings: Settings
    config_file: Path | None = None
    cli_overrides: dict[str, object] = dataclasses.field(default_factory=dict)
    daemon: bool = False
    sessions: set[LlmServer] = dataclasses.field(default_factory=set)
    workspaces: Workspaces | None = None
    """The workspace index registry (None with ``--no-index``)."""
    stats: AcceptanceStats | None = None
    """Acceptance statistics (None until the CLI loads them)."""


class LlmServer(LanguageServer):
    """One LSP session."""

    protocol: LlmProtocol

    def __init__(self, shared: Shared, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(
            name="lsp-llm",
            version=__version__,
            protocol_cls=LlmProtocol,
            # Our wire types (server/wire.py) ride on pygls' own converter hooks.
            converter_factory=wire.make_converter,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        self.shared = shared
        self.session_id = next(_session_ids)
        self.settings: Settings = shared.base_settings
        self.completions = CompletionService(shared.engine, session_key=f"s{self.session_id}")
        self.request_seq: dict[str, int] = {}
        """Per-document counter of completion requests (debounce / supersede)."""
        self.cursors: dict[str, tuple[int, int]] = {}
        """Per document, the last cursor (line, character) a request carried: idle warm-up."""
        self.warmed: tuple[str, int] | None = None
        """(uri, line) of the last idle warm-up, so one place is warmed once."""
        self._reported_error_generation = 0
        self._load_progress_token: str | None = None
        self._status_listener = self._on_engine_status
        self.loop: asyncio.AbstractEventLoop | None = loop
        self.initialized = False
        self.last_completion: CompletionOutcome | None = None
        self._seen_status: EngineStatus | None = None
        self._deferred_status: EngineStatus | None = None
        self._deferred_timer: asyncio.TimerHandle | None = None
        self._deferred_deadline = 0.0
        self.protocol.after_response = self._after_response

    # -- capabilities ----------------------------------------------------------------------
    def client_supports(self, dotted: str) -> bool:
        node: Any = self.client_capabilities
        for part in dotted.split("."):
            node = getattr(node, part, None)
            if node is None:
                return False
        return bool(node)

    # -- settings --------------------------------------------------------------------------
    def apply_settings_layer(self, layer: Any, source: str) -> None:
        new, warnings = merge(self.settings, layer, source)
        for warning in warnings:
            self.warn(warning)
        self.set_settings(new)

    def set_settings(self, new: Settings) -> None:
        """Take ``new`` as this session's settings. Engine-wide keys (:data:`ENGINE_KEYS`)
        reach the shared engine only when :meth:`may_change_engine`; otherwise they are
        reported, and the session keeps the engine's values so its status tells the truth."""
        engine = self.shared.engine
        current = engine.settings
        changed = [k for k in ENGINE_KEYS if getattr(current, k) != getattr(new, k)]
        if not self.may_change_engine():
            if changed:
                asked = ", ".join(to_camel(k) for k in changed)
                self.warn(
                    f"this daemon's model is shared by {len(self.shared.sessions)} editors, "
                    f"so engine settings from one of them are ignored ({asked}); set them in "
                    "the daemon's configuration or command line and restart it"
                )
                new = dataclasses.replace(new, **{k: getattr(current, k) for k in changed})
            self.settings = new
            return
        self.settings = new
        if any(k in RELOAD_KEYS for k in changed):
            log.info("model settings changed (%s); reloading", ", ".join(changed))
            engine.reload(new)
        else:
            # Budgets too: a model loaded after this sizes its context from them.
            engine.update_settings(new)

    def may_change_engine(self) -> bool:
        """A stdio server's one session owns its engine; a daemon's engine is changed by a
        session only while that authenticated session is the only one connected."""
        if not self.shared.daemon:
            return True
        return self.shared.sessions == {self}

    def initial_settings(self, params: types.InitializeParams) -> None:
        roots = workspace_roots(self.workspace)
        settings, warnings = load_settings(
            config_file=self.shared.config_file,
            workspace_roots=roots,
            init_options=params.initialization_options
            if isinstance(params.initialization_options, dict)
            else None,
            overrides=self.shared.cli_overrides,
        )
        if params.initialization_options is not None and not isinstance(
            params.initialization_options, dict
        ):
            warnings.append("initializationOptions must be an object; ignored")
        for warning in warnings:
            self.warn(warning)
        self.set_settings(settings)
        self.shared.engine.start()

    # -- messages to the user --------------------------------------------------------------
    def warn(self, message: str) -> None:
        log.warning("%s", message)
        self.show(message, types.MessageType.Warning)

    def show(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        try:
            self.window_show_message(
                types.ShowMessageParams(type=kind, message=f"lsp-llm: {message}")
            )
        except Exception:  # transport gone: a message to the user must not fail the caller
            log.debug("could not show message", exc_info=True)

    # -- status ----------------------------------------------------------------------------
    def status_report(self) -> wire.StatusReport:
        """What ``lspLlm/status`` answers and ``lspLlm/statusChanged`` carries."""
        last = self.last_completion
        workspaces, stats = self.shared.workspaces, self.shared.stats
        return wire.StatusReport(
            engine=self.shared.engine.status.to_wire(),
            settings={k: v for k, v in self.settings.to_wire().items() if k != "tcpToken"},
            session=self.session_id,
            sessions=len(self.shared.sessions),
            last_completion=None
            if last is None
            else wire.LastCompletion(
                source=last.source,
                reason=last.reason,
                suggestions=len(last.suggestions),
                spans_ms={k: round(v, 2) for k, v in last.spans.items()},
                context=[
                    wire.ContextEntry(path=s.path, source=s.source, score=round(s.score, 3))
                    for s in last.snippets
                ],
            ),
            index=None
            if workspaces is None
            else workspaces.status_for(workspace_roots(self.workspace)),
            acceptance=None if stats is None else stats.summary(),
        )

    def _on_engine_status(self, status: EngineStatus) -> None:
        """Called on the model thread: hop to the loop."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._engine_status_changed, status)

    def _engine_status_changed(self, status: EngineStatus) -> None:
        """On the loop: publish now, or, for a change in timings only (a generation just
        finished), after this session's pending responses.

        The engine reports a finished generation just before (or after) handing over its
        result; publishing at once would serialize, write, and make the client parse a
        status object in front of the answer it is waiting for.
        """
        previous, self._seen_status = self._seen_status, status
        if previous is None or not _only_info_changed(previous, status):
            self._cancel_deferred()
            self._publish_status(status)
            return
        self._deferred_status = status
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        if not self.protocol.has_pending_requests():
            self._flush_deferred_later(STATUS_AFTER_RESPONSE_S)
        elif self._deferred_timer is None:
            self._flush_deferred_later(STATUS_MAX_DEFER_S)

    def _after_response(self) -> None:
        """A response was written: a deferred status may follow once nothing is pending."""
        if self._deferred_status is not None and not self.protocol.has_pending_requests():
            self._flush_deferred_later(STATUS_AFTER_RESPONSE_S)

    def _flush_deferred_later(self, delay: float) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        deadline = loop.time() + delay
        if self._deferred_timer is not None:
            if self._deferred_deadline <= deadline:
                return  # already due no later than that
            self._deferred_timer.cancel()
        self._deferred_deadline = deadline
        self._deferred_timer = loop.call_at(deadline, self._flush_deferred)

    def _flush_deferred(self) -> None:
        self._deferred_timer = None
        status, self._deferred_status = self._deferred_status, None
        if status is not None:
            self._publish_status(status)

    def _cancel_deferred(self) -> None:
        self._deferred_status = None
        if self._deferred_timer is not None:
            self._deferred_timer.cancel()
            self._deferred_timer = None

    def publish_status(self) -> None:
        """Publish the engine's current status now (e.g. once a session is initialized)."""
        self._publish_status(self.shared.engine.status)

    def publish_status_now(self) -> None:
        self._cancel_deferred()
        self._publish_status(self.shared.engine.status)

    def _publish_status(self, status: EngineStatus) -> None:
        if not self.initialized:
            return
        try:
            self.protocol.notify(STATUS_CHANGED, self.status_report())
        except Exception:  # a status push must never break the work that triggered it
            log.debug("status notification failed", exc_info=True)
        self._load_progress(status)
        if status.state == "error" and status.generation != self._reported_error_generation:
            self._reported_error_generation = status.generation
            self.show(
                f"the model could not be loaded: {status.message}. "
                "Completions are off until this is fixed (see `lsp-llm doctor`).",
                types.MessageType.Error,
            )

    def _load_progress(self, status: EngineStatus) -> None:
        if not self.client_supports("window.work_done_progress"):
            return
        progress = self.work_done_progress
        if status.state == "loading":
            pct = int((status.progress or 0) * 100)
            if self._load_progress_token is None:
                token = f"lsp-llm-load-{uuid.uuid4().hex[:8]}"
                self._load_progress_token = token
                progress.create(token)
                progress.begin(
                    token,
                    types.WorkDoneProgressBegin(
                        title="lsp-llm: loading model", message=status.message, percentage=pct
                    ),
                )
            else:
                progress.report(
                    self._load_progress_token,
                    types.WorkDoneProgressReport(message=status.message, percentage=pct),
                )
        elif self._load_progress_token is not None:
            token, self._load_progress_token = self._load_progress_token, None
            progress.end(token, types.WorkDoneProgressEnd(message=status.message))

    # -- lifecycle -------------------------------------------------------------------------
    def attach(self) -> None:
        self.shared.sessions.add(self)
        self.shared.engine.add_listener(self._status_listener)

    def detach(self) -> None:
        self.shared.sessions.discard(self)
        self.shared.engine.remove_listener(self._status_listener)
        self._cancel_deferred()


def _only_info_changed(old: EngineStatus, new: EngineStatus) -> bool:
    """True when ``new`` differs from ``old`` in :data:`INFO_STATUS_FIELDS` only."""
    return all(
        getattr(old, f.name) == getattr(new, f.name)
        for f in dataclasses.fields(new)
        if f.name not in INFO_STATUS_FIELDS
    )
