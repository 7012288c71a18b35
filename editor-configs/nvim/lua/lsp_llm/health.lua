--- :checkhealth lsp_llm
local M = {}

function M.check()
  vim.health.start('lsp-llm')
  if vim.fn.has('nvim-0.11') == 1 then
    vim.health.ok('Neovim ' .. tostring(vim.version()))
  else
    vim.health.error('Neovim 0.11 or newer is required')
  end
  if vim.lsp.inline_completion then
    vim.health.ok('vim.lsp.inline_completion is available: ghost text')
  else
    vim.health.info('no vim.lsp.inline_completion (Neovim < 0.12): plain completion items')
  end
  local o = require('lsp_llm').options
  if o.tcp and o.tcp ~= '' then
    vim.health.info('connecting to the daemon at ' .. o.tcp)
  elseif vim.fn.executable(o.cmd[1]) == 1 then
    vim.health.ok(('server command: %s (%s)'):format(table.concat(o.cmd, ' '), vim.fn.exepath(o.cmd[1])))
  else
    vim.health.error(o.cmd[1] .. ' is not executable', { 'pip install lsp-llm, or set `cmd` in setup()' })
  end
  local clients = vim.lsp.get_clients({ name = require('lsp_llm').name })
  vim.health.info(('%d running client(s)'):format(#clients))
end

return M
