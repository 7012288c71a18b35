// The server's stderr, line by line, at the level the server logged it.
//
// `lsp-llm` logs "HH:MM:SS LEVEL logger: message" (Python logging). vscode-languageclient
// writes every stderr line as [error]; this maps each line to its own level instead.
// Lines without a level (tracebacks, continuation lines) keep the level of the line
// before them. No `vscode` import, so it is tested from plain Node.

export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';

const LEVELS: Record<string, Level> = {
  DEBUG: 'debug',
  INFO: 'info',
  WARNING: 'warn',
  WARN: 'warn',
  ERROR: 'error',
  CRITICAL: 'error',
  FATAL: 'error',
};

const LINE = /^(?:\d{4}-\d{2}-\d{2}[ T])?\d{2}:\d{2}:\d{2}(?:[.,]\d+)? +(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b/;

/** Returns a function that gives each successive stderr line its level. */
export function levelTracker(initial: Level = 'info'): (line: string) => Level {
  let last = initial;
  return (line: string): Level => {
    const match = LINE.exec(line);
    if (match) {
      last = LEVELS[match[1]] ?? last;
    }
    return last;
  };
}
