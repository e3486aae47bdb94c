--- End to end: the plugin with a real `codegen lsp` and the real default model.
--- Args: the codegen binary. Waits are up to CODEGEN_E2E_TIMEOUT_MS (200 s) times the
--- harness slack (3). The model comes from the user cache (fetched by the server
--- through the store when missing), so the first suggestion can take minutes on a cold cache.
return function(H, args)
  local bin = assert(args[1], 'usage: nvim -l run.lua e2e /path/to/codegen')
  local timeout = tonumber(vim.env.CODEGEN_E2E_TIMEOUT_MS or '') or 200000
  local tmp = vim.fn.tempname()
  vim.fn.mkdir(tmp, 'p')
  local file = tmp .. '/palindrome.py'
  vim.fn.writefile({
    'def is_palindrome(text: str) -> bool:',
    '    """Return True if text reads the same forwards and backwards."""',
    '    ',
  }, file)
  local child = H.spawn({ cwd = tmp, init = H.CHILD_HELPERS })
  child:lua([[require('codegen').setup({ cmd = { ..., 'lsp' } })]], bin)

  H.test('the plugin starts `codegen lsp` when a Python file opens', function()
    child:cmd('edit ' .. vim.fn.fnameescape(file))
    child:wait('T.client() and T.client().initialized', 30000, 'the codegen client')
    H.eq(true, child:lua('return vim.lsp.buf_is_attached(0, T.client().id)'), 'attached')
    H.truthy(child:lua('return T.client().server_capabilities.inlineCompletionProvider'), 'inlineCompletionProvider')
  end)

  local suggestion
  H.test('a suggestion appears as ghost text', function()
    child:cmd('call cursor(3, 5)')
    child:input('A')
    suggestion = child:wait('T.suggestion()', timeout, 'a suggestion (model load and first completion)')
    io.stdout:write('     suggestion: ' .. vim.inspect(suggestion) .. '\n')
    H.eq(vim.lsp.inline_completion and 'native' or 'extmark', child:lua('return require("codegen").backend()'), 'backend')
    local marks = child:lua([[
      local n = 0
      for _, ns in pairs(vim.api.nvim_get_namespaces()) do
        n = n + #vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, {})
      end
      return n
    ]])
    H.eq(true, marks > 0, 'ghost text extmark')
    H.eq({ 'def is_palindrome(text: str) -> bool:', '    """Return True if text reads the same forwards and backwards."""', '    ' },
      child:lua('return vim.api.nvim_buf_get_lines(0, 0, -1, false)'), 'buffer untouched while shown')
  end)

  local original = {
    'def is_palindrome(text: str) -> bool:',
    '    """Return True if text reads the same forwards and backwards."""',
    '    ',
  }

  --- Back to the original text, in insert mode at the end of line 3, with a suggestion shown.
  local function fresh_suggestion()
    child:input('<Esc>')
    child:wait('T.mode() == "n"', 5000, 'normal mode')
    child:lua('vim.api.nvim_buf_set_lines(0, 0, -1, false, ...)', original)
    child:cmd('call cursor(3, 5)')
    child:input('A')
    return child:wait('T.suggestion()', timeout, 'a suggestion')
  end

  H.test('accept inserts the whole suggestion', function()
    local s = child:wait('T.suggestion()', timeout, 'a suggestion')
    local expected = child:lua('return T.with_piece(...)', s)
    child:input('<Tab>')
    child:wait('T.buf_text() == ' .. vim.inspect(expected), 10000, 'the suggestion inserted')
    io.stdout:write('     buffer:\n       ' .. child:lua('return T.buf_text()'):gsub('\n', '\n       ') .. '\n')
  end)

  H.test('accept line inserts one line', function()
    local s = fresh_suggestion()
    local line = child:lua('return require("codegen.text").next_line(...)', s)
    local expected = child:lua('return T.with_piece(...)', line)
    child:input('<M-C-Right>')
    child:wait('T.buf_text() == ' .. vim.inspect(expected), 10000, 'the line inserted')
    H.truthy(vim.trim(line) ~= '', 'a non-empty line')
    H.eq(true, select(2, line:gsub('\n', '')) <= 1, 'at most one line break')
    H.eq(original[1], child:lua('return vim.api.nvim_buf_get_lines(0, 0, 1, false)[1]'), 'line 1 untouched')
    io.stdout:write('     line 3: ' .. vim.inspect(child:lua('return vim.api.nvim_buf_get_lines(0, 2, 3, false)[1]')) .. '\n')
    if s:find('\n', 1, true) then
      H.eq(true, child:lua('return vim.api.nvim_buf_line_count(0)') <= 4, 'one line, not the whole suggestion')
    end
    child:input('<Esc>')
    child:wait('T.suggestion() == nil', 5000, 'no ghost text in normal mode')
  end)

  H.test(':CodegenStats shows `codegen stats`; :CodegenModel reads `codegen model list --json`', function()
    child:cmd('CodegenStats')
    local stats = child:wait('vim.bo.buftype == "nofile" and T.buf_text()', 30000, 'the stats window')
    io.stdout:write('     ' .. stats:gsub('\n', '\n     ') .. '\n')
    child:cmd('close')
    local models = child:lua([[
      local res = vim.system({ ..., 'model', 'list', '--json' }, { text = true }):wait()
      return require('codegen').parse_model_list(res.stdout)
    ]], bin)
    H.truthy(#models >= 1, 'models listed')
    H.truthy(vim.iter(models):any(function(m) return m.cached end), 'a cached model')
  end)

  H.test(':checkhealth codegen is clean', function()
    child:cmd('checkhealth codegen')
    local report = child:wait('vim.bo.filetype == "checkhealth" and T.buf_text():find("codegen: server") and T.buf_text()', 60000, 'the health report')
    io.stdout:write('     ' .. report:gsub('\n', '\n     ') .. '\n')
    if report:find('ERROR', 1, true) or report:find('WARNING', 1, true) then
      error('the health report has errors or warnings')
    end
    H.contains(report, 'starts and offers inline completion', 'report')
  end)

  child:stop()
end
