--- :checkhealth codegen — the binary, its version, the model cache, and whether the server starts.
local M = {}

local health = vim.health

--- Starts `cmd`, sends `initialize`, waits for the reply, then shuts the server down.
--- Returns the server's capabilities, or nil and why not.
---@param cmd string[]
---@param timeout_ms integer
function M.probe_server(cmd, timeout_ms, init_options)
  local buf = ''
  local reply
  local stderr = {}
  local function frame(msg)
    local body = vim.json.encode(msg)
    return ('Content-Length: %d\r\n\r\n%s'):format(#body, body)
  end
  local ok, proc = pcall(vim.system, cmd, {
    stdin = true,
    stdout = function(_, data)
      if not data then
        return
      end
      buf = buf .. data
      while true do
        local header_end = buf:find('\r\n\r\n', 1, true)
        if not header_end then
          return
        end
        local len = tonumber(buf:sub(1, header_end):match('[Cc]ontent%-[Ll]ength:%s*(%d+)'))
        if not len or #buf < header_end + 3 + len then
          return
        end
        local body = buf:sub(header_end + 4, header_end + 3 + len)
        buf = buf:sub(header_end + 4 + len)
        local decoded_ok, msg = pcall(vim.json.decode, body)
        if decoded_ok and type(msg) == 'table' and msg.id == 1 and msg.method == nil then
          reply = msg
        end
      end
    end,
    stderr = function(_, data)
      if data then
        table.insert(stderr, data)
      end
    end,
  })
  if not ok then
    return nil, tostring(proc)
  end
  proc:write(frame({
    jsonrpc = '2.0',
    id = 1,
    method = 'initialize',
    params = {
      processId = vim.fn.getpid(),
      rootUri = vim.NIL,
      capabilities = vim.empty_dict(),
      clientInfo = { name = 'codegen-checkhealth' },
      initializationOptions = init_options or vim.empty_dict(),
    },
  }))
  local done = vim.wait(timeout_ms, function()
    return reply ~= nil or proc:is_closing()
  end, 50)
  if reply then
    proc:write(frame({ jsonrpc = '2.0', id = 2, method = 'shutdown' }))
    vim.wait(2000, function()
      return buf:find('"id":2', 1, true) ~= nil
    end, 50)
    proc:write(frame({ jsonrpc = '2.0', method = 'exit' }))
    pcall(proc.write, proc, nil)
    local exited = proc:wait(2000)
    if exited.signal == 0 and exited.code == 124 then
      proc:kill(9)
    end
  else
    proc:kill(9)
  end
  if not reply then
    local err = vim.trim(table.concat(stderr))
    return nil, (done and 'the server exited before answering initialize' or ('no answer to initialize within %d ms'):format(timeout_ms))
      .. (err ~= '' and (': ' .. err:sub(1, 500)) or '')
  end
  if reply.error then
    return nil, 'initialize failed: ' .. vim.inspect(reply.error)
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
  health.info('filetypes: ' .. table.concat(cfg.filetypes, ', '))

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
    health.info('status: ' .. codegen.statusline())
  else
    health.info('no codegen server running in this Neovim (it starts when a file of an enabled filetype opens)')
  end
end

return M
