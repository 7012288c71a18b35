// The status-bar item: the model's state, and loading or indexing progress.

import * as vscode from 'vscode';
import { ServerStatus } from './protocol';

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private last: ServerStatus | undefined;

  constructor() {
    this.item = vscode.window.createStatusBarItem('lsp-llm.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'LSP-LLM';
    this.item.command = 'lsp-llm.showStatus';
    this.showText('$(loading~spin) LSP-LLM', 'Starting the lsp-llm server…');
    this.item.show();
  }

  get status(): ServerStatus | undefined {
    return this.last;
  }

  /** Shown before the server answers, or when the connection is gone. */
  showText(text: string, tooltip: string, error = false): void {
    this.item.text = text;
    this.item.tooltip = tooltip;
    this.item.backgroundColor = error ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  update(status: ServerStatus): void {
    this.last = status;
    const model = status.model ? shortModelName(status.model) : 'model';
    const indexing = status.index?.state === 'indexing' || status.index?.state === 'scanning';
    let text: string;
    switch (status.state) {
      case 'loading':
        text = `$(loading~spin) LSP-LLM: loading ${model}`;
        break;
      case 'error':
        text = `$(error) LSP-LLM: ${model}`;
        break;
      default:
        text = indexing ? `$(sync~spin) LSP-LLM: ${model} (indexing)` : `$(sparkle) LSP-LLM: ${model}`;
    }
    const lines = [
      `**LSP-LLM** — ${status.state}${status.message ? `: ${status.message}` : ''}`,
      '',
      `model: \`${status.model ?? '?'}\``,
      `backend: ${status.backend ?? '?'}, device: ${status.device ?? '?'}, dtype: ${status.dtype ?? '?'}`,
      `queue: ${status.queueDepth ?? 0}`,
      `index: ${status.index?.state ?? '?'} (${status.index?.files ?? 0} files, ${status.index?.symbols ?? 0} symbols)`,
    ];
    this.item.text = text;
    this.item.tooltip = new vscode.MarkdownString(lines.join('\n\n'));
    this.item.backgroundColor =
      status.state === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}

function shortModelName(model: string): string {
  const parts = model.split(/[\\/]/).filter(Boolean);
  return parts[parts.length - 1] ?? model;
}
