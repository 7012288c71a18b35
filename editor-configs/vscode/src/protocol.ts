// The lsp-llm server's custom protocol, typed once for the extension.
// See the server's documentation for the full contract.

import {
  ProgressType,
  RequestType,
  NotificationType,
  Position,
  Range,
  TextDocumentIdentifier,
  WorkspaceEdit,
  PartialResultParams,
  WorkDoneProgressParams,
} from 'vscode-languageclient/node';

/** Settings the server understands (camelCase on the wire). */
export const MODEL_SETTINGS = [
  'model',
  'backend',
  'device',
  'dtype',
  'maxNewTokens',
  'contextWindow',
  'temperature',
  'debounceMs',
  'numSuggestions',
  'endpoint',
  'apiKeyEnv',
  'docstringStyle',
  'retrieval',
] as const;

export type ModelSettingName = (typeof MODEL_SETTINGS)[number];
export type ModelSettings = Partial<Record<ModelSettingName, unknown>>;

export interface ExplainParams extends PartialResultParams, WorkDoneProgressParams {
  textDocument: TextDocumentIdentifier;
  range: Range;
}

export interface ExplainResult {
  text: string;
  finishReason: string;
}

/** One `$/progress` value for an `lspLlm/explain` partial result token: text to append. */
export interface TextChunk {
  text: string;
}

export interface DocstringParams extends PartialResultParams {
  textDocument: TextDocumentIdentifier;
  position: Position;
}

export interface DocstringResult {
  edit: WorkspaceEdit;
  text: string;
}

export type ServerState = 'loading' | 'ready' | 'error';

export interface ServerStatus {
  state: ServerState;
  message?: string;
  model?: string;
  backend?: string;
  device?: string;
  dtype?: string;
  queueDepth?: number;
  index?: { state?: string; files?: number; symbols?: number };
  lastRequest?: Record<string, unknown>;
}

export const ExplainRequest = new RequestType<ExplainParams, ExplainResult, void>('lspLlm/explain');
export const DocstringRequest = new RequestType<DocstringParams, DocstringResult, void>('lspLlm/docstring');
/** `lspLlm/status` takes an empty object as params. */
export const StatusRequest = new RequestType<Record<string, never>, ServerStatus, void>('lspLlm/status');
export const StatusChangedNotification = new NotificationType<ServerStatus>('lspLlm/statusChanged');
/** The client displayed this suggestion (its id from the item's `lspLlm.didAccept` command). */
export const DidShowNotification = new NotificationType<{ id: string }>('lspLlm/didShow');
export const TextChunkProgress = new ProgressType<TextChunk>();

/** Commands the server registers through `workspace/executeCommand`. */
export const SERVER_COMMANDS = {
  explain: 'lspLlm.explain',
  generateDocstring: 'lspLlm.generateDocstring',
  reindex: 'lspLlm.reindex',
  status: 'lspLlm.status',
  didAccept: 'lspLlm.didAccept',
} as const;
