--- codegen for Neovim: inline suggestions from `codegen lsp`, a local code model.
---
--- require('codegen').setup({ ... }) registers the server with vim.lsp.config / vim.lsp.enable
--- for the enabled filetypes, turns on ghost text (native vim.lsp.inline_completion on 0.12,
--- extmarks on 0.11), maps the keys and defines :CodegenToggle, :CodegenStats, :CodegenModel
--- and :CodegenRestart. See :help codegen.
local config = require('codegen.config')
local inline = require('codegen.inline')

local M = {}

M.name = 'codegen'

---@type codegen.Options
M.config = nil

--- Latest `codegen/status` from the server: { state = 'loading'|'ready'|'error'|'stopped', model?, message?, lastLatencyMs? }
M.status = { state = 'stopped' }

local restarts = {} ---@type number[] times of automatic restarts
local stopping = false

local function notify(msg, level)
  vim.notify('codegen: ' .. msg, level or vim.log.levels.INFO)
end

local function clients()
  return vim.lsp.get_clients({ name = M.name })
end

--- The settings object as the server gets it (initializationOptions / didChangeConfiguration).
function M.server_settings()
  return config.server_settings(M.config, inline.enabled)
end

--- Sends the current settings to running servers (workspace/didChangeConfiguration).
function M.push_settings()
  local settings = { codegen = M.server_settings() }
  vim.lsp.config[M.name] = M._lsp_config(M.config) -- a restarted server gets them too
  for _, client in ipairs(clients()) do
    client.settings = settings
    client:notify('workspace/didChangeConfiguration', { settings = settings })
  end
end

local function set_status(status)
  M.status = status
  vim.api.nvim_exec_autocmds('User', { pattern = 'CodegenStatus', modeline = false, data = status })
  vim.cmd.redrawstatus({ bang = true, mods = { emsg_silent = true } })
end

--- For 'statusline': "codegen: ready (model, 120 ms)", "codegen: loading 40%", "codegen: off".
function M.statusline()
  if not inline.enabled then
    return 'codegen: off'
  end
  local s = M.status
  if s.state == 'loading' then
    local pct = ''
    local ok, progress = pcall(vim.lsp.status)
    if ok and progress ~= '' then
      pct = ' ' .. progress
    end
    return 'codegen: loading' .. pct
  elseif s.state == 'ready' then
    local detail = {}
    if s.model then
      table.insert(detail, s.model)
    end
    if s.lastLatencyMs then
      table.insert(detail, ('%d ms'):format(s.lastLatencyMs))
    end
    return 'codegen: ready' .. (#detail > 0 and (' (' .. table.concat(detail, ', ') .. ')') or '')
  elseif s.state == 'error' then
    return 'codegen: error' .. (s.message and (' (' .. s.message .. ')') or '')
  end
  return 'codegen: ' .. s.state
end

local function on_status(_, params)
  if type(params) ~= 'table' then
    return
  end
  local prev = M.status
  set_status(params)
  if params.state == 'ready' and prev.state ~= 'ready' then
    inline.refresh() -- a request made while the model loaded may have come back empty
  end
  if params.state == 'error' and (prev.state ~= 'error' or prev.message ~= params.message) then
    notify(params.message or 'the server reported an error', vim.log.levels.ERROR)
  end
end

local function on_exit(code, signal)
  vim.schedule(function()
    inline.bufs = {}
    if stopping or not M.config or not M.config.restart_on_exit or (code == 0 and signal == 0) then
      set_status({ state = 'stopped' })
      return
    end
    local now = vim.uv.now()
    restarts = vim.tbl_filter(function(t)
      return now - t < 60000
    end, restarts)
    if #restarts >= 3 then
      set_status({ state = 'error', message = ('server exited (code %d) 3 times in a minute'):format(code) })
      notify(('the server keeps exiting (code %d); see :LspLog, then :CodegenRestart'):format(code), vim.log.levels.ERROR)
      return
    end
    table.insert(restarts, now)
    set_status({ state = 'error', message = ('server exited (code %d, signal %d); restarting'):format(code, signal) })
    vim.defer_fn(function()
      vim.lsp.enable(M.name, true) -- re-runs the FileType autocmd: starts the server again
    end, 500)
  end)
end

local lsp_config
function M._lsp_config(cfg)
  return lsp_config(cfg)
end

function lsp_config(cfg)
  return {
    cmd = cfg.cmd,
    filetypes = cfg.filetypes,
    root_markers = cfg.root_markers,
    init_options = config.server_settings(cfg, inline.enabled),
    settings = { codegen = config.server_settings(cfg, inline.enabled) },
    -- One server (one model in memory) for every buffer and project.
    reuse_client = function(client, conf)
      return client.name == conf.name
    end,
    handlers = { ['codegen/status'] = on_status },
    on_init = function()
      stopping = false
      if M.status.state == 'stopped' then
        set_status({ state = 'loading' })
      end
    end,
    on_attach = function(client, bufnr)
      inline.attach(client, bufnr)
    end,
    on_exit = on_exit,
  }
end

local warned_missing = false
local function check_binary()
  local bin = M.config.cmd[1]
  if vim.fn.executable(bin) == 1 or warned_missing then
    return
  end
  warned_missing = true
  notify(
    ('`%s` is not executable: install codegen (cargo install --path crates/codegen-cli) or set `cmd` in setup(); :checkhealth codegen'):format(bin),
    vim.log.levels.WARN
  )
end

--- Turns suggestions on or off (and tells the server).
function M.toggle(enable)
  if enable == nil then
    enable = not inline.enabled
  end
  inline.set_enabled(enable)
  M.push_settings()
  notify(enable and 'suggestions on' or 'suggestions off')
  vim.cmd.redrawstatus({ bang = true, mods = { emsg_silent = true } })
end

--- Runs the codegen binary (the server command's first word) with `args`.
local function run_codegen(args, on_done)
  local argv = { M.config.cmd[1] }
  vim.list_extend(argv, args)
  local ok, proc = pcall(vim.system, argv, { text = true }, function(res)
    vim.schedule(function()
      on_done(res)
    end)
  end)
  if not ok then
    notify(('cannot run %s: %s'):format(argv[1], proc), vim.log.levels.ERROR)
  end
end

local function show_scratch(title, lines)
  vim.cmd('botright new')
  local buf = vim.api.nvim_get_current_buf()
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'wipe'
  vim.bo[buf].swapfile = false
  pcall(vim.api.nvim_buf_set_name, buf, title)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.keymap.set('n', 'q', '<Cmd>close<CR>', { buffer = buf, nowait = true })
  vim.api.nvim_win_set_height(0, math.min(#lines + 1, 20))
end

--- :CodegenStats [--since DURATION]: `codegen stats` in a scratch window.
function M.stats(args)
  local argv = { 'stats' }
  vim.list_extend(argv, args or {})
  run_codegen(argv, function(res)
    if res.code ~= 0 then
      notify(vim.trim(res.stderr ~= '' and res.stderr or ('codegen stats exited with ' .. res.code)), vim.log.levels.ERROR)
      return
    end
    show_scratch('codegen://stats', vim.split(vim.trim(res.stdout), '\n', { plain = true }))
  end)
end

--- Parses `codegen model list`: NAME  SIZE  CACHED  DESCRIPTION lines.
---@return { name: string, size: string, cached: boolean, description: string }[]
function M.parse_model_list(stdout)
  local models = {}
  for _, line in ipairs(vim.split(stdout, '\n', { plain = true })) do
    local name, size, cached, desc = line:match('^(%S+)%s+(%S+ ?%a*)%s+(%a+)%s*(.*)$')
    if name and name ~= 'NAME' and name ~= 'cache:' and (cached == 'yes' or cached == 'no') then
      table.insert(models, { name = name, size = vim.trim(size), cached = cached == 'yes', description = desc })
    end
  end
  return models
end

--- Switches the model (a name from `codegen model list` or a GGUF path).
function M.set_model(name)
  M.config.settings.model = name
  M.push_settings()
  notify('model: ' .. name)
end

--- :CodegenModel [NAME|PATH]: switch models; without an argument, pick from `codegen model list`.
function M.select_model(name)
  if name and name ~= '' then
    M.set_model(name)
    return
  end
  run_codegen({ 'model', 'list' }, function(res)
    if res.code ~= 0 then
      notify(vim.trim(res.stderr), vim.log.levels.ERROR)
      return
    end
    local models = M.parse_model_list(res.stdout)
    vim.ui.select(models, {
      prompt = 'codegen model',
      format_item = function(m)
        local current = (M.config.settings.model == m.name) and ' (current)' or ''
        return ('%s  %s  %s%s'):format(m.name, m.size, m.cached and 'cached' or 'not cached', current)
      end,
    }, function(choice)
      if choice then
        M.set_model(choice.name)
      end
    end)
  end)
end

--- Stops the server and starts it again for the open buffers.
function M.restart()
  stopping = true
  restarts = {}
  vim.lsp.enable(M.name, false)
  vim.defer_fn(function()
    stopping = false
    vim.lsp.enable(M.name, true)
  end, 500)
end

local function map_keys(keys)
  if not keys then
    return
  end
  local function map(mode, lhs, rhs, desc, opts)
    if lhs and lhs ~= '' then
      vim.keymap.set(mode, lhs, rhs, vim.tbl_extend('force', { desc = 'codegen: ' .. desc, silent = true }, opts or {}))
    end
  end
  local function with_fallback(fn, lhs)
    return function()
      if fn() then
        return ''
      end
      return vim.keycode(lhs)
    end
  end
  map('i', keys.accept, with_fallback(inline.accept, keys.accept or ''), 'accept suggestion', { expr = true, replace_keycodes = false })
  map('i', keys.accept_word, with_fallback(inline.accept_word, keys.accept_word or ''), 'accept next word', { expr = true, replace_keycodes = false })
  map('i', keys.accept_line, with_fallback(inline.accept_line, keys.accept_line or ''), 'accept next line', { expr = true, replace_keycodes = false })
  map('i', keys.next, function() inline.next(1) end, 'next suggestion')
  map('i', keys.prev, function() inline.prev() end, 'previous suggestion')
  map('i', keys.trigger, function() inline.trigger() end, 'ask for suggestions now')
  map('i', keys.dismiss, with_fallback(inline.dismiss, keys.dismiss or ''), 'dismiss suggestion', { expr = true, replace_keycodes = false })
  map({ 'i', 'n' }, keys.toggle, function() M.toggle() end, 'toggle suggestions')
end

local function commands()
  local cmd = vim.api.nvim_create_user_command
  cmd('CodegenToggle', function(a)
    local arg = a.args
    M.toggle(arg == 'on' and true or arg == 'off' and false or nil)
  end, { nargs = '?', complete = function() return { 'on', 'off' } end, desc = 'codegen: turn suggestions on or off' })
  cmd('CodegenStats', function(a)
    M.stats(a.fargs)
  end, { nargs = '*', desc = 'codegen: acceptance statistics (codegen stats)' })
  cmd('CodegenModel', function(a)
    M.select_model(a.args)
  end, {
    nargs = '?',
    complete = function(lead)
      local res = vim.system({ M.config.cmd[1], 'model', 'list' }, { text = true }):wait(3000)
      local names = vim.tbl_map(function(m) return m.name end, M.parse_model_list(res.stdout or ''))
      return vim.tbl_filter(function(n) return vim.startswith(n, lead) end, names)
    end,
    desc = 'codegen: switch model',
  })
  cmd('CodegenRestart', function()
    M.restart()
  end, { desc = 'codegen: restart the server' })
end

---@param opts? codegen.Options|table
function M.setup(opts)
  if vim.fn.has('nvim-0.11') == 0 then
    notify('needs Neovim 0.11 or later', vim.log.levels.ERROR)
    return
  end
  M.config = config.resolve(opts)
  inline.opts = { backend = M.config.backend, debounce_ms = M.config.debounce_ms }
  inline.enabled = M.config.enabled
  inline.setup_highlights()

  vim.lsp.config[M.name] = lsp_config(M.config)
  vim.lsp.enable(M.name)

  local group = vim.api.nvim_create_augroup('codegen', { clear = true })
  vim.api.nvim_create_autocmd('FileType', {
    group = group,
    pattern = M.config.filetypes,
    callback = check_binary,
  })
  vim.api.nvim_create_autocmd('LspDetach', {
    group = group,
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data.client_id)
      if client and client.name == M.name then
        inline.detach(ev.buf)
      end
    end,
  })
  vim.api.nvim_create_autocmd('ColorScheme', { group = group, callback = inline.setup_highlights })
  map_keys(M.config.keymaps)
  commands()
end

-- Re-exported for keymaps of your own.
M.accept = inline.accept
M.accept_word = inline.accept_word
M.accept_line = inline.accept_line
M.next = inline.next
M.prev = inline.prev
M.trigger = inline.trigger
M.dismiss = inline.dismiss
M.visible = inline.visible
M.suggestion = inline.current_text
M.backend = inline.backend

return M
