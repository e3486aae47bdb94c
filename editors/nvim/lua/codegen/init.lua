--- codegen for Neovim: inline suggestions from `codegen lsp`, a local code model.
---
--- require('codegen').setup({ ... }) registers the server with vim.lsp.config / vim.lsp.enable
--- for the enabled filetypes, turns on ghost text (native vim.lsp.inline_completion on 0.12,
--- extmarks on 0.11), maps the keys and defines :CodegenToggle, :CodegenEnable,
--- :CodegenDisable, :CodegenStatus, :CodegenStats, :CodegenModel and :CodegenRestart.
--- See :help codegen.
local config = require('codegen.config')
local inline = require('codegen.inline')
local fallback = require('codegen.keys')

local M = {}

M.name = 'codegen'

---@type codegen.Options
M.config = nil

--- Latest `codegen/status` from the server: { state = 'loading'|'ready'|'error'|'stopped', model?, message?, lastLatencyMs? }
M.status = { state = 'stopped' }

--- The server's work in progress (`$/progress`, e.g. fetching the model), or nil:
--- { title?, message?, percentage?, stage = 'downloading'|'verifying'|'loading' }
M.progress = nil

local restarts = {} ---@type number[] times of automatic restarts
local stopping = false

local function notify(msg, level)
  vim.notify('codegen: ' .. msg, level or vim.log.levels.INFO)
end

local function clients()
  return vim.lsp.get_clients({ name = M.name })
end

--- The settings object as the server gets it (initializationOptions / didChangeConfiguration).
--- Filetypes of buffers turned on by hand (vim.b.codegen_enabled = true) that `filetypes`
--- does not enable: the server's `languages` must name them too.
local extra_languages = {} ---@type table<string, true>

local function settings_for(cfg)
  local s = config.server_settings(cfg, inline.enabled)
  if type(s.languages) == 'table' then
    for ft in vim.spairs(extra_languages) do
      if not vim.tbl_contains(s.languages, ft) then
        table.insert(s.languages, ft)
      end
    end
  end
  return s
end

function M.server_settings()
  return settings_for(M.config)
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

local function resolve_buf(bufnr)
  return (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
end

local function attached(bufnr)
  return #vim.lsp.get_clients({ bufnr = bufnr, name = M.name }) > 0
end

--- Whether codegen handles `bufnr` (starts the server for it): `vim.b.codegen_enabled = true`,
--- or a file buffer whose filetype `filetypes` enables and that `should_attach` accepts.
---@return boolean, string? why not
function M.allowed(bufnr)
  bufnr = resolve_buf(bufnr)
  if not M.config or not vim.api.nvim_buf_is_valid(bufnr) then
    return false, 'setup() has not run'
  end
  if vim.b[bufnr].codegen_enabled == true then
    return true
  end
  if vim.bo[bufnr].buftype ~= '' then
    return false, ("not a file buffer (buftype=%s)"):format(vim.bo[bufnr].buftype)
  end
  local ft = vim.bo[bufnr].filetype
  if not config.filetype_enabled(M.config, ft) then
    return false, ('filetype %s is not enabled (filetypes)'):format(ft == '' and '(none)' or ft)
  end
  if M.config.should_attach then
    local ok, res = pcall(M.config.should_attach, bufnr)
    if not ok then
      if not M._should_attach_warned then
        M._should_attach_warned = true
        notify('should_attach failed: ' .. tostring(res), vim.log.levels.ERROR)
      end
      return false, 'should_attach failed: ' .. tostring(res)
    end
    if not res then
      return false, 'should_attach returned false'
    end
  end
  return true
end

--- Whether suggestions are on in `bufnr`, and why not.
---@return boolean, string?
function M.enabled_in(bufnr)
  bufnr = resolve_buf(bufnr)
  local ok, why = M.allowed(bufnr)
  if not ok then
    return false, why
  end
  if not inline.enabled then
    return false, 'off everywhere (:CodegenToggle, :CodegenEnable!)'
  end
  if vim.b[bufnr].codegen_enabled == false then
    return false, 'off in this buffer (:CodegenEnable, vim.b.codegen_enabled)'
  end
  return true
end

--- "downloading 87%" while the server reports progress with a percentage, else nil.
local function progress_text()
  local p = M.progress
  if not p or not p.percentage then
    return nil
  end
  return ('%s %d%%'):format(p.stage, p.percentage)
end

--- For 'statusline' (the buffer of the window drawn): "codegen: ready (model, 120 ms)",
--- "codegen: loading", "codegen: downloading 87%", "codegen: error (…)", "codegen: off";
--- "" in buffers codegen does not handle.
function M.statusline(bufnr)
  bufnr = resolve_buf(bufnr)
  if not attached(bufnr) and not M.allowed(bufnr) then
    return ''
  end
  if not inline.enabled then
    return 'codegen: off'
  elseif vim.b[bufnr].codegen_enabled == false then
    return 'codegen: off (buffer)'
  end
  return M.status_text()
end

--- The server's state for a statusline, whatever the buffer.
function M.status_text()
  if not inline.enabled then
    return 'codegen: off'
  end
  local s = M.status
  local progress = progress_text()
  if progress and (s.state == 'loading' or s.state == 'stopped') then
    return 'codegen: ' .. progress
  end
  if s.state == 'loading' then
    return 'codegen: loading'
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

--- How to name a progress report: a transfer when its text says so or counts bytes.
local function progress_stage(p)
  local words = ((p.title or '') .. ' ' .. (p.message or '')):lower()
  if words:find('verif', 1, true) then
    return 'verifying'
  elseif words:find('download', 1, true) or words:find('fetch', 1, true) or words:find('%d%s*[kmgt]i?b%f[%A]')
    or words:find('%d%s*bytes') then
    return 'downloading'
  end
  return 'loading'
end

local function on_progress(params)
  local value = type(params) == 'table' and params.value
  if type(value) ~= 'table' then
    return
  end
  local token = params.token
  if value.kind == 'begin' then
    M.progress = { token = token, title = value.title, message = value.message, percentage = value.percentage }
  elseif value.kind == 'report' then
    local p = M.progress
    if not p or p.token ~= token then
      p = { token = token }
      M.progress = p
    end
    p.message = value.message or p.message
    p.percentage = value.percentage or p.percentage
  elseif value.kind == 'end' then
    local p = M.progress
    if p and p.token == token then
      M.progress = nil
      if p.announced then
        notify(('model download finished%s'):format(value.message and (': ' .. value.message) or ''))
      end
    end
    vim.cmd.redrawstatus({ bang = true, mods = { emsg_silent = true } })
    return
  end
  local p = M.progress
  p.stage = progress_stage(p)
  -- Once per download, not on every report.
  if p.stage == 'downloading' and not p.announced then
    p.announced = true
    notify(('downloading the model%s; progress in :CodegenStatus and the statusline'):format(p.message and (' (' .. p.message .. ')') or ''))
  end
  vim.cmd.redrawstatus({ bang = true, mods = { emsg_silent = true } })
end

local function on_exit(code, signal)
  vim.schedule(function()
    inline.bufs = {}
    M.progress = nil
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

--- The server command; `settings.backend` (a remote engine) also goes on the command line, so
--- the server does no model work itself.
local function server_cmd(cfg)
  local cmd = vim.list_extend({}, cfg.cmd)
  local backend = (cfg.settings or {}).backend
  if type(backend) == 'string' and backend ~= '' then
    vim.list_extend(cmd, { '--backend', backend })
    local model = cfg.settings.backendModel
    if type(model) == 'string' and model ~= '' then
      vim.list_extend(cmd, { '--backend-model', model })
    end
  end
  return cmd
end

function lsp_config(cfg)
  return {
    cmd = server_cmd(cfg),
    root_markers = cfg.root_markers,
    init_options = settings_for(cfg),
    settings = { codegen = settings_for(cfg) },
    -- Which buffers: filetypes, should_attach and vim.b.codegen_enabled (M.allowed); the
    -- filetype list is not given to vim.lsp so that '*' and buffer overrides work.
    root_dir = function(bufnr, on_dir)
      if M.allowed(bufnr) then
        on_dir(vim.fs.root(bufnr, cfg.root_markers))
      end
    end,
    -- One server (one model in memory) for every buffer and project.
    reuse_client = function(client, conf)
      return client.name == conf.name
    end,
    handlers = {
      ['codegen/status'] = on_status,
      ['$/progress'] = function(err, params, ctx, conf)
        on_progress(params)
        return vim.lsp.handlers['$/progress'](err, params, ctx, conf)
      end,
    },
    on_init = function()
      stopping = false
      if M.status.state == 'stopped' then
        set_status({ state = 'loading' })
      end
    end,
    on_attach = function(client, bufnr)
      local ft = vim.bo[bufnr].filetype
      local languages = M.server_settings().languages
      if type(languages) == 'table' and not vim.tbl_contains(languages, ft) then
        extra_languages[ft] = true -- a buffer turned on by hand
        M.push_settings()
      end
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

--- Starts (or reuses) the server for `bufnr` now, as vim.lsp.enable would on FileType.
local function attach_now(bufnr)
  if attached(bufnr) or not M.allowed(bufnr) then
    return
  end
  local conf = vim.deepcopy(vim.lsp.config[M.name])
  conf.name = M.name
  conf.root_dir = vim.fs.root(bufnr, M.config.root_markers)
  vim.lsp.start(conf, { bufnr = bufnr, reuse_client = conf.reuse_client })
end

--- Turns suggestions on or off in one buffer (`vim.b.codegen_enabled`); `true` also starts
--- codegen in a buffer whose filetype is not enabled.
---@param enable boolean
---@param bufnr? integer
function M.set_buffer_enabled(enable, bufnr)
  bufnr = resolve_buf(bufnr)
  vim.b[bufnr].codegen_enabled = enable
  if enable then
    attach_now(bufnr)
  end
  if attached(bufnr) then
    inline.sync(bufnr)
    if enable then
      inline.refresh()
    end
  end
  vim.cmd.redrawstatus({ bang = true, mods = { emsg_silent = true } })
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

---@class codegen.Model
---@field name string
---@field description string
---@field size_bytes integer
---@field cached boolean
---@field default boolean
---@field path string?  the cached GGUF file, when cached

--- Parses `codegen model list --json`:
--- { cache, default, models = { { name, description, size_bytes, cached, default, path } } }.
---@return codegen.Model[] models, string? error
function M.parse_model_list(stdout)
  local ok, decoded = pcall(vim.json.decode, stdout or '', { luanil = { object = true, array = true } })
  if not ok or type(decoded) ~= 'table' or type(decoded.models) ~= 'table' then
    return {}, 'unexpected output from `codegen model list --json` (a codegen that knows --json is needed)'
  end
  local models = {}
  for _, m in ipairs(decoded.models) do
    if type(m) == 'table' and type(m.name) == 'string' then
      table.insert(models, {
        name = m.name,
        description = m.description or '',
        size_bytes = tonumber(m.size_bytes) or 0,
        cached = m.cached == true,
        default = m.default == true or m.name == decoded.default,
        path = type(m.path) == 'string' and m.path or nil,
      })
    end
  end
  return models
end

--- "469 MiB", "1066 MiB", "14.2 GiB".
function M.format_size(bytes)
  local mib = (bytes or 0) / 1048576
  if mib >= 10240 then
    return ('%.1f GiB'):format(mib / 1024)
  end
  return ('%d MiB'):format(math.floor(mib + 0.5))
end

--- The model the server is told to use (nil: its default).
local function current_model()
  local m = M.config.settings.model
  return (m and m ~= '') and m or nil
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
  run_codegen({ 'model', 'list', '--json' }, function(res)
    if res.code ~= 0 then
      notify(vim.trim(res.stderr), vim.log.levels.ERROR)
      return
    end
    local models, err = M.parse_model_list(res.stdout)
    if err then
      notify(err, vim.log.levels.ERROR)
      return
    end
    local current = current_model()
    vim.ui.select(models, {
      prompt = 'codegen model',
      format_item = function(m)
        local tags = {}
        if m.default then
          table.insert(tags, 'default')
        end
        if m.name == current or (not current and m.default) then
          table.insert(tags, 'current')
        end
        return ('%s  %s  %s%s%s'):format(
          m.name,
          M.format_size(m.size_bytes),
          m.cached and 'cached' or 'not cached (downloads on first use)',
          #tags > 0 and ('  (' .. table.concat(tags, ', ') .. ')') or '',
          m.description ~= '' and ('  ' .. m.description) or ''
        )
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
  -- Without a suggestion these keys do what they did before setup() (see codegen.keys).
  local function with_fallback(lhs, fn, desc)
    if lhs and lhs ~= '' then
      fallback.map_with_fallback(lhs, function()
        return fn() and true or false
      end, 'codegen: ' .. desc)
    end
  end
  with_fallback(keys.accept, inline.accept, 'accept suggestion')
  with_fallback(keys.accept_word, inline.accept_word, 'accept next word')
  with_fallback(keys.accept_line, inline.accept_line, 'accept next line')
  map('i', keys.next, function() inline.next(1) end, 'next suggestion')
  map('i', keys.prev, function() inline.prev() end, 'previous suggestion')
  map('i', keys.trigger, function() inline.trigger() end, 'ask for suggestions now')
  with_fallback(keys.dismiss, inline.dismiss, 'dismiss suggestion')
  map({ 'i', 'n' }, keys.toggle, function() M.toggle() end, 'toggle suggestions')
end

--- What :CodegenStatus shows.
---@return string[]
function M.status_lines(bufnr)
  bufnr = resolve_buf(bufnr)
  local s = M.status
  local lines = {}
  local state = s.state
  if s.state == 'error' and s.message then
    state = state .. ': ' .. s.message
  end
  table.insert(lines, 'codegen: ' .. state)
  table.insert(lines, 'model: ' .. (s.model or current_model() or '(the server\'s default)'))
  local p = M.progress
  if p and (s.state == 'loading' or s.state == 'stopped') then
    local what = progress_text() or (p.title or 'working')
    table.insert(lines, 'progress: ' .. what .. (p.message and (' (' .. p.message .. ')') or ''))
  end
  local on, why = M.enabled_in(bufnr)
  table.insert(lines, 'this buffer: ' .. (on and 'on' or ('off, ' .. why)))
  local client = vim.lsp.get_clients({ bufnr = bufnr, name = M.name })[1]
  if client then
    table.insert(lines, ('server: attached (client %d, %s)'):format(client.id, table.concat(M.config.cmd, ' ')))
  elseif #clients() > 0 then
    table.insert(lines, 'server: running, not attached to this buffer')
  else
    table.insert(lines, 'server: not running')
  end
  table.insert(lines, 'ghost text: ' .. inline.backend())
  if s.lastLatencyMs then
    table.insert(lines, ('last latency: %d ms'):format(s.lastLatencyMs))
  end
  return lines
end

local function commands()
  local cmd = vim.api.nvim_create_user_command
  local function enable_cmd(on)
    return function(a)
      if a.bang then
        M.toggle(on)
      else
        M.set_buffer_enabled(on)
        notify((on and 'suggestions on' or 'suggestions off') .. ' in this buffer')
      end
    end
  end
  cmd('CodegenEnable', enable_cmd(true), { bang = true, desc = 'codegen: suggestions on in this buffer (!: everywhere)' })
  cmd('CodegenDisable', enable_cmd(false), { bang = true, desc = 'codegen: suggestions off in this buffer (!: everywhere)' })
  cmd('CodegenStatus', function()
    local chunks = {}
    for i, line in ipairs(M.status_lines()) do
      table.insert(chunks, { (i > 1 and '\n  ' or '') .. line })
    end
    vim.api.nvim_echo(chunks, true, {})
  end, { desc = 'codegen: server state, model, whether this buffer gets suggestions' })
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
      local ok, res = pcall(function()
        return vim.system({ M.config.cmd[1], 'model', 'list', '--json' }, { text = true }):wait(3000)
      end)
      if not ok then
        return {}
      end
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
    callback = function(ev)
      if M.allowed(ev.buf) then
        check_binary()
      else
        -- The filetype changed to one codegen leaves alone.
        for _, client in ipairs(vim.lsp.get_clients({ bufnr = ev.buf, name = M.name })) do
          vim.lsp.buf_detach_client(ev.buf, client.id)
        end
      end
    end,
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
