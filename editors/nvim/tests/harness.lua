--- A tiny test harness: runs a child Neovim (--embed --headless) with the plugin on its
--- runtimepath and drives it over RPC like a user at the keyboard.
local H = {}

H.plugin_dir = vim.fs.dirname(vim.fs.dirname(vim.fs.normalize(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p'))))
H.failures = 0
H.passed = 0

local Child = {}
Child.__index = Child

---@param opts { env?: table<string,string>, cwd?: string, init?: string }
function H.spawn(opts)
  opts = opts or {}
  local argv = {
    vim.v.progpath, '--embed', '--headless', '--clean', '-n', '-i', 'NONE',
    '--cmd', 'set rtp^=' .. vim.fn.fnameescape(H.plugin_dir),
    '--cmd', 'set shortmess+=I noswapfile',
  }
  local chan = vim.fn.jobstart(argv, { rpc = true, env = opts.env, cwd = opts.cwd })
  assert(chan > 0, 'cannot start ' .. vim.v.progpath)
  local child = setmetatable({ chan = chan }, Child)
  if opts.init then
    child:lua(opts.init)
  end
  return child
end

--- Runs Lua in the child; `...` are its arguments.
function Child:lua(code, ...)
  return vim.rpcrequest(self.chan, 'nvim_exec_lua', code, { ... })
end

function Child:cmd(ex)
  return vim.rpcrequest(self.chan, 'nvim_command', ex)
end

--- Types keys (as if at the keyboard; mappings apply).
function Child:input(keys)
  vim.rpcrequest(self.chan, 'nvim_input', keys)
end

--- Timeouts are multiplied by this (a loaded CI machine runs the model beside these tests);
--- waits end as soon as their condition holds, so only failures take longer.
H.slack = tonumber(vim.env.CODEGEN_TEST_SLACK or '') or 3

--- Polls `code` (a Lua expression in the child) until it is truthy; returns its value.
function Child:wait(code, timeout_ms, what)
  timeout_ms = (timeout_ms or 5000) * H.slack
  local deadline = vim.uv.now() + timeout_ms
  local value
  repeat
    value = self:lua('return ' .. code)
    if value and value ~= vim.NIL then
      return value
    end
    vim.wait(25)
  until vim.uv.now() > deadline
  error(('timed out after %d ms waiting for %s (%s)'):format(timeout_ms, what or code, code), 2)
end

--- Lets the child run for `ms` without asking anything.
function Child:sleep(ms)
  vim.wait(ms)
end

function Child:stop()
  pcall(vim.rpcrequest, self.chan, 'nvim_command', 'qa!')
  vim.fn.jobstop(self.chan)
end

function H.eq(expected, actual, what)
  if not vim.deep_equal(expected, actual) then
    error(('%s: expected %s, got %s'):format(what or 'value', vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

function H.truthy(v, what)
  if not v or v == vim.NIL then
    error((what or 'value') .. ' is not true: ' .. vim.inspect(v), 2)
  end
  return v
end

function H.contains(haystack, needle, what)
  if type(haystack) ~= 'string' or not haystack:find(needle, 1, true) then
    error(('%s: %s does not contain %s'):format(what or 'text', vim.inspect(haystack), vim.inspect(needle)), 2)
  end
end

--- Runs `fn` as a named test; a failure is reported and counted, the run goes on.
function H.test(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    H.passed = H.passed + 1
    io.stdout:write('ok   ' .. name .. '\n')
  else
    H.failures = H.failures + 1
    io.stdout:write('FAIL ' .. name .. '\n' .. tostring(err):gsub('\n', '\n     ') .. '\n')
  end
end

function H.finish()
  io.stdout:write(('%d passed, %d failed\n'):format(H.passed, H.failures))
  os.exit(H.failures == 0 and 0 or 1)
end

--- Child-side helpers, loaded with `child:lua(H.CHILD_HELPERS)`.
H.CHILD_HELPERS = [[
  _G.T = {}
  function T.buf_text()
    return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  end
  -- The buffer text as it would be with `piece` inserted at the cursor.
  function T.with_piece(piece)
    local row, col = unpack(vim.api.nvim_win_get_cursor(0))
    local lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
    local line = lines[row]
    lines[row] = line:sub(1, col) .. piece .. line:sub(col + 1)
    return table.concat(lines, '\n')
  end
  function T.client()
    return vim.lsp.get_clients({ name = 'codegen' })[1]
  end
  function T.suggestion()
    local s = require('codegen').suggestion()
    if s == nil or s == '' then return nil end
    return s
  end
  function T.mode() return vim.api.nvim_get_mode().mode end
]]

return H
