--- lsp-llm for Neovim >= 0.11.
---
--- One call, `require('lsp_llm').setup(opts)`, registers the server with
--- `vim.lsp.config` / `vim.lsp.enable`, turns on ghost-text completion
--- (`vim.lsp.inline_completion`, Neovim 0.12) or plain completion items
--- (`vim.lsp.completion`, 0.11), and adds the commands
---   :LspLlmExplain    (range) stream an explanation into a floating window
---   :LspLlmDocstring  write a docstring for the function at the cursor
---   :LspLlmStatus     show the server status
---   :LspLlmReindex    rebuild the workspace index
--- and `require('lsp_llm').set_settings({...})` to change server settings at runtime.
---
--- It also fires `User` autocmds that statuslines (and the tests) can use:
---   LspLlmStatusChanged   data = status object (`lspLlm/statusChanged`)
---   LspLlmExplainChunk    data = { bufnr, text }           one streamed chunk
---   LspLlmExplainDone     data = { bufnr, text, err }      request finished
---   LspLlmDocstringDone   data = { bufnr, applied, err }

local M = {}

--- Name of the client (`:checkhealth vim.lsp`, `vim.lsp.get_clients({ name = ... })`).
M.name = 'lsp_llm'

---@class lsp_llm.Opts
M.defaults = {
  --- Command that starts the server over stdio.
  cmd = { 'lsp-llm', 'serve' },
  --- 'host:port' of a shared `lsp-llm serve --tcp` daemon; replaces `cmd` when set.
  tcp = nil, ---@type string?
  --- Filetypes to attach to; nil means every file buffer.
  filetypes = nil, ---@type string[]?
  --- Files that mark the workspace root (the server indexes from there).
  root_markers = { '.lsp-llm.toml', '.git', 'pyproject.toml', 'package.json', 'go.mod', 'Cargo.toml' },
  --- Server settings (camelCase): model, backend, device, dtype, maxNewTokens,
  --- contextWindow, temperature, debounceMs, numSuggestions, endpoint, apiKeyEnv,
  --- docstringStyle, retrieval. Sent as initializationOptions and pushed with
  --- workspace/didChangeConfiguration { settings = { lspLlm = ... } }.
  settings = {},
  --- Ghost text (Neovim 0.12+). false turns it off.
  inline_completion = true,
  --- Insert-mode keys for ghost text; false disables a mapping.
  keymaps = {
    accept = '<Tab>', -- falls back to a normal <Tab> when there is no suggestion
    accept_word = '<M-Right>', -- the next word of the suggestion (else the plain key)
    accept_line = '<M-C-Right>', -- the rest of the suggestion's current line (else the plain key)
    next = '<M-]>',
    prev = '<M-[>',
  },
  --- Neovim 0.11 (no inline completion): completion items, shown as you type.
  completion_autotrigger = true,
  --- Floating window for :LspLlmExplain.
  explain = { width = 0.7, height = 0.6, border = 'rounded' },
  --- Ghost-text colours (`LspLlmGhostText`, linked from `ComplHint`): grey and italic with
  --- and without 'termguicolors'. false keeps your colorscheme's `ComplHint` as it is.
  ghost_highlight = true,
}

---@type lsp_llm.Opts
M.options = vim.deepcopy(M.defaults)

--- Last `lspLlm/statusChanged` (or `lspLlm/status`) object, per client id.
---@type table<integer, table>
M.status = {}

--- Handlers for `$/progress` tokens that belong to our own requests (partial results).
---@type table<string|integer, fun(value: any)>
local partial_handlers = {}

--- Registers a partial-result handler for `token`; returns a function that removes it.
---@param token string
---@param handler fun(value: any)
---@return fun()
function M.on_partial_result(token, handler)
  partial_handlers[token] = handler
  return function()
    partial_handlers[token] = nil
  end
end

--- `$/progress`: partial results for our tokens go to their handler; everything else
--- (work-done progress while the model loads or the workspace is indexed) goes to
--- Neovim's default handler, which feeds `vim.lsp.status()` and `LspProgress`.
local function progress_handler(err, params, ctx, config)
  local handler = params and partial_handlers[params.token]
  if handler then
    handler(params.value)
    return
  end
  return vim.lsp.handlers['$/progress'](err, params, ctx, config)
end

local function status_changed_handler(_, status, ctx)
  M.status[ctx.client_id] = status
  vim.api.nvim_exec_autocmds('User', { pattern = 'LspLlmStatusChanged', data = status, modeline = false })
  vim.cmd.redrawstatus({ bang = true })
end

--- Parses 'host:port' (or '[v6]:port').
local function parse_host_port(value)
  local host, port = value:match('^%[(.+)%]:(%d+)$')
  if not host then
    host, port = value:match('^(.*):(%d+)$')
  end
  assert(port, ("lsp_llm: tcp must be 'host:port', got %q"):format(value))
  return (host ~= '' and host or '127.0.0.1'), tonumber(port)
end

--- The ghost-text highlight. Neovim draws inline completions with `ComplHint`, which
--- links to `NonText`; the default colorscheme gives `NonText` a GUI colour only, so
--- without 'termguicolors' the suggestion looked like real code. `LspLlmGhostText` has
--- both a GUI and a cterm colour; `ComplHint` is pointed at it unless the colorscheme
--- already gives `ComplHint` (or what it links to) a cterm colour of its own.
function M.apply_highlights()
  vim.api.nvim_set_hl(0, 'LspLlmGhostText', {
    default = true,
    fg = '#808080',
    ctermfg = 244,
    italic = true,
    cterm = { italic = true },
  })
  if not M.options.ghost_highlight then
    return
  end
  local hint = vim.api.nvim_get_hl(0, { name = 'ComplHint', link = false })
  if hint.ctermfg == nil then
    vim.api.nvim_set_hl(0, 'ComplHint', { link = 'LspLlmGhostText' })
  end
end

--- Says so once, with the fix, when the server command cannot be run.
---@param cmd string[]
---@return boolean executable
local function check_executable(cmd)
  if vim.fn.executable(cmd[1]) == 1 then
    return true
  end
  local msg = table.concat({
    ('lsp-llm: the server command %q is not executable (not found on PATH, or not a program).'):format(cmd[1]),
    'Fix: `pip install lsp-llm` (or activate the venv that has it before starting nvim),',
    "or give its full path: require('lsp_llm').setup({ cmd = { '/path/to/.venv/bin/lsp-llm', 'serve' } }).",
    'See :checkhealth lsp_llm',
  }, '\n')
  vim.schedule(function()
    vim.notify(msg, vim.log.levels.ERROR)
  end)
  return false
end

--- `on_exit` of the client: a server that stops by itself says so, with where to look.
local function on_exit(code, signal, _client_id)
  if (code == 0 and signal == 0) or vim.v.exiting ~= vim.NIL then
    return
  end
  vim.schedule(function()
    vim.notify(table.concat({
      ('lsp-llm: the server exited (code %d, signal %d).'):format(code, signal),
      'Its stderr is in the LSP log (:lua vim.cmd.tabedit(vim.lsp.log.get_filename())); run `lsp-llm serve` in a',
      'terminal to see the error. Fix the cause (model path, dependencies), then :edit the file to restart it.',
    }, '\n'), vim.log.levels.ERROR)
  end)
end

--- Buffer-local setup when the client attaches: ghost text or completion, and keys.
local function on_attach(client, bufnr)
  local opts = M.options
  if vim.lsp.inline_completion and client:supports_method('textDocument/inlineCompletion', bufnr) then
    if opts.inline_completion then
      local inline = require('lsp_llm.inline')
      inline.watch(client) -- lspLlm/didShow when a suggestion is drawn
      vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
      local keys = opts.keymaps or {}
      local accepts = {
        { keys.accept, 'full', 'lsp-llm: accept suggestion' },
        { keys.accept_word, 'word', 'lsp-llm: accept the next word of the suggestion' },
        { keys.accept_line, 'line', 'lsp-llm: accept the next line of the suggestion' },
      }
      for _, spec in ipairs(accepts) do
        local key, kind, desc = spec[1], spec[2], spec[3]
        if key then
          vim.keymap.set('i', key, function()
            if not inline.accept(kind) then
              return key -- no suggestion: behave like the plain key
            end
          end, { buffer = bufnr, expr = true, replace_keycodes = true, desc = desc })
        end
      end
      if keys.next then
        vim.keymap.set('i', keys.next, function()
          inline.select(1)
        end, { buffer = bufnr, desc = 'lsp-llm: next suggestion' })
      end
      if keys.prev then
        vim.keymap.set('i', keys.prev, function()
          inline.select(-1)
        end, { buffer = bufnr, desc = 'lsp-llm: previous suggestion' })
      end
    end
  elseif client:supports_method('textDocument/completion', bufnr) then
    -- Neovim 0.11: the server answers plain completion requests instead.
    vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = opts.completion_autotrigger })
  end
end

--- The attached lsp-llm client for `bufnr` (current buffer by default), or nil with a message.
---@param bufnr? integer
---@return vim.lsp.Client?
function M.client(bufnr)
  local client = vim.lsp.get_clients({ bufnr = bufnr or 0, name = M.name })[1]
  if not client then
    vim.notify('lsp-llm is not attached to this buffer', vim.log.levels.WARN)
  end
  return client
end

--- Human-readable one-liner for a statusline: `require('lsp_llm').statusline()`.
function M.statusline()
  local client = vim.lsp.get_clients({ bufnr = 0, name = M.name })[1]
  local status = client and M.status[client.id]
  if not status then
    return ''
  end
  local text = 'llm: ' .. (status.state or '?')
  if status.index and status.index.state == 'indexing' then
    text = text .. ' (indexing)'
  end
  return text
end

--- :LspLlmDocstring — ask for a docstring at the cursor and apply the edit.
function M.docstring()
  local bufnr = vim.api.nvim_get_current_buf()
  local client = M.client(bufnr)
  if not client then
    return
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  local tick = vim.b[bufnr].changedtick
  local function done(data)
    data.bufnr = bufnr
    vim.api.nvim_exec_autocmds('User', { pattern = 'LspLlmDocstringDone', data = data, modeline = false })
  end
  client:request('lspLlm/docstring', params, function(err, result)
    if err or not result then
      vim.notify('lsp-llm docstring: ' .. (err and err.message or 'no result'), vim.log.levels.ERROR)
      return done({ applied = false, err = err and err.message or 'no result' })
    end
    if vim.b[bufnr].changedtick ~= tick then
      -- The edit was computed for text that has changed since; applying it could misplace it.
      vim.notify('lsp-llm docstring: the buffer changed meanwhile; not applied', vim.log.levels.WARN)
      return done({ applied = false, err = 'buffer changed' })
    end
    vim.lsp.util.apply_workspace_edit(result.edit, client.offset_encoding)
    done({ applied = true })
  end, bufnr)
end

--- :LspLlmStatus — fetch and show the status object.
function M.show_status()
  local client = M.client()
  if not client then
    return
  end
  client:request('lspLlm/status', {}, function(err, status, ctx)
    if err or not status then
      vim.notify('lsp-llm status: ' .. (err and err.message or 'no result'), vim.log.levels.ERROR)
      return
    end
    M.status[ctx.client_id] = status
    local index = status.index or {}
    local lines = {
      ('lsp-llm: %s%s'):format(status.state, status.message and status.message ~= '' and (' — ' .. status.message) or ''),
      ('model %s · backend %s · device %s · dtype %s'):format(
        status.model or '?', status.backend or '?', status.device or '?', status.dtype or '?'),
      ('queue %s · index %s (%s files, %s symbols)'):format(
        status.queueDepth or 0, index.state or '?', index.files or 0, index.symbols or 0),
    }
    vim.notify(table.concat(lines, '\n'), status.state == 'error' and vim.log.levels.ERROR or vim.log.levels.INFO)
  end)
end

--- :LspLlmReindex — rebuild the workspace index (runs in the background on the server).
function M.reindex()
  local client = M.client()
  if not client then
    return
  end
  client:request('workspace/executeCommand', { command = 'lspLlm.reindex', arguments = {} }, function(err)
    if err then
      vim.notify('lsp-llm reindex: ' .. err.message, vim.log.levels.ERROR)
    else
      vim.notify('lsp-llm: reindexing the workspace', vim.log.levels.INFO)
    end
  end)
end

--- Change server settings at runtime: pushes workspace/didChangeConfiguration to the
--- running clients and keeps the new values for clients started later.
---@param settings table camelCase server settings, e.g. { temperature = 0.2 }
function M.set_settings(settings)
  M.options.settings = vim.tbl_deep_extend('force', M.options.settings or {}, settings)
  local wire = { lspLlm = M.options.settings }
  vim.lsp.config(M.name, { init_options = M.options.settings, settings = wire })
  for _, client in ipairs(vim.lsp.get_clients({ name = M.name })) do
    client.settings = wire
    client:notify('workspace/didChangeConfiguration', { settings = wire })
  end
end

local function create_commands()
  vim.api.nvim_create_user_command('LspLlmExplain', function(cmd)
    require('lsp_llm.explain').explain({ range = cmd.range, line1 = cmd.line1, line2 = cmd.line2 })
  end, { range = true, desc = 'lsp-llm: explain the selected lines (or the current line)' })
  vim.api.nvim_create_user_command('LspLlmDocstring', M.docstring, { desc = 'lsp-llm: generate a docstring' })
  vim.api.nvim_create_user_command('LspLlmStatus', M.show_status, { desc = 'lsp-llm: show the server status' })
  vim.api.nvim_create_user_command('LspLlmReindex', M.reindex, { desc = 'lsp-llm: reindex the workspace' })
end

--- Configure and enable the server. Safe to call again with new options.
---@param opts? lsp_llm.Opts
function M.setup(opts)
  if vim.fn.has('nvim-0.11') == 0 then
    vim.notify('lsp-llm needs Neovim 0.11 or newer', vim.log.levels.ERROR)
    return
  end
  opts = opts or {}
  M.options = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts)
  -- Lists replace the defaults whole (deep-extend would merge them index by index).
  for _, key in ipairs({ 'cmd', 'filetypes', 'root_markers' }) do
    if opts[key] ~= nil then
      M.options[key] = opts[key]
    end
  end
  local o = M.options

  local cmd = o.cmd
  if o.tcp and o.tcp ~= '' then
    cmd = vim.lsp.rpc.connect(parse_host_port(o.tcp))
  elseif type(cmd) == 'table' then
    check_executable(cmd)
  end

  M.apply_highlights()
  vim.api.nvim_create_autocmd('ColorScheme', {
    group = vim.api.nvim_create_augroup('lsp_llm_highlights', { clear = true }),
    callback = M.apply_highlights,
  })

  vim.lsp.config(M.name, {
    cmd = cmd,
    filetypes = o.filetypes,
    root_markers = o.root_markers,
    init_options = o.settings,
    -- Non-empty `settings` are pushed after `initialized` with didChangeConfiguration.
    settings = { lspLlm = o.settings },
    handlers = {
      ['$/progress'] = progress_handler,
      ['lspLlm/statusChanged'] = status_changed_handler,
    },
    on_attach = on_attach,
    on_exit = on_exit,
  })
  vim.lsp.enable(M.name)
  create_commands()
end

return M
