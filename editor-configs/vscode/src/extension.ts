// LSP-LLM for VS Code: starts (or connects to) the lsp-llm language server and wires
// its custom requests to commands, a streamed explanation view and a status-bar item.
//
// Inline completions (ghost text): vscode-languageclient 11 implements LSP 3.18
// `textDocument/inlineCompletion` and registers the provider when the server announces it.
// acceptance.ts adds, through the client's middleware, the shown / accepted signals (didShow,
// full and partial accepts by word or line) that the server's acceptance stats count.

import * as net from 'node:net';
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
  StreamInfo,
} from 'vscode-languageclient/node';
import { Acceptance } from './acceptance';
import { serverStdio, traceChannel } from './channels';
import { EXPLAIN_SCHEME, ExplanationDocuments, explainSelection } from './explain';
import { DocstringRequest, SERVER_COMMANDS, StatusChangedNotification, StatusRequest } from './protocol';
import {
  SECTION,
  ServerLaunch,
  ServerNotFoundError,
  affectsModelSettings,
  affectsServerLaunch,
  readModelSettings,
  readServerLaunch,
} from './settings';
import { StatusBar } from './status';

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
let trace: vscode.LogOutputChannel;
let statusBar: StatusBar;
let acceptance: Acceptance;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel('LSP-LLM', { log: true });
  trace = traceChannel();
  statusBar = new StatusBar();
  const explanations = new ExplanationDocuments();
  acceptance = new Acceptance(() => client, output);
  context.subscriptions.push(
    output,
    trace,
    statusBar,
    explanations,
    ...acceptance.register(),
    vscode.workspace.registerTextDocumentContentProvider(EXPLAIN_SCHEME, explanations),
    // Client-side command ids use "lsp-llm." so they never clash with the server's
    // "lspLlm.*" commands, which the language client registers itself.
    vscode.commands.registerTextEditorCommand('lsp-llm.explainSelection', (editor) =>
      run('explain', (c) => explainSelection(c, explanations, editor)),
    ),
    vscode.commands.registerTextEditorCommand('lsp-llm.generateDocstring', (editor) =>
      run('docstring', (c) => generateDocstring(c, editor)),
    ),
    vscode.commands.registerCommand('lsp-llm.showStatus', () => run('status', showStatus)),
    vscode.commands.registerCommand('lsp-llm.reindexWorkspace', () => run('reindex', reindex)),
    vscode.commands.registerCommand('lsp-llm.restartServer', () => restart()),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (affectsServerLaunch(event)) {
        await restart();
      } else if (affectsModelSettings(event) && client?.state === State.Running) {
        // The server pulls nothing: push the new settings.
        await client.sendNotification(DidChangeConfigurationNotification.type, {
          settings: { [SECTION]: readModelSettings() },
        });
      }
    }),
  );
  await start();
}

export async function deactivate(): Promise<void> {
  await stop();
}

async function start(): Promise<void> {
  let launch: ServerLaunch;
  try {
    launch = readServerLaunch();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    statusBar.showText('$(error) LSP-LLM: no server', message, true);
    output.error(message);
    if (error instanceof ServerNotFoundError) {
      void offerFix(message);
    } else {
      void vscode.window.showErrorMessage(message);
    }
    return;
  }
  output.info(`Starting ${describe(launch)}`);
  const clientOptions: LanguageClientOptions = {
    // Every file in every language, saved or not.
    documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
    initializationOptions: readModelSettings(),
    outputChannel: output,
    traceOutputChannel: trace,
    // Server log lines at their own level (the client would mark every stderr line [error]).
    stdioOptions: serverStdio(),
    middleware: { provideInlineCompletionItems: acceptance.provideInlineCompletionItems },
  };
  const newClient = new LanguageClient('lspLlm', 'LSP-LLM', serverOptions(launch), clientOptions);
  newClient.onDidChangeState((event) => {
    if (event.newState === State.Stopped) {
      statusBar.showText('$(debug-disconnect) LSP-LLM', 'The lsp-llm server is not running. Click for status.', true);
    }
  });
  // Registered before start so no status sent during start-up is missed.
  newClient.onNotification(StatusChangedNotification, (status) => statusBar.update(status));
  client = newClient;
  statusBar.showText('$(loading~spin) LSP-LLM', describe(launch));
  try {
    await newClient.start();
  } catch (error) {
    statusBar.showText('$(error) LSP-LLM', `Could not start: ${String(error)}`, true);
    output.error(`Could not start the server (${describe(launch)}): ${String(error)}`);
    return;
  }
  try {
    statusBar.update(await newClient.sendRequest(StatusRequest, {}));
  } catch (error) {
    output.warn(`lspLlm/status failed: ${String(error)}`);
  }
}

async function stop(): Promise<void> {
  const old = client;
  client = undefined;
  if (old) {
    try {
      await old.stop();
    } catch (error) {
      output.warn(`Stopping the server failed: ${String(error)}`);
    }
    await old.dispose();
  }
}

async function restart(): Promise<void> {
  await stop();
  await start();
}

function serverOptions(launch: ServerLaunch): ServerOptions {
  if (launch.kind === 'stdio') {
    // No `transport` on purpose: TransportKind.stdio would append another "--stdio".
    return { command: launch.command, args: launch.args };
  }
  // A shared daemon (`lsp-llm serve --tcp`): one socket per window.
  return () =>
    new Promise<StreamInfo>((resolve, reject) => {
      const socket = net.connect({ host: launch.host, port: launch.port });
      socket.once('connect', () => resolve({ reader: socket, writer: socket }));
      socket.once('error', reject);
    });
}

function describe(launch: ServerLaunch): string {
  return launch.kind === 'stdio'
    ? `${launch.command} ${launch.args.join(' ')} (from ${launch.source})`
    : `TCP daemon at ${launch.host}:${launch.port}`;
}

/** The one message shown when there is no server to start, with the ways to fix it. */
async function offerFix(message: string): Promise<void> {
  const openSettings = 'Open User Settings';
  const retry = 'Retry';
  const choice = await vscode.window.showErrorMessage(message, openSettings, retry);
  if (choice === openSettings) {
    await vscode.commands.executeCommand('workbench.action.openSettings', 'lspLlm.server.command');
  } else if (choice === retry) {
    await restart();
  }
}

/** Runs a command against the running client and reports failures once. */
async function run(what: string, action: (c: LanguageClient) => Promise<void>): Promise<void> {
  if (!client || client.state !== State.Running) {
    void vscode.window.showWarningMessage('LSP-LLM: the server is not running (try "LSP-LLM: Restart Server").');
    return;
  }
  try {
    await action(client);
  } catch (error) {
    output.error(`${what} failed: ${String(error)}`);
    void vscode.window.showErrorMessage(`LSP-LLM ${what} failed: ${String(error)}`);
  }
}

async function generateDocstring(c: LanguageClient, editor: vscode.TextEditor): Promise<void> {
  const version = editor.document.version;
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Window, title: 'LSP-LLM: writing a docstring…' },
    () =>
      c.sendRequest(DocstringRequest, {
        textDocument: { uri: c.code2ProtocolConverter.asUri(editor.document.uri) },
        position: c.code2ProtocolConverter.asPosition(editor.selection.active),
      }),
  );
  if (editor.document.version !== version) {
    void vscode.window.showInformationMessage('LSP-LLM: the file changed while the docstring was written; not applied.');
    return;
  }
  const applied = await vscode.workspace.applyEdit(await c.protocol2CodeConverter.asWorkspaceEdit(result.edit));
  if (!applied) {
    throw new Error('the editor refused the edit');
  }
}

async function showStatus(c: LanguageClient): Promise<void> {
  const status = await c.sendRequest(StatusRequest, {});
  statusBar.update(status);
  output.info(`status: ${JSON.stringify(status, undefined, 2)}`);
  output.show(true);
}

async function reindex(c: LanguageClient): Promise<void> {
  await c.sendRequest(ExecuteCommandRequest.type, { command: SERVER_COMMANDS.reindex, arguments: [] });
  void vscode.window.setStatusBarMessage('LSP-LLM: reindexing the workspace…', 3000);
}
