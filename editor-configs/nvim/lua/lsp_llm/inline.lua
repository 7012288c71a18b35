--- Ghost-text signals for lsp-llm (Neovim 0.12+, `vim.lsp.inline_completion`).
---
--- - `lspLlm/didShow` `{ id }`: sent when one of lsp-llm's suggestions is drawn as ghost text
---   (after an answer arrives, and after cycling with next/prev), once per suggestion shown.
---   The server counts it as "displayed"; "shown" there means the server answered.
--- - Accepting sends the item's command `lspLlm.didAccept` with
---   `{ id, kind = 'full'|'word'|'line', acceptedText, uri, position }`: what went into the
---   buffer and where (`position`: the LSP position where the accepted text starts), so the
---   server can count partial accepts and check 30 s later how much of the text is still there.
---
--- Partial accept: `accept_word` takes the next word of the suggestion (with the whitespace
--- before it, or a run of punctuation), `accept_line` the rest of the current line of it (a
--- suggestion that goes on past a line break shows the rest as ghost text again).

local M = {}

local api = vim.api
local ACCEPT_COMMAND = 'lspLlm.didAccept'
local DID_SHOW = 'lspLlm/didShow'

--- The part of `text` that one partial accept of `kind` takes.
---@param text string the suggestion text not yet in the buffer
---@param kind 'word'|'line'|'full'
---@return string
function M.next_chunk(text, kind)
  if kind == 'full' or text == '' then
    return text
  end
  if kind == 'line' then
    -- Up to the end of the line; a leading line break belongs to the line after it.
    return text:match('^\n?[^\n]*') or text
  end
  local space = text:match('^%s*')
  local rest = text:sub(#space + 1)
  local word = rest:match('^[%w_]+') or rest:match('^[^%w_%s]+') or ''
  return space .. word
end

---@param item_command? lsp.Command
---@return string? id the lsp-llm suggestion id of an item's command
local function suggestion_id(item_command)
  if not item_command or item_command.command ~= ACCEPT_COMMAND then
    return nil
  end
  local arg = item_command.arguments and item_command.arguments[1]
  return type(arg) == 'table' and arg.id or nil
end

--- Per buffer: lsp-llm's latest answer items and the id last reported as shown.
---@type table<integer, { items: lsp.InlineCompletionItem[], client: vim.lsp.Client, shown?: string }>
local answers = {}

--- What is drawn as ghost text in `bufnr` now (first line without what the user has typed,
--- then the lines below), or nil.
---@param bufnr integer
---@return string?
local function ghost_text(bufnr)
  local ns = api.nvim_get_namespaces()['nvim.lsp.inline_completion']
  if not ns or not api.nvim_buf_is_valid(bufnr) then
    return nil
  end
  local mark = api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true, limit = 1 })[1]
  if not mark then
    return nil
  end
  local details = mark[4] or {}
  local first = details.virt_text and details.virt_text[1] and details.virt_text[1][1] or ''
  local parts = { first }
  for _, line in ipairs(details.virt_lines or {}) do
    local chunks = {}
    for _, chunk in ipairs(line) do
      if chunk[2] ~= 'ComplHintMore' then
        table.insert(chunks, chunk[1])
      end
    end
    table.insert(parts, table.concat(chunks))
  end
  return table.concat(parts, '\n')
end

--- `text` as Neovim draws it in virtual text: control characters (but tab and line break)
--- become ^X.
---@param text string
---@return string
local function displayed(text)
  return (text:gsub('[%z\1-\8\11-\31\127]', function(c)
    return c == '\127' and '^?' or '^' .. string.char(c:byte() + 64)
  end))
end

--- Sends `lspLlm/didShow` for the lsp-llm suggestion drawn in `bufnr`, if it is one of ours
--- and not reported already.
---@param bufnr integer
function M.report_shown(bufnr)
  local answer = answers[bufnr]
  if not answer then
    return
  end
  local ghost = ghost_text(bufnr)
  if not ghost or ghost == '' then
    return
  end
  -- The ghost text is the suggestion less what the user has typed of it (the " (i/n)"
  -- hint after cycling is a chunk of its own, left out above).
  for _, item in ipairs(answer.items) do
    local text = type(item.insertText) == 'string' and displayed(item.insertText) or nil
    local id = suggestion_id(item.command)
    if id and text and vim.endswith(text, ghost) then
      if answer.shown ~= id then
        answer.shown = id
        answer.client:notify(DID_SHOW, { id = id })
      end
      return
    end
  end
end

--- Watches `client`'s inline-completion answers so the ghost text drawn from them can be
--- reported (`vim.lsp.inline_completion` draws the first item in its response handler).
---@param client vim.lsp.Client
function M.watch(client)
  if client._lsp_llm_watched then
    return
  end
  client._lsp_llm_watched = true
  local request = client.request
  client.request = function(self, method, params, handler, bufnr)
    if method == 'textDocument/inlineCompletion' and handler then
      local inner = handler
      handler = function(err, result, ctx, config)
        local value = inner(err, result, ctx, config)
        if not err and result and params and params.textDocument then
          local buf = vim.uri_to_bufnr(params.textDocument.uri)
          answers[buf] = { items = result.items or result, client = self }
          M.report_shown(buf)
        end
        return value
      end
    end
    return request(self, method, params, handler, bufnr)
  end
end

--- Inserts `text` at the cursor of the current window and moves the cursor after it.
---@param bufnr integer
---@param text string
local function insert_at_cursor(bufnr, text)
  local win = vim.fn.bufwinid(bufnr)
  local row, col = unpack(api.nvim_win_get_cursor(win))
  local lines = vim.split(text, '\n', { plain = true })
  api.nvim_buf_set_text(bufnr, row - 1, col, row - 1, col, lines)
  api.nvim_win_set_cursor(win, { row + #lines - 1, (#lines == 1 and col or 0) + #lines[#lines] })
end

--- The LSP position of (0-based row, byte col) in `bufnr`.
local function lsp_position(bufnr, row, col, encoding)
  return { line = row, character = vim.lsp.util.character_offset(bufnr, row, col, encoding) }
end

--- Sends the accept command for `item` (any client's: other servers' commands go as they are).
local function send_accept(bufnr, item, kind, text, position)
  local client = vim.lsp.get_client_by_id(item.client_id)
  if not client or not item.command then
    return
  end
  local command = item.command
  local id = suggestion_id(command)
  if id then
    command = {
      title = command.title,
      command = command.command,
      arguments = {
        {
          id = id,
          kind = kind,
          acceptedText = text,
          uri = vim.uri_from_bufnr(bufnr),
          position = position,
        },
      },
    }
  end
  client:exec_cmd(command, { bufnr = bufnr })
end

--- Accepts `item` whole, as `vim.lsp.inline_completion` does, then sends the command.
---@param bufnr integer
---@param item vim.lsp.inline_completion.Item
local function accept_full(bufnr, item)
  local insert_text = item.insert_text
  local client = vim.lsp.get_client_by_id(item.client_id)
  local encoding = client and client.offset_encoding or 'utf-16'
  local position
  if type(insert_text) == 'string' then
    local range = item.range
    if range then
      position = lsp_position(bufnr, range.start.row, range.start.col, encoding)
      local lines = vim.split(insert_text, '\n', { plain = true })
      api.nvim_buf_set_text(bufnr, range.start.row, range.start.col, range.end_.row, range.end_.col, lines)
      local pos = range.start:to_cursor()
      api.nvim_win_set_cursor(vim.fn.bufwinid(bufnr), {
        pos[1] + #lines - 1,
        (#lines == 1 and pos[2] or 0) + #lines[#lines],
      })
    else
      local row, col = unpack(api.nvim_win_get_cursor(vim.fn.bufwinid(bufnr)))
      position = lsp_position(bufnr, row - 1, col, encoding)
      api.nvim_paste(insert_text, false, 0)
    end
    send_accept(bufnr, item, 'full', insert_text, position)
  else
    vim.snippet.expand(insert_text.value)
    if item.command then
      assert(client):exec_cmd(item.command, { bufnr = bufnr })
    end
  end
end

--- Accepts the next word or line of `item` at the cursor.
---@param bufnr integer
---@param item vim.lsp.inline_completion.Item
---@param kind 'word'|'line'
local function accept_part(bufnr, item, kind)
  local range = item.range
  local insert_text = item.insert_text
  local empty_range = range and range.start.row == range.end_.row and range.start.col == range.end_.col
  if type(insert_text) ~= 'string' or (range and not empty_range) then
    return accept_full(bufnr, item) -- a snippet or a replacement is taken whole
  end
  local win = vim.fn.bufwinid(bufnr)
  local row, col = unpack(api.nvim_win_get_cursor(win))
  local remaining = insert_text
  if range and range.start.row == row - 1 and col >= range.start.col then
    -- What the user typed since the request is a prefix of the suggestion: skip it.
    local line = api.nvim_buf_get_lines(bufnr, row - 1, row, true)[1]
    local typed = line:sub(range.start.col + 1, col)
    if vim.startswith(insert_text, typed) then
      remaining = insert_text:sub(#typed + 1)
    end
  end
  local chunk = M.next_chunk(remaining, kind)
  if chunk == '' then
    return
  end
  local client = vim.lsp.get_client_by_id(item.client_id)
  local position = lsp_position(bufnr, row - 1, col, client and client.offset_encoding or 'utf-16')
  insert_at_cursor(bufnr, chunk)
  local part = chunk == remaining and remaining == insert_text and 'full' or kind
  send_accept(bufnr, item, part, chunk, position)
end

--- Accepts the displayed suggestion (`kind`: 'full', 'word' or 'line'). Returns false when
--- there is none, so a mapping can fall back to the plain key.
---@param kind 'full'|'word'|'line'
---@return boolean
function M.accept(kind)
  local bufnr = api.nvim_get_current_buf()
  return vim.lsp.inline_completion.get({
    bufnr = bufnr,
    on_accept = function(item)
      if kind == 'full' then
        accept_full(bufnr, item)
      else
        accept_part(bufnr, item, kind)
      end
    end,
  })
end

--- Shows the next (`count` > 0) or previous suggestion and reports it as shown.
---@param count integer
function M.select(count)
  vim.lsp.inline_completion.select({ count = count })
  M.report_shown(api.nvim_get_current_buf())
end

--- Forgets a buffer's answer (on detach / wipe).
---@param bufnr integer
function M.forget(bufnr)
  answers[bufnr] = nil
end

return M
