// Drives a real lsp-llm server the way the VS Code extension does, over stdio, with the
// protocol packages its client is built on (vscode-languageserver-protocol + vscode-jsonrpc):
//
//   initialize (VS Code's capabilities, as vscode-languageclient 11 computes them)
//   -> initialized -> didChangeConfiguration -> wait for the model (lspLlm/status)
//   -> textDocument/inlineCompletion, then the accepted item's command
//   -> lspLlm/explain with a partialResultToken (chunks first, then the full text)
//   -> lspLlm/explain cancelled after its first chunk ($/cancelRequest -> -32800)
//   -> lspLlm/docstring -> workspace/executeCommand lspLlm.status -> shutdown/exit
//
// Usage: node run.js <workspace dir> <result.json> -- <server command...>
// Exit code 0 when every check passed; the JSON result lists each check either way.

'use strict';

const cp = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const {
  createProtocolConnection,
  StreamMessageReader,
  StreamMessageWriter,
  CancellationTokenSource,
  ProgressType,
  ResponseError,
  InitializeRequest,
  InitializedNotification,
  DidChangeConfigurationNotification,
  DidOpenTextDocumentNotification,
  InlineCompletionRequest,
  InlineCompletionTriggerKind,
  ExecuteCommandRequest,
  ShutdownRequest,
  ExitNotification,
  WorkDoneProgressCreateRequest,
  RegistrationRequest,
  UnregistrationRequest,
  ConfigurationRequest,
  ShowDocumentRequest,
  ApplyWorkspaceEditRequest,
  ShowMessageRequest,
  LogMessageNotification,
  ShowMessageNotification,
  LSPErrorCodes,
} = require('vscode-languageserver-protocol/node');
const { vscodeClientCapabilities, VSCODE_VERSION } = require('./vscode-capabilities');

const READY_TIMEOUT_MS = 240_000;

const SOURCE = [
  'def add(a, b):',
  '    return a + b',
  '',
  '',
  'def scale(values, factor):',
  '    result = []',
  '    for value in values:',
  '        result.append(value * factor)',
  '    return result',
  '',
].join('\n');

// The settings the extension sends: only those the user set (see src/settings.ts).
const USER_SETTINGS = { docstringStyle: 'google', numSuggestions: 2 };

const result = { checks: [], events: [], ok: false };
const t0 = Date.now();
const log = (name, data) => result.events.push({ t: Date.now() - t0, name, data });

/** Runs one part of the session; a failure is recorded and the next part still runs. */
async function section(name, fn) {
  try {
    await fn();
  } catch (error) {
    if (!(error && error.recorded)) {
      result.checks.push({ name: `${name}: ${String(error && error.message ? error.message : error)}`, ok: false });
    }
  }
}

function check(name, condition, detail) {
  result.checks.push({ name, ok: Boolean(condition), detail: condition ? undefined : detail });
  if (!condition) {
    const error = new Error(`check failed: ${name}${detail === undefined ? '' : ` (${JSON.stringify(detail)})`}`);
    error.recorded = true;
    throw error;
  }
}

async function main() {
  const [workspace, outPath, sep, ...command] = process.argv.slice(2);
  if (!workspace || !outPath || sep !== '--' || command.length === 0) {
    throw new Error('usage: node run.js <workspace> <result.json> -- <server command...>');
  }
  result.outPath = outPath;
  const root = path.resolve(workspace);
  const file = path.join(root, 'example.py');
  fs.writeFileSync(file, SOURCE);
  const uri = pathToFileURL(file).href;

  const server = cp.spawn(command[0], command.slice(1), { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  server.stderr.on('data', (d) => {
    stderr = (stderr + d.toString()).slice(-8000);
  });
  const exited = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
  result.stderr = () => stderr;

  const connection = createProtocolConnection(
    new StreamMessageReader(server.stdout),
    new StreamMessageWriter(server.stdin),
  );

  // What VS Code answers to server -> client requests.
  connection.onRequest(WorkDoneProgressCreateRequest.type, (p) => log('workDoneProgress/create', p));
  connection.onRequest(RegistrationRequest.type, (p) => log('registerCapability', p));
  connection.onRequest(UnregistrationRequest.type, (p) => log('unregisterCapability', p));
  connection.onRequest(ConfigurationRequest.type, (p) => p.items.map(() => null));
  connection.onRequest(ShowMessageRequest.type, (p) => (log('showMessageRequest', p), null));
  connection.onRequest(ShowDocumentRequest.type, (p) => (log('showDocument', p), { success: true }));
  connection.onRequest(ApplyWorkspaceEditRequest.type, (p) => (log('applyEdit', p), { applied: true }));
  connection.onNotification(LogMessageNotification.type, (p) => log('logMessage', p));
  connection.onNotification(ShowMessageNotification.type, (p) => log('showMessage', p));
  const statusEvents = [];
  connection.onNotification('lspLlm/statusChanged', (p) => statusEvents.push(p));
  connection.listen();

  // initialize with the extension's capabilities and settings.
  const capabilities = vscodeClientCapabilities();
  check('VS Code capabilities include inline completion', capabilities.textDocument.inlineCompletion);
  const init = await connection.sendRequest(InitializeRequest.type, {
    processId: process.pid,
    clientInfo: { name: 'Visual Studio Code', version: VSCODE_VERSION },
    locale: 'en',
    rootPath: root,
    rootUri: pathToFileURL(root).href,
    workspaceFolders: [{ uri: pathToFileURL(root).href, name: path.basename(root) }],
    capabilities,
    initializationOptions: USER_SETTINGS,
    trace: 'off',
  });
  result.serverInfo = init.serverInfo;
  const caps = init.capabilities;
  await section('capabilities', async () => {
    check('server announces inlineCompletionProvider', caps.inlineCompletionProvider, caps);
    check('server announces codeActionProvider with resolve', caps.codeActionProvider && caps.codeActionProvider.resolveProvider, caps);
  });
  await section('commands', async () => {
    const commands = (caps.executeCommandProvider && caps.executeCommandProvider.commands) || [];
    for (const name of ['lspLlm.explain', 'lspLlm.generateDocstring', 'lspLlm.reindex', 'lspLlm.status', 'lspLlm.didAccept']) {
      check(`server command ${name}`, commands.includes(name), commands);
    }
  });
  await connection.sendNotification(InitializedNotification.type, {});
  // The server pulls nothing; the extension pushes its settings.
  await connection.sendNotification(DidChangeConfigurationNotification.type, {
    settings: { lspLlm: USER_SETTINGS },
  });

  // Wait for the model, as the status bar does.
  let status;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    status = await connection.sendRequest('lspLlm/status', {});
    if (status.state !== 'loading') break;
    if (Date.now() > deadline) throw new Error(`model not ready: ${JSON.stringify(status)}`);
    await sleep(100);
  }
  check('model ready', status.state === 'ready', status);
  await section('status', async () => {
    for (const key of ['state', 'message', 'model', 'backend', 'device', 'dtype', 'queueDepth', 'index']) {
      check(`status has ${key}`, key in status, Object.keys(status));
    }
    check('lspLlm/statusChanged was sent', statusEvents.length > 0);
  });

  await connection.sendNotification(DidOpenTextDocumentNotification.type, {
    textDocument: { uri, languageId: 'python', version: 1, text: SOURCE },
  });

  await section('inline completion', async () => {
    // Inline completion at the end of `    return ` (VS Code's automatic trigger while typing).
    const inline = await connection.sendRequest(InlineCompletionRequest.type, {
      textDocument: { uri },
      position: { line: 8, character: 4 },
      context: { triggerKind: InlineCompletionTriggerKind.Automatic },
    });
    const items = Array.isArray(inline) ? inline : (inline && inline.items) || [];
    result.inline = items;
    check('inline completion returned an item', items.length > 0, inline);
    const item = items[0];
    check('item has insertText', typeof item.insertText === 'string' && item.insertText.length > 0, item);
    check('item command is lspLlm.didAccept', item.command && item.command.command === 'lspLlm.didAccept', item);
    // Accepting the ghost text runs the item's command through workspace/executeCommand.
    await connection.sendRequest(ExecuteCommandRequest.type, {
      command: item.command.command,
      arguments: item.command.arguments,
    });
  });

  // The `scale` function, lines 5-9.
  const explainRange = { start: { line: 4, character: 0 }, end: { line: 8, character: 17 } };

  await section('explain', async () => {
    // Explain with a partial result token: chunks arrive before the response.
    const chunks = [];
    let responded = false;
    const token = `explain-${process.pid}-1`;
    const partial = connection.onProgress(new ProgressType(), token, (value) => {
      chunks.push({ text: value.text, afterResponse: responded });
    });
    const explained = await connection.sendRequest('lspLlm/explain', {
      textDocument: { uri },
      range: explainRange,
      partialResultToken: token,
    });
    responded = true;
    partial.dispose();
    const streamed = chunks.map((c) => c.text).join('');
    result.explain = { chunks: chunks.length, streamed, final: explained };
    check('explain streamed at least one chunk', chunks.length > 0);
    check('every chunk is text', chunks.every((c) => typeof c.text === 'string'));
    check('no chunk after the response', chunks.every((c) => !c.afterResponse));
    check('explain result has text and finishReason', typeof explained.text === 'string' && typeof explained.finishReason === 'string', explained);
    check('the final text is the streamed text', explained.text.trim() === streamed.trim(), { streamed, final: explained.text });
  });

  await section('explain cancel', async () => {
    // Cancel an explanation after its first chunk; the partial text stays valid.
    const cancelChunks = [];
    const source = new CancellationTokenSource();
    const cancelToken = `explain-${process.pid}-2`;
    const cancelPartial = connection.onProgress(new ProgressType(), cancelToken, (value) => {
      cancelChunks.push(value.text);
      source.cancel();
    });
    let cancelOutcome;
    try {
      const r = await connection.sendRequest(
        'lspLlm/explain',
        { textDocument: { uri }, range: explainRange, partialResultToken: cancelToken },
        source.token,
      );
      cancelOutcome = { finished: true, finishReason: r.finishReason };
    } catch (error) {
      cancelOutcome = { code: error instanceof ResponseError ? error.code : String(error) };
    }
    cancelPartial.dispose();
    result.cancel = { chunks: cancelChunks.length, outcome: cancelOutcome };
    check('cancelled explain streamed first', cancelChunks.length > 0);
    check(
      'cancelled explain answered -32800 (or had already finished)',
      cancelOutcome.code === LSPErrorCodes.RequestCancelled || cancelOutcome.finished,
      cancelOutcome,
    );
  });

  await section('docstring', async () => {
    // Docstring: the extension applies the returned WorkspaceEdit itself.
    const doc = await connection.sendRequest('lspLlm/docstring', {
      textDocument: { uri },
      position: { line: 4, character: 6 },
    });
    result.docstring = doc;
    check('docstring result has text', typeof doc.text === 'string' && doc.text.trim().length > 0, doc);
    const edits = (doc.edit && ((doc.edit.changes && doc.edit.changes[uri]) ||
      (doc.edit.documentChanges || []).filter((c) => c.textDocument && c.textDocument.uri === uri).flatMap((c) => c.edits))) || [];
    check('docstring edit targets the document', edits.length > 0, doc.edit);
  });

  await section('status command', async () => {
    // "LSP-LLM: Show Status" through the server command as well.
    const viaCommand = await connection.sendRequest(ExecuteCommandRequest.type, { command: 'lspLlm.status', arguments: [] });
    check('lspLlm.status command returns the status', viaCommand && viaCommand.state === 'ready', viaCommand);
  });

  await connection.sendRequest(ShutdownRequest.type);
  await connection.sendNotification(ExitNotification.type);
  const exit = await Promise.race([exited, sleep(10_000).then(() => ({ code: 'timeout' }))]);
  check('server exits 0 after shutdown/exit', exit.code === 0, exit);
  connection.dispose();
  const failed = result.checks.filter((c) => !c.ok).map((c) => c.name);
  if (failed.length) {
    throw new Error(`${failed.length} check(s) failed:\n  ${failed.join('\n  ')}`);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function write() {
  if (!result.outPath) return;
  const stderr = typeof result.stderr === 'function' ? result.stderr() : undefined;
  fs.writeFileSync(result.outPath, JSON.stringify({ ...result, stderr }, null, 2));
}

const TOTAL_TIMEOUT_MS = Number(process.env.LSP_LLM_TEST_TIMEOUT_MS || 280_000);
setTimeout(() => {
  result.error = `timed out after ${TOTAL_TIMEOUT_MS} ms`;
  write();
  process.stderr.write(result.error + '\n');
  process.exit(2);
}, TOTAL_TIMEOUT_MS).unref();

main().then(
  () => {
    result.ok = true;
    write();
    process.exit(0);
  },
  (error) => {
    result.error = String(error && error.stack ? error.stack : error);
    write();
    process.stderr.write(result.error + '\n');
    process.exit(1);
  },
);
