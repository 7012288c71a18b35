// Finding the server executable the way users expect: the configured command, then
// the workspace's virtual environment, then PATH. No `vscode` import, so it is
// tested from plain Node (tests/editors/test_vscode.py).

import * as fs from 'node:fs';
import * as path from 'node:path';

export const SERVER_NAME = 'lsp-llm';
/** Virtual-environment folders looked for in each workspace folder, in this order. */
export const VENV_DIRS = ['.venv', 'venv', 'env'];

export interface Found {
  command: string;
  /** Where it came from, for the status tooltip and the log. */
  source: 'setting' | 'workspace venv' | 'PATH';
}

export interface NotFound {
  /** One message that says what was looked for and how to fix it. */
  message: string;
}

export interface Environment {
  platform: NodeJS.Platform;
  /** The PATH the server would be spawned with. */
  pathEnv: string;
  /** PATHEXT on Windows. */
  pathExt?: string;
}

function isExecutable(file: string, env: Environment): boolean {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) {
      return false;
    }
    if (env.platform === 'win32') {
      return true;
    }
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function candidates(base: string, env: Environment): string[] {
  if (env.platform !== 'win32' || path.extname(base)) {
    return [base];
  }
  const exts = (env.pathExt ?? '.EXE;.CMD;.BAT').split(';').filter(Boolean);
  return [base, ...exts.map((ext) => base + ext.toLowerCase())];
}

/** The first executable `name` on `env.pathEnv`, or undefined. */
export function which(name: string, env: Environment): string | undefined {
  const sep = env.platform === 'win32' ? ';' : ':';
  for (const dir of env.pathEnv.split(sep)) {
    if (!dir) {
      continue;
    }
    for (const file of candidates(path.join(dir, name), env)) {
      if (isExecutable(file, env)) {
        return file;
      }
    }
  }
  return undefined;
}

/** `lsp-llm` inside a virtual environment of one of the workspace folders. */
export function venvServer(folders: readonly string[], env: Environment): string | undefined {
  const bin = env.platform === 'win32' ? 'Scripts' : 'bin';
  for (const folder of folders) {
    for (const venv of VENV_DIRS) {
      for (const file of candidates(path.join(folder, venv, bin, SERVER_NAME), env)) {
        if (isExecutable(file, env)) {
          return file;
        }
      }
    }
  }
  return undefined;
}

export const FIX =
  'Install it with `pip install lsp-llm` (into the workspace\'s .venv, or anywhere on PATH), ' +
  'or set "lspLlm.server.command" to its full path in your User settings ' +
  '(in a remote window, the User settings apply too).';

/**
 * The server to start. `configured` is `lspLlm.server.command` ('' when unset).
 * A configured name without a path separator is looked up on PATH; a path must exist.
 */
export function findServer(
  configured: string,
  folders: readonly string[],
  env: Environment,
): Found | NotFound {
  const wanted = configured.trim();
  if (wanted) {
    const hasDir = wanted.includes('/') || (env.platform === 'win32' && wanted.includes('\\'));
    const resolved = hasDir ? (isExecutable(wanted, env) ? wanted : undefined) : which(wanted, env);
    if (resolved) {
      return { command: resolved, source: 'setting' };
    }
    return {
      message:
        `LSP-LLM: "lspLlm.server.command" is "${wanted}", which is not an executable ` +
        `${hasDir ? 'file' : 'on PATH'}. ${FIX}`,
    };
  }
  const inVenv = venvServer(folders, env);
  if (inVenv) {
    return { command: inVenv, source: 'workspace venv' };
  }
  const onPath = which(SERVER_NAME, env);
  if (onPath) {
    return { command: onPath, source: 'PATH' };
  }
  const looked = VENV_DIRS.map((v) => `${v}/`).join(', ');
  return {
    message: `LSP-LLM: the lsp-llm server was not found (looked in the workspace's ${looked} and on PATH). ${FIX}`,
  };
}
