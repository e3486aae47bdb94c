--- Options of require('codegen').setup() and the settings object the server gets.
local M = {}

---@class codegen.Keymaps
---@field accept string|false       accept the whole suggestion (without one: the key's earlier mapping, else the key)
---@field accept_word string|false  accept the next word
---@field accept_line string|false  accept the next line
---@field next string|false         next candidate
---@field prev string|false         previous candidate
---@field trigger string|false      ask now (explicit: `n` ranked candidates)
---@field dismiss string|false      hide the suggestion
---@field toggle string|false       turn suggestions on or off (insert and normal mode); unmapped by default

---@class codegen.Options
---@field cmd string[]              server command
---@field filetypes string[]|table<string, boolean>  a list of filetypes, or { ['*'] = true, markdown = false, ... }
---@field should_attach? fun(bufnr: integer): boolean  false: no suggestions in that buffer
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
  should_attach = nil,
  -- Where they overlap, copilot.vim's keys.
  keymaps = {
    accept = '<Tab>',
    accept_word = '<M-Right>',
    accept_line = '<M-C-Right>',
    next = '<M-]>',
    prev = '<M-[>',
    trigger = '<M-\\>',
    dismiss = '<C-]>',
    toggle = false,
  },
  restart_on_exit = true,
}

--- Server setting names, as the server spells them.
M.setting_names = {
  'model', 'draftModel', 'backend', 'backendModel', 'idleUnloadSecs', 'shadowModel', 'shadowPercent', 'rolloutPercent', 'device', 'threads', 'maxTokens', 'temperature', 'n', 'nAutomatic', 'rank', 'rankBudgetMs',
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
  if not vim.islist(cfg.filetypes) then
    for ft, on in pairs(cfg.filetypes) do
      if type(ft) ~= 'string' or type(on) ~= 'boolean' then
        error(('codegen: filetypes is a list of filetypes or a map of filetype to boolean, not %s = %s'):format(vim.inspect(ft), vim.inspect(on)))
      end
    end
  end
  vim.validate('should_attach', cfg.should_attach, 'function', true)
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

--- Whether `filetypes` (a list, or a map with an optional '*' for the other filetypes)
--- enables `ft`.
---@param cfg codegen.Options
---@param ft string
function M.filetype_enabled(cfg, ft)
  local fts = cfg.filetypes
  if vim.islist(fts) then
    return vim.tbl_contains(fts, ft)
  end
  local on = fts[ft]
  if on == nil and ft ~= '' then -- '*' is every filetype, not "no filetype" ([''] = true for that)
    on = fts['*']
  end
  return on == true
end

--- The filetypes `filetypes` names as enabled, or nil when it enables every filetype ('*').
---@param cfg codegen.Options
---@return string[]?
function M.enabled_filetypes(cfg)
  local fts = cfg.filetypes
  if vim.islist(fts) then
    return vim.deepcopy(fts)
  end
  if fts['*'] then
    return nil
  end
  local out = {}
  for ft, on in pairs(fts) do
    if on then
      table.insert(out, ft)
    end
  end
  table.sort(out)
  return out
end

--- Neovim filetypes are LSP language ids for every language codegen knows.
---@param cfg codegen.Options
---@param enabled boolean
---@return table settings object for initializationOptions and didChangeConfiguration
function M.server_settings(cfg, enabled)
  local s = vim.deepcopy(cfg.settings)
  if s.languages == nil then
    s.languages = M.enabled_filetypes(cfg) or vim.NIL -- null: every language
  end
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
