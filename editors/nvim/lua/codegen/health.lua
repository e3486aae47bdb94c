--- :checkhealth codegen — the binary, its version, the model cache, and whether the server starts.
local M = {}

local health = vim.health

--- The server's stderr lines that Neovim's LSP client wrote to its log after byte `from`.
local function log_path()
  local log = vim.lsp.log
  if log and log.get_filename then
    return log.get_filename()
  end
  return vim.lsp.get_log_path()
end

local function stderr_from_log(from, bin)
  local path = log_path()
  local f = path and io.open(path, 'rb')
  if not f then
    return ''
  end
  f:seek('set', from)
  local text = f:read('*a') or ''
  f:close()
  local out = {}
  for line in text:gmatch('[^\n]+') do
    if line:find('"stderr"', 1, true) and line:find(bin, 1, true) then
      local chunk = line:gsub('^.-"stderr"%s*', ''):gsub('^"(.*)"$', '%1'):gsub('\\n', ' ')
      table.insert(out, vim.trim(chunk))
    end
  end
  return table.concat(vim.list_slice(out, math.max(1, #out - 4)), ' ')
end

--- Starts `cmd` with Neovim's LSP RPC client (vim.lsp.rpc.start), sends `initialize`, waits
--- for the reply, then shuts the server down (shutdown, exit). Returns the server's
--- capabilities, or nil and why not.
---@param cmd string[]
---@param timeout_ms integer
function M.probe_server(cmd, timeout_ms, init_options)
  local log_file = log_path()
  local log_stat = log_file and vim.uv.fs_stat(log_file)
  local log_from = log_stat and log_stat.size or 0
  local exited ---@type { code: integer, signal: integer }?
  local ok, rpc = pcall(vim.lsp.rpc.start, cmd, {
    notification = function() end,
    server_request = function(method)
      if method == 'window/workDoneProgress/create' or method == 'client/registerCapability' then
        return vim.NIL
      end
      return nil, vim.lsp.rpc.rpc_response_error(vim.lsp.protocol.ErrorCodes.MethodNotFound)
    end,
    on_exit = function(code, signal)
      exited = { code = code, signal = signal }
    end,
    on_error = function() end,
  })
  if not ok then
    return nil, tostring(rpc)
  end
  local reply ---@type { err: table?, result: table? }?
  rpc.request('initialize', {
    processId = vim.fn.getpid(),
    rootUri = vim.NIL,
    capabilities = vim.empty_dict(),
    clientInfo = { name = 'codegen-checkhealth' },
    initializationOptions = init_options or vim.empty_dict(),
  }, function(err, result)
    reply = { err = err, result = result }
  end)
  vim.wait(timeout_ms, function()
    return reply ~= nil or exited ~= nil
  end, 50)
  if reply and not exited then
    -- No `initialized`: that would start loading the model.
    local shut = false
    rpc.request('shutdown', nil, function()
      shut = true
    end)
    vim.wait(2000, function()
      return shut or exited ~= nil
    end, 50)
    rpc.notify('exit')
    vim.wait(2000, function()
      return exited ~= nil
    end, 50)
  end
  if not exited then
    rpc.terminate()
  end
  if not reply then
    local why = exited and ('the server exited (code %d, signal %d) before answering initialize'):format(exited.code, exited.signal)
      or ('no answer to initialize within %d ms'):format(timeout_ms)
    local err = vim.trim(stderr_from_log(log_from, cmd[1]))
    return nil, why .. (err ~= '' and (': ' .. err:sub(1, 500)) or ' (its stderr is in :LspLog)')
  end
  if reply.err then
    return nil, 'initialize failed: ' .. (reply.err.message or vim.inspect(reply.err))
  end
  return reply.result and reply.result.capabilities or {}, nil
end

function M.check()
  local codegen = require('codegen')
  local cfg = codegen.config

  health.start('codegen: Neovim')
  if vim.fn.has('nvim-0.11') == 0 then
    health.error('Neovim 0.11 or later is needed (vim.lsp.config / vim.lsp.enable)')
    return
  end
  local v = vim.version()
  health.ok(('Neovim %d.%d.%d'):format(v.major, v.minor, v.patch))
  if not cfg then
    health.error("require('codegen').setup() has not run", { "Call require('codegen').setup({}) in your config" })
    return
  end
  local backend = require('codegen.inline').backend()
  if backend == 'native' then
    health.ok('ghost text: native vim.lsp.inline_completion')
  else
    health.ok('ghost text: extmarks (Neovim 0.11; 0.12 uses vim.lsp.inline_completion)')
  end
  local fts = require('codegen.config').enabled_filetypes(cfg)
  if fts then
    health.info('filetypes: ' .. table.concat(fts, ', '))
  else
    local off = {}
    for ft, on in pairs(cfg.filetypes) do
      if not on then
        table.insert(off, ft)
      end
    end
    table.sort(off)
    health.info('filetypes: all' .. (#off > 0 and (' but ' .. table.concat(off, ', ')) or ''))
  end
  if cfg.should_attach then
    health.info('should_attach: set (it decides per buffer)')
  end

  health.start('codegen: binary')
  local bin = cfg.cmd[1]
  local path = vim.fn.exepath(bin)
  if path == '' then
    health.error(('`%s` not found or not executable'):format(bin), {
      'Install it: cargo install --path crates/codegen-cli (from the codegen repository)',
      "Or point setup() at it: require('codegen').setup({ cmd = { '/path/to/codegen', 'lsp' } })",
    })
    return
  end
  health.ok('binary: ' .. path)
  local res = vim.system({ path, '--version' }, { text = true }):wait(5000)
  if res.code == 0 then
    health.ok('version: ' .. vim.trim(res.stdout))
  else
    health.error(('`%s --version` failed (exit %s): %s'):format(bin, tostring(res.code), vim.trim(res.stderr or '')))
  end

  health.start('codegen: model')
  local cache = require('codegen.config').cache_dir()
  if vim.uv.fs_stat(cache) then
    health.ok('model cache: ' .. cache)
  else
    health.warn('model cache does not exist yet: ' .. cache, { 'The server fetches the model on first use, or run: codegen model fetch' })
  end
  local model = cfg.settings.model
  if model and (model:match('%.gguf$') or model:find('/', 1, true)) then
    if vim.uv.fs_stat(vim.fs.normalize(model)) then
      health.ok('model file: ' .. model)
    else
      health.error('model file does not exist: ' .. model)
    end
  else
    local argv = { path, 'model', 'path' }
    if model and model ~= '' then
      table.insert(argv, model)
    end
    local r = vim.system(argv, { text = true }):wait(10000)
    local name = (model and model ~= '') and model or 'default model'
    if r.code == 0 then
      health.ok(('%s cached: %s'):format(name, vim.trim(r.stdout)))
    else
      health.warn(('%s is not cached: %s'):format(name, vim.trim(r.stderr or '')), {
        'The server fetches it on first use (a few minutes), or fetch it now: codegen model fetch ' .. ((model and model ~= '') and model or ''),
      })
    end
  end

  health.start('codegen: server')
  local caps, err = M.probe_server(cfg.cmd, 20000, codegen.server_settings())
  if not caps then
    health.error(('`%s` does not start: %s'):format(table.concat(cfg.cmd, ' '), err))
  elseif not caps.inlineCompletionProvider then
    health.warn('the server started but does not offer inline completion (inlineCompletionProvider)')
  else
    health.ok(('`%s` starts and offers inline completion'):format(table.concat(cfg.cmd, ' ')))
  end
  local running = vim.lsp.get_clients({ name = codegen.name })
  if #running > 0 then
    health.info('status: ' .. codegen.status_text())
  else
    health.info('no codegen server running in this Neovim (it starts when a file of an enabled filetype opens)')
  end
end

return M
