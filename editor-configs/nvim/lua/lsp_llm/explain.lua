--- :LspLlmExplain — a floating window that fills as the explanation streams in.
---
--- The `lspLlm/explain` request carries a partialResultToken; the server sends
--- `$/progress { token, value = { text = chunk } }` notifications whose chunks are
--- appended in order, then answers with the full text (which replaces the stream).
--- `q` (or closing the window any other way) cancels a request still running.

local lsp_llm = require('lsp_llm')

local M = {}

local counter = 0

--- Opens a centred, scratch markdown float and returns its buffer and window.
local function open_float(title)
  local o = lsp_llm.options.explain
  local width = math.max(40, math.floor(vim.o.columns * o.width))
  local height = math.max(8, math.floor((vim.o.lines - 2) * o.height))
  local buf = vim.api.nvim_create_buf(false, true)
  vim.bo[buf].filetype = 'markdown'
  vim.bo[buf].bufhidden = 'wipe'
  local config = {
    relative = 'editor',
    width = width,
    height = height,
    row = math.floor((vim.o.lines - height) / 2) - 1,
    col = math.floor((vim.o.columns - width) / 2),
    style = 'minimal',
    border = o.border,
  }
  if o.border and o.border ~= 'none' then -- a title needs a border
    config.title = ' ' .. title .. ' '
    config.title_pos = 'center'
  end
  local win = vim.api.nvim_open_win(buf, true, config)
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = true
  return buf, win
end

--- Replaces the float's text (the buffer is read-only for the user).
local function set_text(buf, text)
  if not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, vim.split(text, '\n', { plain = true }))
  vim.bo[buf].modifiable = false
end

--- The LSP range of lines line1..line2 (1-based, inclusive), whole lines.
local function line_range(bufnr, line1, line2, encoding)
  local last = vim.api.nvim_buf_get_lines(bufnr, line2 - 1, line2, true)[1]
  return {
    start = { line = line1 - 1, character = 0 },
    ['end'] = { line = line2 - 1, character = vim.str_utfindex(last, encoding) },
  }
end

---@param opts { range: integer, line1: integer, line2: integer }
function M.explain(opts)
  local source = vim.api.nvim_get_current_buf()
  local client = lsp_llm.client(source)
  if not client then
    return
  end
  -- Without a range, explain the current line.
  local line1, line2 = opts.line1, opts.line2
  if opts.range == 0 then
    line1 = vim.api.nvim_win_get_cursor(0)[1]
    line2 = line1
  end

  counter = counter + 1
  local token = ('lsp_llm-explain-%d-%d'):format(vim.uv.os_getpid(), counter)
  local params = {
    textDocument = vim.lsp.util.make_text_document_params(source),
    range = line_range(source, line1, line2, client.offset_encoding),
    partialResultToken = token,
  }

  local name = vim.fn.fnamemodify(vim.api.nvim_buf_get_name(source), ':t')
  local buf, win = open_float(('Explain %s:%d-%d'):format(name, line1, line2))
  set_text(buf, '_Waiting for the model…_')

  local streamed = ''
  local request_id ---@type integer?
  local finished = false

  local function fire(pattern, data)
    data.bufnr = buf
    vim.api.nvim_exec_autocmds('User', { pattern = pattern, data = data, modeline = false })
  end

  local remove_partial = lsp_llm.on_partial_result(token, function(value)
    if finished or type(value) ~= 'table' or type(value.text) ~= 'string' then
      return
    end
    streamed = streamed .. value.text
    set_text(buf, streamed)
    fire('LspLlmExplainChunk', { text = value.text })
  end)

  --- Cancels the request if it is still running; the window is closing.
  --- Neovim drops the server's -32800 answer to a cancelled request without calling
  --- the response handler, so the bookkeeping happens here.
  local function cancel()
    if finished then
      return
    end
    finished = true
    remove_partial()
    if request_id then
      client:cancel_request(request_id)
    end
    fire('LspLlmExplainDone', { text = streamed, err = 'cancelled' })
  end

  vim.keymap.set('n', 'q', function()
    cancel()
    if vim.api.nvim_win_is_valid(win) then
      vim.api.nvim_win_close(win, true)
    end
  end, { buffer = buf, nowait = true, desc = 'lsp-llm: close (and cancel)' })
  vim.api.nvim_create_autocmd('WinClosed', {
    pattern = tostring(win),
    once = true,
    callback = cancel,
  })

  local ok
  ok, request_id = client:request('lspLlm/explain', params, function(err, result)
    if finished then
      return -- cancelled with `q`; this answer arrived anyway
    end
    finished = true
    remove_partial()
    if err then
      -- The server cancelled it (-32802) or failed; what was streamed so far stays valid.
      local note = err.code == -32802 and '_(cancelled by the server)_' or ('**Error:** ' .. tostring(err.message))
      set_text(buf, (streamed ~= '' and (streamed .. '\n\n') or '') .. note)
      fire('LspLlmExplainDone', { text = streamed, err = err.message or tostring(err.code) })
      return
    end
    local text = result and result.text or streamed
    local note = result and result.finishReason == 'length' and '\n\n_(stopped at the token limit)_' or ''
    set_text(buf, text .. note)
    fire('LspLlmExplainDone', { text = text, finishReason = result and result.finishReason })
  end, source)
  if not ok then
    finished = true
    remove_partial()
    set_text(buf, '**Error:** the request could not be sent')
  end
end

return M
