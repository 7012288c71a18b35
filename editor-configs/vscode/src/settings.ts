// Reading the extension's settings: how to reach the server, and what to tell it.

import * as vscode from 'vscode';
import { Found, findServer } from './discover';
import { MODEL_SETTINGS, ModelSettings } from './protocol';

export const SECTION = 'lspLlm';

/** How to reach the server: a command to spawn (stdio), or a TCP daemon. */
export type ServerLaunch =
  | { kind: 'stdio'; command: string; args: string[]; source: Found['source'] }
  | { kind: 'tcp'; host: string; port: number };

/** No server to start: the message says where we looked and how to fix it. */
export class ServerNotFoundError extends Error {}

/**
 * How to reach the server. The `lspLlm.server.*` settings have `window` scope, so User
 * settings apply in local and remote windows alike (a `machine-overridable` setting is
 * not read from User settings in a remote window). In an untrusted workspace VS Code
 * ignores workspace values of these settings (`restrictedConfigurations`).
 */
export function readServerLaunch(): ServerLaunch {
  const config = vscode.workspace.getConfiguration(SECTION);
  const tcp = config.get<string>('server.tcp', '').trim();
  if (tcp) {
    return { kind: 'tcp', ...parseHostPort(tcp) };
  }
  const folders = (vscode.workspace.workspaceFolders ?? [])
    .filter((folder) => folder.uri.scheme === 'file')
    .map((folder) => folder.uri.fsPath);
  const found = findServer(config.get<string>('server.command', '') ?? '', folders, {
    platform: process.platform,
    pathEnv: process.env.PATH ?? '',
    pathExt: process.env.PATHEXT,
  });
  if ('message' in found) {
    throw new ServerNotFoundError(found.message);
  }
  return {
    kind: 'stdio',
    command: found.command,
    source: found.source,
    args: config.get<string[]>('server.args', ['serve', '--stdio']),
  };
}

/** Parses `host:port`, `[::1]:port` or a bare `port` (host 127.0.0.1). */
export function parseHostPort(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value) ?? /^()()(\d+)$/.exec(value);
  const port = match ? Number(match[3]) : NaN;
  if (!match || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`lspLlm.server.tcp must be "host:port", got "${value}"`);
  }
  return { host: match[1] || match[2] || '127.0.0.1', port };
}

/**
 * The model settings the user actually set (user, workspace or folder scope).
 *
 * Defaults are left out on purpose: the server has its own defaults and reads
 * `.lsp-llm.toml` and the user config file, and an extension default would
 * silently override those.
 */
export function readModelSettings(): ModelSettings {
  const config = vscode.workspace.getConfiguration(SECTION);
  const settings: ModelSettings = {};
  for (const name of MODEL_SETTINGS) {
    const inspected = config.inspect(name);
    const value =
      inspected?.workspaceFolderValue ?? inspected?.workspaceValue ?? inspected?.globalValue;
    if (value !== undefined) {
      settings[name] = value;
    }
  }
  return settings;
}

export function affectsServerLaunch(event: vscode.ConfigurationChangeEvent): boolean {
  return event.affectsConfiguration(`${SECTION}.server`);
}

export function affectsModelSettings(event: vscode.ConfigurationChangeEvent): boolean {
  return MODEL_SETTINGS.some((name) => event.affectsConfiguration(`${SECTION}.${name}`));
}
