// "Explain Selection": a read-only markdown document beside the editor that fills
// as `lspLlm/explain` partial results arrive.
//
// The request carries a partialResultToken; the server sends `$/progress`
// {token, value: {text}} chunks to append, in order, and the final response holds
// the full text (which then replaces what was streamed). Cancelling (the
// notification's Cancel button, or closing the document) sends `$/cancelRequest`;
// the text streamed so far stays.

import * as vscode from 'vscode';
import { LanguageClient, LSPErrorCodes, ResponseError } from 'vscode-languageclient/node';
import { ExplainRequest, TextChunkProgress } from './protocol';

export const EXPLAIN_SCHEME = 'lsp-llm-explain';

/** Virtual documents `lsp-llm-explain:/…md` whose content the extension updates in place. */
export class ExplanationDocuments implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly texts = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? '';
  }

  set(uri: vscode.Uri, text: string): void {
    this.texts.set(uri.toString(), text);
    this.changed.fire(uri);
  }

  forget(uri: vscode.Uri): void {
    this.texts.delete(uri.toString());
  }

  dispose(): void {
    this.changed.dispose();
    this.texts.clear();
  }
}

let counter = 0;

export async function explainSelection(
  client: LanguageClient,
  documents: ExplanationDocuments,
  editor: vscode.TextEditor,
): Promise<void> {
  const document = editor.document;
  // An empty selection explains the current line.
  const selection = editor.selection.isEmpty ? document.lineAt(editor.selection.active.line).range : editor.selection;
  counter += 1;
  const name = document.uri.path.split('/').pop() ?? 'selection';
  const uri = vscode.Uri.from({ scheme: EXPLAIN_SCHEME, path: `/Explanation ${counter} - ${name}.md` });
  const header = `# ${name}, lines ${selection.start.line + 1}–${selection.end.line + 1}\n\n`;

  let streamed = '';
  documents.set(uri, `${header}_Waiting for the model…_\n`);
  await vscode.window.showTextDocument(uri, {
    viewColumn: vscode.ViewColumn.Beside,
    preserveFocus: true,
    preview: true,
  });

  const partialResultToken = `lsp-llm-explain-${process.pid}-${Date.now()}-${counter}`;
  const progress = client.onProgress(TextChunkProgress, partialResultToken, (chunk) => {
    streamed += chunk.text;
    documents.set(uri, header + streamed);
  });
  const cancellation = new vscode.CancellationTokenSource();
  const closed = vscode.workspace.onDidCloseTextDocument((closedDocument) => {
    if (closedDocument.uri.toString() === uri.toString()) {
      cancellation.cancel();
      documents.forget(uri);
    }
  });

  try {
    await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'LSP-LLM: explaining…', cancellable: true },
      async (_progress, token) => {
        token.onCancellationRequested(() => cancellation.cancel());
        try {
          const result = await client.sendRequest(
            ExplainRequest,
            {
              textDocument: { uri: client.code2ProtocolConverter.asUri(document.uri) },
              range: client.code2ProtocolConverter.asRange(selection),
              partialResultToken,
            },
            cancellation.token,
          );
          const note = result.finishReason === 'length' ? '\n\n_(stopped at the token limit)_\n' : '\n';
          documents.set(uri, header + result.text + note);
        } catch (error) {
          if (isCancellation(error)) {
            documents.set(uri, `${header}${streamed}\n\n_(cancelled)_\n`);
            return;
          }
          documents.set(uri, `${header}${streamed}\n\n**Error:** ${String(error)}\n`);
          throw error;
        }
      },
    );
  } finally {
    progress.dispose();
    closed.dispose();
    cancellation.dispose();
  }
}

function isCancellation(error: unknown): boolean {
  return (
    error instanceof vscode.CancellationError ||
    (error instanceof ResponseError && error.code === LSPErrorCodes.RequestCancelled)
  );
}
