-- A complete init.lua for lsp-llm. The Neovim tests run exactly this file:
--   nvim --clean -u editor-configs/nvim/examples/init.lua some_file.py
-- To use it in your own config, set `plugin_dir` to where editor-configs/nvim lives.

-- The plugin directory: here, the folder above this file.
local plugin_dir = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h:h')
vim.opt.runtimepath:prepend(plugin_dir)

require('lsp_llm').setup({
  -- `lsp-llm serve` speaks LSP over stdio. For a shared daemon started with
  -- `lsp-llm serve --tcp --port 2087`, use `tcp = '127.0.0.1:2087'` instead.
  cmd = { 'lsp-llm', 'serve' },
  -- Server settings (camelCase), e.g. model = 'Qwen/Qwen2.5-Coder-0.5B', backend = 'llamacpp'.
  settings = { docstringStyle = 'google' },
  -- Ghost text on Neovim 0.12+: <Tab> accepts, <M-Right> accepts its next word, <M-C-Right>
  -- the rest of its line, <M-]>/<M-[> cycle suggestions.
  keymaps = { accept = '<Tab>', accept_word = '<M-Right>', accept_line = '<M-C-Right>', next = '<M-]>', prev = '<M-[>' },
})

-- Optional: show the model state in the statusline.
vim.o.statusline = "%f %m%=%{v:lua.require'lsp_llm'.statusline()}  %l:%c "
