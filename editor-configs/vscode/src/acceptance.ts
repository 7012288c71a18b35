// Shown and accepted signals for lsp-llm's inline suggestions (ghost text).
//
// The extension targets the stable VS Code API (engines ^1.91), where an inline completion
// provider is not told when VS Code displays an item or accepts part of it
// (`handleDidShowCompletionItem` / `handleDidPartiallyAcceptCompletionItem` are proposed API,
// `inlineCompletionsAdditions`, closed to published extensions). So:
//
// - didShow: `lspLlm/didShow` `{ id }` is sent when the provider hands VS Code an answer to
//   display: for its first item (the one VS Code shows unless the user cycles), once per
//   suggestion id. The server counts it as "displayed" (its "shown" means it answered).
// - full accept: each item's command becomes `lsp-llm.inlineAccepted`, which VS Code runs after
//   inserting the item; it sends the server's `lspLlm.didAccept` with `{ id, kind: 'full',
//   acceptedText, uri, position }` (the text less what partial accepts took, and where it went).
// - partial accept: `lsp-llm.acceptNextWord` (Ctrl+Right / Cmd+Right while a suggestion is
//   visible, like the built-in) and `lsp-llm.acceptNextLine` (unbound, like the built-in) run
//   VS Code's own `editor.action.inlineSuggest.acceptNextWord` / `acceptNextLine`, read the
//   text it inserted from the document change, and send `lspLlm.didAccept` with kind `word` /
//   `line` and that text.
//
// The server looks for each accepted text again 30 s later (retained characters, kept local).

import * as vscode from 'vscode';
import { ExecuteCommandRequest, LanguageClient } from 'vscode-languageclient/node';
import { DidShowNotification, SERVER_COMMANDS } from './protocol';

export const INLINE_ACCEPTED_COMMAND = 'lsp-llm.inlineAccepted';
export const ACCEPT_NEXT_WORD_COMMAND = 'lsp-llm.acceptNextWord';
export const ACCEPT_NEXT_LINE_COMMAND = 'lsp-llm.acceptNextLine';

const BUILTIN_PARTIAL = {
  word: 'editor.action.inlineSuggest.acceptNextWord',
  line: 'editor.action.inlineSuggest.acceptNextLine',
} as const;

type AcceptKind = 'full' | 'word' | 'line';

/** The `next` of the client's inline-completion middleware (vscode-languageclient's
 * `ProvideInlineCompletionItemsSignature`, which its entry point does not export). */
type ProvideInlineCompletionItems = (
  document: vscode.TextDocument,
  position: vscode.Position,
  context: vscode.InlineCompletionContext,
  token: vscode.CancellationToken,
) => vscode.ProviderResult<vscode.InlineCompletionItem[] | vscode.InlineCompletionList>;

/** One suggestion as handed to VS Code: its id, text, document and where it goes. */
interface Offer {
  id: string;
  text: string;
  uri: string;
  line: number;
  character: number;
}

function suggestionId(command: vscode.Command | undefined): string | undefined {
  if (!command || command.command !== SERVER_COMMANDS.didAccept) {
    return undefined;
  }
  const arg: unknown = command.arguments?.[0];
  if (arg && typeof arg === 'object' && typeof (arg as { id?: unknown }).id === 'string') {
    return (arg as { id: string }).id;
  }
  return undefined;
}

export class Acceptance {
  /** Per document: the offers of the latest answer. */
  private readonly latest = new Map<string, Offer[]>();
  /** Per suggestion id: the text partial accepts have taken of it so far. */
  private readonly taken = new Map<string, string>();
  private lastShown: string | undefined;

  constructor(
    private readonly client: () => LanguageClient | undefined,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  /** The commands and nothing else; the middleware goes into the client options. */
  register(): vscode.Disposable[] {
    return [
      vscode.commands.registerCommand(INLINE_ACCEPTED_COMMAND, (offer: Offer) => this.accepted(offer)),
      vscode.commands.registerCommand(ACCEPT_NEXT_WORD_COMMAND, () => this.acceptPart('word')),
      vscode.commands.registerCommand(ACCEPT_NEXT_LINE_COMMAND, () => this.acceptPart('line')),
    ];
  }

  /** `middleware.provideInlineCompletionItems`: remember the answer, report it shown, and
   * route each item's accept through {@link INLINE_ACCEPTED_COMMAND}. */
  readonly provideInlineCompletionItems = async (
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
    next: ProvideInlineCompletionItems,
  ): Promise<vscode.InlineCompletionItem[] | vscode.InlineCompletionList | null | undefined> => {
    const result = await next(document, position, context, token);
    if (!result || token.isCancellationRequested) {
      return result;
    }
    const items = Array.isArray(result) ? result : result.items;
    const uri = document.uri.toString();
    const offers: Offer[] = [];
    for (const item of items) {
      const id = suggestionId(item.command);
      if (id === undefined || typeof item.insertText !== 'string') {
        continue;
      }
      const start = item.range?.start ?? position;
      const offer: Offer = { id, text: item.insertText, uri, line: start.line, character: start.character };
      offers.push(offer);
      item.command = { title: item.command?.title ?? 'accepted', command: INLINE_ACCEPTED_COMMAND, arguments: [offer] };
    }
    this.latest.set(uri, offers);
    if (offers.length > 0) {
      this.didShow(offers[0].id);
    }
    return result;
  };

  private didShow(id: string): void {
    if (id === this.lastShown) {
      return;
    }
    this.lastShown = id;
    void this.client()?.sendNotification(DidShowNotification, { id });
  }

  /** VS Code inserted `offer` whole (or, after partial accepts, the rest of it). */
  private async accepted(offer: Offer): Promise<void> {
    const taken = this.taken.get(offer.id) ?? '';
    this.taken.delete(offer.id);
    let text = offer.text;
    let start = new vscode.Position(offer.line, offer.character);
    const document = vscode.workspace.textDocuments.find((d) => d.uri.toString() === offer.uri);
    if (taken && document && offer.text.startsWith(taken)) {
      text = offer.text.slice(taken.length);
      start = document.positionAt(document.offsetAt(start) + taken.length);
    }
    await this.send(offer.id, 'full', text, offer.uri, start);
  }

  /** Runs VS Code's partial accept and reports the text it inserted. */
  private async acceptPart(kind: 'word' | 'line'): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      await vscode.commands.executeCommand(BUILTIN_PARTIAL[kind]);
      return;
    }
    const document = editor.document;
    const changes: vscode.TextDocumentContentChangeEvent[] = [];
    const listener = vscode.workspace.onDidChangeTextDocument((event) => {
      if (event.document === document) {
        changes.push(...event.contentChanges);
      }
    });
    try {
      await vscode.commands.executeCommand(BUILTIN_PARTIAL[kind]);
    } finally {
      listener.dispose();
    }
    const inserted = changes.filter((c) => c.text.length > 0);
    if (inserted.length !== 1) {
      return; // nothing was visible to accept (or an edit we cannot attribute)
    }
    const change = inserted[0];
    const uri = document.uri.toString();
    const offers = this.latest.get(uri) ?? [];
    const offer = offers.find((o) => o.text.includes(change.text)) ?? offers[0];
    if (!offer) {
      return;
    }
    const taken = this.taken.get(offer.id) ?? '';
    if (offer.text.startsWith(taken + change.text)) {
      this.taken.set(offer.id, taken + change.text);
    }
    await this.send(offer.id, kind, change.text, uri, change.range.start);
  }

  private async send(id: string, kind: AcceptKind, acceptedText: string, uri: string, start: vscode.Position): Promise<void> {
    const client = this.client();
    if (!client) {
      return;
    }
    const args = { id, kind, acceptedText, uri, position: { line: start.line, character: start.character } };
    try {
      await client.sendRequest(ExecuteCommandRequest.type, { command: SERVER_COMMANDS.didAccept, arguments: [args] });
    } catch (err) {
      this.log.warn(`lspLlm.didAccept failed: ${String(err)}`);
    }
  }
}
