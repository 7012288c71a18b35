-- Drives a headless Neovim through one lsp-llm scenario and writes what it saw to JSON.
--
--   LSP_LLM_TEST_SCENARIO  inline | partial | explain | docstring | messages
--   LSP_LLM_TEST_OUT       path of the JSON result
--   LSP_LLM_TEST_TIMEOUT   overall timeout in ms (default 180000)
--
-- Run after examples/init.lua with the file to edit already open:
--   nvim --headless --clean -u editor-configs/nvim/examples/init.lua file.py -c 'luafile driver.lua'
--
-- The scenario runs in a coroutine that sleeps on timers, so Neovim's main loop keeps
-- running between steps: typed keys (insert mode, <Tab>) and LSP messages are processed
-- exactly as in an interactive session.

local scenario = assert(os.getenv('LSP_LLM_TEST_SCENARIO'), 'LSP_LLM_TEST_SCENARIO')
local out_path = assert(os.getenv('LSP_LLM_TEST_OUT'), 'LSP_LLM_TEST_OUT')
local timeout_ms = tonumber(os.getenv('LSP_LLM_TEST_TIMEOUT') or '180000')

local result = { scenario = scenario, events = {}, nvim = tostring(vim.version()) }
local t0 = vim.uv.hrtime()
local function now_ms()
  return math.floor((vim.uv.hrtime() - t0) / 1e6)
end
local function event(name, data)
  table.insert(result.events, { t = now_ms(), name = name, data = data })
end

local finished = false
local function finish(err)
  if finished then
    return
  end
  finished = true
  result.ok = err == nil
  result.error = err and tostring(err) or nil
  result.buffer = vim.api.nvim_buf_get_lines(result.bufnr or 0, 0, -1, false)
  result.messages = vim.api.nvim_exec2('messages', { output = true }).output
  local f = assert(io.open(out_path, 'w'))
  f:write(vim.json.encode(result))
  f:close()
  vim.cmd('qa!')
end

local co
local function resume(...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    finish(debug.traceback(co, err))
  elseif coroutine.status(co) == 'dead' then
    finish(nil)
  end
end
local function sleep(ms)
  vim.defer_fn(resume, ms)
  coroutine.yield()
end
local function wait_until(cond, what, ms)
  local deadline = now_ms() + (ms or timeout_ms)
  while true do
    local value = cond()
    if value then
      return value
    end
    if now_ms() > deadline then
      error('timed out waiting for ' .. what)
    end
    sleep(50)
  end
end
--- Sends a request and waits for its answer.
local function request(client, method, params, bufnr)
  local response
  client:request(method, params, function(err, res)
    response = { err = err, result = res }
  end, bufnr)
  wait_until(function()
    return response
  end, method)
  return response.err, response.result
end
local function feed(keys)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(keys, true, false, true), 'm', false)
end

-- Record every lsp-llm User event (status, streamed chunks, done).
vim.api.nvim_create_autocmd('User', {
  pattern = { 'LspLlmStatusChanged', 'LspLlmExplainChunk', 'LspLlmExplainDone', 'LspLlmDocstringDone' },
  callback = function(args)
    local data = args.data
    if args.match == 'LspLlmExplainChunk' then
      -- What the float shows right after this chunk arrived.
      data = {
        text = args.data.text,
        float_text = table.concat(vim.api.nvim_buf_get_lines(args.data.bufnr, 0, -1, false), '\n'),
      }
    elseif args.match == 'LspLlmExplainDone' then
      data = vim.tbl_extend('force', {}, args.data, {
        float_text = vim.api.nvim_buf_is_valid(args.data.bufnr)
            and table.concat(vim.api.nvim_buf_get_lines(args.data.bufnr, 0, -1, false), '\n')
          or vim.NIL,
      })
    end
    event(args.match, data)
  end,
})

-- Record the notifications the client sends to the server (lspLlm/didShow).
vim.api.nvim_create_autocmd('LspNotify', {
  callback = function(args)
    if args.data.method == 'lspLlm/didShow' then
      event('notify', { method = args.data.method, params = args.data.params })
    end
  end,
})

--- Waits for the client to attach and the model to be ready; returns client, bufnr.
local function attach()
  local bufnr = vim.api.nvim_get_current_buf()
  result.bufnr = bufnr
  local client = wait_until(function()
    local c = vim.lsp.get_clients({ bufnr = bufnr, name = 'lsp_llm' })[1]
    return c and c.initialized and c
  end, 'the lsp_llm client to attach')
  event('attached', { client_id = client.id, server = client.server_info })
  result.capabilities = {
    inlineCompletion = client.server_capabilities.inlineCompletionProvider ~= nil,
    completion = client.server_capabilities.completionProvider ~= nil,
  }
  -- Record the requests the client sends (the accepted suggestion's command, cancels).
  local original = client.request
  client.request = function(self, method, params, handler, b)
    event('request', {
      method = method,
      command = type(params) == 'table' and params.command or nil,
      arguments = method == 'workspace/executeCommand' and params.arguments or nil,
    })
    if method == 'textDocument/inlineCompletion' and handler then
      local inner = handler
      handler = function(err, res, ctx, config)
        local texts = {}
        for _, item in ipairs(res and (res.items or res) or {}) do
          table.insert(texts, item.insertText)
        end
        event('inline_items', texts) -- the raw suggestion texts of this answer
        return inner(err, res, ctx, config)
      end
    end
    return original(self, method, params, handler, b)
  end
  wait_until(function()
    local err, status = request(client, 'lspLlm/status', {}, bufnr)
    if err then
      error('lspLlm/status failed: ' .. vim.inspect(err))
    end
    if status.state == 'error' then
      error('the server reports an error: ' .. vim.inspect(status))
    end
    result.status = status
    return status.state == 'ready'
  end, 'the model to be ready')
  return client, bufnr
end

local scenarios = {}

-- Ghost text: enter insert mode at the end of a line, wait for the suggestion to be
-- drawn, accept it with <Tab> (the plugin's mapping) and read the buffer back.
function scenarios.inline()
  local client, bufnr = attach()
  result.has_inline_completion = vim.lsp.inline_completion ~= nil
  if not result.capabilities.inlineCompletion then
    error('the server did not announce inlineCompletionProvider')
  end
  result.enabled = vim.lsp.inline_completion and vim.lsp.inline_completion.is_enabled({ bufnr = bufnr })
  result.before = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  local ns = vim.api.nvim_get_namespaces()['nvim.lsp.inline_completion']
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  feed('A') -- append at the end of line 2 (InsertEnter triggers an automatic request)
  local marks = wait_until(function()
    ns = ns or vim.api.nvim_get_namespaces()['nvim.lsp.inline_completion']
    local m = ns and vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true }) or {}
    return #m > 0 and m
  end, 'ghost text', 60000)
  result.mode_when_shown = vim.api.nvim_get_mode().mode
  local ghost = {}
  local function resolved(name)
    local hl = vim.api.nvim_get_hl(0, { name = name, link = false })
    return { fg = hl.fg, ctermfg = hl.ctermfg, italic = hl.italic, cterm_italic = hl.cterm and hl.cterm.italic }
  end
  result.normal_hl = resolved('Normal')
  result.ghost_hl = {}
  for _, mark in ipairs(marks) do
    for _, chunk in ipairs(mark[4].virt_text or {}) do
      table.insert(ghost, chunk[1])
      local group = type(chunk[2]) == 'table' and chunk[2][#chunk[2]] or chunk[2]
      if group then
        result.ghost_hl[group] = resolved(group)
      end
    end
    for _, line in ipairs(mark[4].virt_lines or {}) do
      local parts = {}
      for _, chunk in ipairs(line) do
        table.insert(parts, chunk[1])
      end
      table.insert(ghost, '\n' .. table.concat(parts))
    end
  end
  result.ghost_text = table.concat(ghost)
  event('ghost_text', result.ghost_text)
  feed('<Tab>')
  wait_until(function()
    return not vim.deep_equal(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), result.before)
  end, 'the accepted suggestion in the buffer', 10000)
  feed('<Esc>')
  -- The item's command (lspLlm.didAccept) is sent after the text is inserted.
  sleep(300)
  result.after = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  local _ = client
end

-- Partial accept: ghost text drawn (and reported with lspLlm/didShow), one word taken with
-- <M-Right> (the plugin's accept_word mapping), then, after the server's retention delay, the
-- acceptance counters from lspLlm/status.
function scenarios.partial()
  local client, bufnr = attach()
  result.before = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  feed('A')
  local ns
  wait_until(function()
    ns = ns or vim.api.nvim_get_namespaces()['nvim.lsp.inline_completion']
    return ns and #vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, {}) > 0
  end, 'ghost text', 60000)
  local mark = vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })[1]
  local parts = { mark[4].virt_text[1][1] }
  for _, line in ipairs(mark[4].virt_lines or {}) do
    table.insert(parts, (line[1] or {})[1] or '')
  end
  result.ghost_text = table.concat(parts, '\n')
  wait_until(function()
    for _, e in ipairs(result.events) do
      if e.name == 'notify' then
        return true
      end
    end
  end, 'lspLlm/didShow', 10000)
  feed('<M-Right>')
  wait_until(function()
    return not vim.deep_equal(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), result.before)
  end, 'the accepted word in the buffer', 10000)
  result.after = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  result.cursor = vim.api.nvim_win_get_cursor(0)
  feed('<Esc>')
  sleep(tonumber(os.getenv('LSP_LLM_TEST_RETENTION_WAIT') or '1500'))
  local err, status = request(client, 'lspLlm/status', {}, bufnr)
  assert(not err, vim.inspect(err))
  result.acceptance = status.acceptance
end

-- :LspLlmExplain on a range: the float must fill with streamed chunks before the
-- request ends. Then a second explanation is closed with `q` while it streams.
function scenarios.explain()
  local client, bufnr = attach()
  local function count(name)
    local n = 0
    for _, e in ipairs(result.events) do
      if e.name == name then
        n = n + 1
      end
    end
    return n
  end
  vim.cmd('1,3LspLlmExplain')
  local win = vim.api.nvim_get_current_win()
  result.float = vim.api.nvim_win_get_config(win).relative ~= ''
  result.float_filetype = vim.bo[vim.api.nvim_win_get_buf(win)].filetype
  wait_until(function()
    return count('LspLlmExplainDone') == 1
  end, 'the explanation to finish')

  -- Cancel: back in the source window, start again and press q at the first chunk.
  vim.cmd('wincmd p')
  assert(vim.api.nvim_get_current_buf() == bufnr, 'back in the source buffer')
  local chunks_before = count('LspLlmExplainChunk')
  vim.cmd('1,3LspLlmExplain')
  local cancel_win = vim.api.nvim_get_current_win()
  wait_until(function()
    return count('LspLlmExplainChunk') > chunks_before or count('LspLlmExplainDone') == 2
  end, 'the second explanation to start streaming')
  event('pressing_q', { done_already = count('LspLlmExplainDone') == 2 })
  feed('q')
  wait_until(function()
    return not vim.api.nvim_win_is_valid(cancel_win)
  end, 'q to close the float', 5000)
  result.q_closed_float = true
  wait_until(function()
    return count('LspLlmExplainDone') == 2
  end, 'the cancelled request to be answered', 30000)
  local _ = client
end

-- :LspLlmDocstring on the `def` line applies the returned edit.
function scenarios.docstring()
  local _, bufnr = attach()
  result.before = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  vim.api.nvim_win_set_cursor(0, { 1, 4 })
  vim.cmd('LspLlmDocstring')
  wait_until(function()
    for _, e in ipairs(result.events) do
      if e.name == 'LspLlmDocstringDone' then
        return true
      end
    end
  end, 'the docstring')
  result.after = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
end

-- No attach: collect what the plugin tells the user (server missing, or exiting).
function scenarios.messages()
  wait_until(function()
    local text = vim.api.nvim_exec2('messages', { output = true }).output
    return text:find('lsp-llm: the server', 1, true) and text
  end, 'a message from the plugin', tonumber(os.getenv('LSP_LLM_TEST_WAIT') or '20000'))
  sleep(500)
end

co = coroutine.create(assert(scenarios[scenario], 'unknown scenario ' .. scenario))
vim.defer_fn(function()
  finish('overall timeout after ' .. timeout_ms .. ' ms')
end, timeout_ms + 5000)
vim.schedule(resume)
