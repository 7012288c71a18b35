// The ClientCapabilities that the VS Code extension's client (vscode-languageclient 11)
// sends, computed by that very library rather than copied by hand.
//
// vscode-languageclient imports the `vscode` module, which exists only inside VS Code.
// Building capabilities touches nothing of it but a version string, so a permissive
// stand-in is enough: every property is a callable, constructible stub.

'use strict';

const Module = require('node:module');

const VSCODE_VERSION = '1.105.0';

function stub(name) {
  const target = function () {
    return stub(`${name}()`);
  };
  return new Proxy(target, {
    get(t, prop) {
      if (prop === 'then') return undefined; // not a thenable
      if (prop === Symbol.toPrimitive) return () => name;
      if (!(prop in t)) t[prop] = stub(`${name}.${String(prop)}`);
      return t[prop];
    },
    construct() {
      return stub(`new ${name}`);
    },
  });
}

function withFakeVscode(fn) {
  const originalLoad = Module._load;
  Module._load = function (request, ...rest) {
    if (request === 'vscode') {
      const vscode = stub('vscode');
      vscode.version = VSCODE_VERSION;
      vscode.env.appName = 'Visual Studio Code';
      return vscode;
    }
    return originalLoad.call(this, request, ...rest);
  };
  try {
    return fn();
  } finally {
    Module._load = originalLoad;
  }
}

/** ClientCapabilities exactly as `new LanguageClient(...)` in the extension computes them. */
function vscodeClientCapabilities() {
  return withFakeVscode(() => {
    const { LanguageClient } = require('vscode-languageclient/node');
    const client = new LanguageClient(
      'lspLlm',
      'LSP-LLM',
      { command: 'lsp-llm', args: ['serve', '--stdio'] },
      { documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }] },
    );
    return client.computeClientCapabilities();
  });
}

module.exports = { vscodeClientCapabilities, VSCODE_VERSION };

if (require.main === module) {
  process.stdout.write(JSON.stringify(vscodeClientCapabilities(), null, 2) + '\n');
}
