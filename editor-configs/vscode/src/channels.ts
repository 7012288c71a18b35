// Output channels: server stderr at its own log levels, and a trace channel that shows
// the JSON-RPC traffic whenever `lspLlm.trace.server` is on.

import * as readline from 'node:readline';
import type * as stream from 'node:stream';
import * as vscode from 'vscode';
import { levelTracker } from './serverlog';

/** `stdioOptions` for the language client: stdout is the protocol, stderr is the server's log. */
export function serverStdio(): {
  stdout: (input: stream.Readable, output: vscode.LogOutputChannel) => void;
  stderr: (input: stream.Readable, output: vscode.LogOutputChannel) => void;
} {
  const lines = (input: stream.Readable, onLine: (line: string) => void): void => {
    readline
      .createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 })
      .on('line', onLine);
  };
  return {
    stdout: (input, output) => lines(input, (line) => output.info(line)),
    stderr: (input, output) => {
      const levelOf = levelTracker();
      lines(input, (line) => output[levelOf(line)](line));
    },
  };
}

function traceSetting(): string {
  return vscode.workspace.getConfiguration('lspLlm').get<string>('trace.server', 'off');
}

/**
 * A LogOutputChannel for the client's `traceOutputChannel` that writes into a plain
 * "LSP-LLM Trace" channel. vscode-languageclient traces only while the trace channel's
 * log level is Trace; this channel reports Trace whenever `lspLlm.trace.server` is not
 * "off", so the setting alone turns tracing on.
 */
export function traceChannel(): vscode.LogOutputChannel {
  const plain = vscode.window.createOutputChannel('LSP-LLM Trace');
  const levelChanged = new vscode.EventEmitter<vscode.LogLevel>();
  const level = (): vscode.LogLevel =>
    traceSetting() === 'off' ? vscode.LogLevel.Info : vscode.LogLevel.Trace;
  const configListener = vscode.workspace.onDidChangeConfiguration((event) => {
    if (event.affectsConfiguration('lspLlm.trace.server')) {
      levelChanged.fire(level());
    }
  });
  const write = (tag: string) => (message: string | Error) =>
    plain.appendLine(`[${new Date().toISOString()}] [${tag}] ${message instanceof Error ? message.message : message}`);
  return {
    name: plain.name,
    get logLevel() {
      return level();
    },
    onDidChangeLogLevel: levelChanged.event,
    trace: write('trace'),
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    append: (value: string) => plain.append(value),
    appendLine: (value: string) => plain.appendLine(value),
    replace: (value: string) => plain.replace(value),
    clear: () => plain.clear(),
    show: (columnOrPreserve?: vscode.ViewColumn | boolean, preserveFocus?: boolean) =>
      typeof columnOrPreserve === 'boolean' || columnOrPreserve === undefined
        ? plain.show(columnOrPreserve)
        : plain.show(columnOrPreserve, preserveFocus),
    hide: () => plain.hide(),
    dispose: () => {
      configListener.dispose();
      levelChanged.dispose();
      plain.dispose();
    },
  };
}
