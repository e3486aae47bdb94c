--- Options of require('codegen').setup() and the settings object the server gets.
local M = {}

---@class codegen.Keymaps
---@field accept string|false       accept the whole suggestion (falls back to the key when none is shown)
---@field accept_word string|false  accept the next word
---@field accept_line string|false  accept the next line
---@field next string|false         next candidate
---@field prev string|false         previous candidate
---@field trigger string|false      ask now (explicit: `n` ranked candidates); unmapped by default
---@field dismiss string|false      hide the suggestion
---@field toggle string|false       turn suggestions on or off (insert and normal mode)

---@class codegen.Options
---@field cmd string[]              server command
---@field filetypes string[]        filetypes that get suggestions (also sent as `languages`)
---@field root_markers string[]
---@field enabled boolean           suggestions on at start
---@field backend 'auto'|'native'|'extmark'  auto: native vim.lsp.inline_completion on 0.12, extmarks on 0.11
---@field debounce_ms integer       extmark backend: wait after a keystroke before asking
---@field settings table            server settings: model, device, threads, maxTokens, temperature, n, nAutomatic, rank, rankBudgetMs, debounceMs, timeBudgetMs
---@field keymaps codegen.Keymaps|false
---@field restart_on_exit boolean   restart the server when it dies (at most 3 times a minute)
M.defaults = {
  cmd = { 'codegen', 'lsp' },
  filetypes = { 'python', 'rust', 'javascript', 'javascriptreact', 'typescript', 'typescriptreact', 'go' },
  root_markers = { '.git' },
  enabled = true,
  backend = 'auto',
  debounce_ms = 30,
  settings = {},
  keymaps = {
    accept = '<Tab>',
    accept_word = '<M-Right>',
    accept_line = '<M-Down>',
    next = '<M-]>',
    prev = '<M-[>',
    trigger = false,
    dismiss = '<C-]>',
    toggle = '<M-\\>',
  },
  restart_on_exit = true,
}

--- Server setting names, as the server spells them.
M.setting_names = {
  'model', 'device', 'threads', 'maxTokens', 'temperature', 'n', 'nAutomatic', 'rank', 'rankBudgetMs',
  'debounceMs', 'timeBudgetMs', 'maxPrefixTokens', 'maxSuffixTokens', 'languages', 'enabled',
}

--- Lists are replaced, not merged index by index.
local function merge(base, over)
  if type(over) ~= 'table' or vim.islist(over) or type(base) ~= 'table' or vim.islist(base) then
    return vim.deepcopy(over)
  end
  local out = vim.deepcopy(base)
  for k, v in pairs(over) do
    out[k] = merge(base[k], v)
  end
  return out
end

---@param opts? table
---@return codegen.Options
function M.resolve(opts)
  opts = opts or {}
  vim.validate('opts', opts, 'table')
  local cfg = merge(M.defaults, opts)
  if opts.keymaps == false then
    cfg.keymaps = false
  end
  vim.validate('cmd', cfg.cmd, function(v)
    return type(v) == 'table' and type(v[1]) == 'string'
  end, 'list of strings, e.g. { "codegen", "lsp" }')
  vim.validate('filetypes', cfg.filetypes, 'table')
  vim.validate('settings', cfg.settings, 'table')
  if not vim.tbl_contains({ 'auto', 'native', 'extmark' }, cfg.backend) then
    error("codegen: backend must be 'auto', 'native' or 'extmark', not " .. vim.inspect(cfg.backend))
  end
  for key in pairs(cfg.settings) do
    if not vim.tbl_contains(M.setting_names, key) then
      vim.notify(('codegen: unknown server setting %q (known: %s)'):format(key, table.concat(M.setting_names, ', ')), vim.log.levels.WARN)
    end
  end
  return cfg
end

--- Neovim filetypes are LSP language ids for every language codegen knows.
---@param cfg codegen.Options
---@param enabled boolean
---@return table settings object for initializationOptions and didChangeConfiguration
function M.server_settings(cfg, enabled)
  local s = vim.deepcopy(cfg.settings)
  s.languages = s.languages or vim.deepcopy(cfg.filetypes)
  s.enabled = enabled
  return s
end

--- Where models are cached: $CODEGEN_HOME, else $XDG_CACHE_HOME/codegen, else ~/.cache/codegen.
function M.cache_dir()
  local home = vim.env.CODEGEN_HOME
  if home and home ~= '' then
    return home
  end
  local xdg = vim.env.XDG_CACHE_HOME
  if xdg and xdg ~= '' then
    return vim.fs.joinpath(xdg, 'codegen')
  end
  return vim.fs.joinpath(vim.uv.os_homedir(), '.cache', 'codegen')
end

return M
