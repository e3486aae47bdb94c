--- The plugin against the fake server (tests/fake_server.py), with each ghost-text backend.
return function(H, _)
  local here = H.plugin_dir .. '/tests'
  local fake = here .. '/fake_codegen'
  local text = dofile(H.plugin_dir .. '/lua/codegen/text.lua')

  H.test('text: remainder, next word, next line', function()
    H.eq('rn x', text.remainder('return x', 'retu'), 'remainder')
    H.eq('return x', text.remainder('return x', 'zz'), 'remainder of a mismatch')
    H.eq('total', text.next_word('total = 0\n    for'), 'word')
    H.eq(' =', text.next_word(' = 0'), 'punctuation')
    H.eq('\n    ', text.next_word('\n    for x'), 'line break')
    H.eq('total = 0\n', text.next_line('total = 0\n    for x'), 'line with more to come')
    H.eq('return x', text.next_line('return x'), 'last line')
    H.eq('\n    for x', text.next_line('\n    for x\n    y'), 'line after a break')
  end)

  local function server_log(path)
    local entries = {}
    local f = io.open(path)
    if not f then
      return entries
    end
    for line in f:lines() do
      table.insert(entries, vim.json.decode(line))
    end
    f:close()
    return entries
  end

  --- Waits until the last didChangeConfiguration the server got has settings.codegen[key] == value.
  local function wait_setting(path, key, value)
    local last
    for _ = 1, 300 do
      local confs = vim.tbl_filter(function(m)
        return m.method == 'workspace/didChangeConfiguration'
      end, server_log(path))
      last = confs[#confs] and confs[#confs].params.settings.codegen
      if last and last[key] == value then
        return
      end
      vim.wait(30)
    end
    error(('didChangeConfiguration: expected %s = %s, last settings %s'):format(key, vim.inspect(value), vim.inspect(last)), 2)
  end

  local function messages(path, method)
    return vim.tbl_filter(function(m)
      return m.method == method
    end, server_log(path))
  end

  -- Neovim 0.12 has both backends; 0.11 only extmarks.
  local backends = vim.lsp.inline_completion and { 'native', 'extmark' } or { 'extmark' }

  H.test('backend auto: native on 0.12, extmarks on 0.11', function()
    local child = H.spawn({ init = H.CHILD_HELPERS })
    child:lua([[require('codegen').setup({ cmd = { ..., 'lsp' } })]], fake)
    H.eq(vim.lsp.inline_completion and 'native' or 'extmark', child:lua('return require("codegen").backend()'), 'backend')
    child:stop()
  end)

  for _, backend in ipairs(backends) do
    local tmp = vim.fn.tempname()
    vim.fn.mkdir(tmp .. '/home', 'p')
    local log = tmp .. '/server.jsonl'
    local child = H.spawn({
      cwd = tmp,
      env = { FAKE_LSP_LOG = log, CODEGEN_HOME = tmp .. '/home' },
      init = H.CHILD_HELPERS,
    })
    child:lua([[
      require('codegen').setup({ cmd = { ..., 'lsp' }, backend = select(2, ...), settings = { n = 3, nAutomatic = 1, maxTokens = 64, rank = 'logprob', rankBudgetMs = 0 } })
    ]], fake, backend)
    local file = tmp .. '/sum.py'
    vim.fn.writefile({ 'def total(xs):', '    """Sum of xs."""', '    ' }, file)

    local function name(s)
      return ('[%s] %s'):format(backend, s)
    end

    H.test(name('opening a Python file starts the server with the settings'), function()
      H.eq(backend, child:lua('return require("codegen").backend()'), 'backend')
      child:cmd('edit ' .. vim.fn.fnameescape(file))
      child:wait('T.client() and T.client().initialized', 5000, 'the codegen client')
      H.eq(true, child:lua('return vim.lsp.buf_is_attached(0, T.client().id)'), 'attached')
      local init = messages(log, 'initialize')[1]
      H.truthy(init, 'initialize request')
      local opts = init.params.initializationOptions
      H.eq(3, opts.n, 'n')
      H.eq(1, opts.nAutomatic, 'nAutomatic')
      H.eq(64, opts.maxTokens, 'maxTokens')
      H.eq('logprob', opts.rank, 'rank')
      H.eq(0, opts.rankBudgetMs, 'rankBudgetMs')
      H.eq(false, child:lua([[return vim.fn.execute("messages"):find("unknown server setting", 1, true) ~= nil]]), 'no unknown-setting warning')
      H.eq(true, opts.enabled, 'enabled')
      H.eq(true, vim.tbl_contains(opts.languages, 'python'), 'python in languages')
      wait_setting(log, 'n', 3) -- Neovim sends `settings` after initialize
      wait_setting(log, 'nAutomatic', 1)
      wait_setting(log, 'rank', 'logprob')
      wait_setting(log, 'rankBudgetMs', 0)
    end)

    H.test(name('codegen/status reaches the statusline'), function()
      child:wait('require("codegen").status.state == "ready"', 5000, 'ready')
      H.eq('codegen: ready (fake-model, 7 ms)', child:lua('return require("codegen").statusline()'), 'statusline')
    end)

    H.test(name('a suggestion appears as ghost text'), function()
      child:cmd('call cursor(3, 5)')
      child:input('A')
      local s = child:wait('T.suggestion()', 5000, 'a suggestion')
      H.eq('total = 0\n    for x in xs:\n        total += x\n    return total', s, 'suggestion')
      local marks = child:lua([[
        local n = 0
        for _, ns in pairs(vim.api.nvim_get_namespaces()) do
          n = n + #vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, {})
        end
        return n
      ]])
      H.eq(true, marks > 0, 'extmarks drawn')
    end)

    local function trigger_kinds()
      return vim.tbl_map(function(m)
        return m.params.context.triggerKind
      end, messages(log, 'textDocument/inlineCompletion'))
    end

    H.test(name('typing asks automatically (triggerKind 2) and gets nAutomatic candidates'), function()
      H.eq({}, vim.tbl_filter(function(k) return k ~= 2 end, trigger_kinds()), 'only automatic requests so far')
      H.eq(true, #trigger_kinds() > 0, 'requests made')
    end)

    H.test(name('next and previous candidate, in the server\'s order'), function()
      -- One candidate while typing: the first <M-]> asks explicitly (triggerKind 1) for n.
      local before = #trigger_kinds()
      child:input('<M-]>')
      child:wait('T.suggestion() == "return sum(xs)"', 3000, 'second candidate')
      child:input('<M-]>')
      child:wait('T.suggestion() == "return functools.reduce(operator.add, xs, 0)"', 3000, 'third candidate')
      child:input('<M-]>')
      child:wait('T.suggestion() and vim.startswith(T.suggestion(), "total = 0")', 3000, 'first candidate after the last')
      child:input('<M-[>')
      child:wait('T.suggestion() == "return functools.reduce(operator.add, xs, 0)"', 3000, 'last candidate before the first')
      child:input('<M-]>')
      child:wait('T.suggestion() and vim.startswith(T.suggestion(), "total = 0")', 3000, 'first candidate again')
      local kinds = vim.list_slice(trigger_kinds(), before + 1)
      H.eq({ 1 }, kinds, 'one explicit request, then cycling through its items')
    end)

    H.test(name('accept line inserts one line and reports a partial acceptance'), function()
      local expected = child:lua('return T.with_piece(require("codegen.text").next_line(T.suggestion()))')
      child:input('<M-Down>')
      child:wait('T.buf_text() == ' .. vim.inspect(expected), 3000, 'the line inserted')
      H.eq({ 'def total(xs):', '    """Sum of xs."""', '    total = 0', '' }, child:lua('return vim.api.nvim_buf_get_lines(0, 0, -1, false)'), 'lines')
      H.eq('i', child:lua('return T.mode()'), 'still in insert mode')
      local partial = child:wait([[(function()
        for _, l in ipairs(vim.fn.readfile(vim.env.FAKE_LSP_LOG)) do
          local m = vim.json.decode(l)
          if m.method == 'workspace/executeCommand' and m.params.arguments[1].kind == 'partial' then return m.params end
        end
      end)()]], 3000, 'executeCommand codegen.accepted partial')
      H.eq('codegen.accepted', partial.command, 'command')
      H.eq(10, partial.arguments[1].acceptedLength, 'acceptedLength of "total = 0\\n"')
      H.truthy(partial.arguments[1].id, 'item id')
    end)

    H.test(name('accept word inserts the next word'), function()
      local s = child:wait('T.suggestion()', 5000, 'a suggestion after accept line')
      local expected = child:lua('return T.with_piece(require("codegen.text").next_word(...))', s)
      child:input('<M-Right>')
      child:wait('T.buf_text() == ' .. vim.inspect(expected), 3000, 'the word inserted')
    end)

    H.test(name('<Tab> accepts the whole suggestion and runs its command'), function()
      local s = child:wait('T.suggestion()', 5000, 'a suggestion')
      local expected = child:lua('return T.with_piece(...)', s)
      child:input('<Tab>')
      child:wait('T.buf_text() == ' .. vim.inspect(expected), 3000, 'the suggestion inserted')
      child:wait([[(function()
        for _, l in ipairs(vim.fn.readfile(vim.env.FAKE_LSP_LOG)) do
          local m = vim.json.decode(l)
          if m.method == 'workspace/executeCommand' and m.params.arguments[1].kind == 'full' then return true end
        end
      end)()]], 3000, 'executeCommand codegen.accepted full')
    end)

    H.test(name('dismiss hides the suggestion; <Tab> without one is a <Tab>'), function()
      child:input('<Esc>')
      child:lua('vim.api.nvim_buf_set_lines(0, 2, -1, false, { "    " })')
      child:cmd('call cursor(3, 5)')
      child:input('A')
      child:wait('T.suggestion()', 5000, 'a suggestion')
      child:input('<C-]>')
      child:wait('T.suggestion() == nil', 3000, 'no suggestion after dismiss')
      child:lua('require("codegen").toggle(false)')
      child:input('<Tab>')
      child:wait('vim.api.nvim_get_current_line() ~= "    "', 3000, 'the tab typed')
      H.eq(true, child:lua('return not vim.api.nvim_get_current_line():find("total")'), 'no suggestion accepted')
      child:lua('require("codegen").toggle(true)')
    end)

    H.test(name('trigger() asks explicitly and shows the best candidate'), function()
      child:input('<Esc>')
      child:lua('vim.api.nvim_buf_set_lines(0, 2, -1, false, { "    ret" })')
      child:cmd('call cursor(3, 8)')
      child:input('A')
      child:wait('T.suggestion() == "urn sum(xs)"', 5000, 'the automatic suggestion')
      local before = #trigger_kinds()
      child:lua('require("codegen").trigger()')
      for _ = 1, 100 do
        if #trigger_kinds() > before then
          break
        end
        vim.wait(30)
      end
      H.eq({ 1 }, vim.list_slice(trigger_kinds(), before + 1), 'triggerKind Invoked')
      child:sleep(300)
      H.eq('urn sum(xs)', child:lua('return T.suggestion()'), 'the best of the two')
      child:input('<M-]>')
      child:wait('T.suggestion() == "urn functools.reduce(operator.add, xs, 0)"', 3000, 'the second, without asking again')
      H.eq({ 1 }, vim.list_slice(trigger_kinds(), before + 1), 'no other request')
      child:input('<Esc>')
    end)

    H.test(name(':CodegenToggle turns suggestions off and tells the server'), function()
      child:input('<Esc>')
      child:cmd('CodegenToggle')
      wait_setting(log, 'enabled', false)
      H.eq('codegen: off', child:lua('return require("codegen").statusline()'), 'statusline')
      child:lua('vim.api.nvim_buf_set_lines(0, 2, -1, false, { "    " })')
      child:cmd('call cursor(3, 5)')
      child:input('A')
      child:sleep(600)
      H.eq(true, child:lua('return T.suggestion() == nil'), 'no suggestion while off')
      child:input('<Esc>')
      child:cmd('CodegenToggle')
      wait_setting(log, 'enabled', true)
      child:input('A')
      child:wait('T.suggestion()', 5000, 'suggestions again')
      child:input('<Esc>')
    end)

    H.test(name(':CodegenModel switches the model'), function()
      child:cmd('CodegenModel fake-model-large')
      wait_setting(log, 'model', 'fake-model-large')
      child:lua([[
        vim.ui.select = function(items, opts, on_choice)
          _G.offered = vim.tbl_map(function(m) return opts.format_item(m) end, items)
          on_choice(items[1])
        end
      ]])
      child:cmd('CodegenModel')
      child:wait('_G.offered', 3000, 'the model menu')
      local offered = child:lua('return _G.offered')
      H.eq(2, #offered, 'two models offered')
      H.contains(offered[1], 'fake-model-small', 'first entry')
      H.contains(offered[1], 'cached', 'first entry')
      child:wait('require("codegen").config.settings.model == "fake-model-small"', 3000, 'model picked')
      wait_setting(log, 'model', 'fake-model-small')
    end)

    H.test(name(':CodegenStats shows `codegen stats`'), function()
      child:cmd('CodegenStats --since 1d')
      child:wait('vim.bo.buftype == "nofile" and T.buf_text():find("accepted", 1, true)', 3000, 'the stats window')
      H.contains(child:lua('return T.buf_text()'), 'args: stats --since 1d', 'arguments passed')
      child:cmd('close')
    end)

    H.test(name(':checkhealth codegen'), function()
      child:cmd('checkhealth codegen')
      local report = child:wait('vim.bo.filetype == "checkhealth" and T.buf_text():find("codegen: server") and T.buf_text()', 30000, 'the health report')
      H.contains(report, 'version: codegen 0.0.0-fake', 'report')
      H.contains(report, 'model cache: ', 'report')
      H.contains(report, 'starts and offers inline completion', 'report')
      if report:find('ERROR', 1, true) then
        error('errors in the health report:\n' .. report)
      end
      child:cmd('bwipeout')
    end)

    H.test(name('the server is restarted when it dies'), function()
      local old = child:lua('return T.client().id')
      -- The editor's server, not the one :checkhealth started and stopped.
      local pid, editor_pid
      for _, e in ipairs(server_log(log)) do
        if e.pid then
          pid = e.pid
        elseif e.method == 'initialize' and e.params.clientInfo.name ~= 'codegen-checkhealth' then
          editor_pid = pid
        end
      end
      vim.uv.kill(editor_pid, 'sigkill')
      child:wait('T.client() and T.client().id ~= ' .. old .. ' and T.client().initialized', 10000, 'a new client')
      child:wait('vim.lsp.buf_is_attached(0, T.client().id)', 5000, 'the buffer attached again')
    end)

    H.test(name(':CodegenRestart starts a new server'), function()
      local old = child:lua('return T.client().id')
      child:cmd('CodegenRestart')
      child:wait('T.client() and T.client().id ~= ' .. old .. ' and T.client().initialized', 10000, 'a new client')
      child:wait('vim.lsp.buf_is_attached(0, T.client().id)', 5000, 'the buffer attached again')
      H.eq(1, child:lua('return #vim.lsp.get_clients({ name = "codegen" })'), 'one server')
    end)

    child:stop()
  end

  for _, backend in ipairs(backends) do
    H.test(('[%s] insert mode before the model is loaded: the suggestion comes when it is'):format(backend), function()
      local tmp = vim.fn.tempname()
      vim.fn.mkdir(tmp, 'p')
      local child = H.spawn({ cwd = tmp, env = { FAKE_LSP_LOADING_MS = '1500' }, init = H.CHILD_HELPERS })
      child:lua([[require('codegen').setup({ cmd = { ..., 'lsp' }, backend = select(2, ...) })]], fake, backend)
      vim.fn.writefile({ 'def total(xs):', '    ' }, tmp .. '/t.py')
      child:cmd('edit ' .. tmp .. '/t.py')
      child:cmd('call cursor(2, 5)')
      child:input('A')
      child:wait('T.client() and T.client().initialized', 5000, 'the client')
      H.eq('loading', child:lua('return require("codegen").status.state'), 'still loading')
      H.eq(true, child:lua('return T.suggestion() == nil'), 'no suggestion while loading')
      child:wait('T.suggestion()', 6000, 'a suggestion once ready, without another keystroke')
      child:stop()
    end)
  end

  H.test('keymaps can be changed or turned off', function()
    local child = H.spawn({ init = H.CHILD_HELPERS })
    child:lua([[require('codegen').setup({ cmd = { ..., 'lsp' }, keymaps = { accept = '<C-y>', next = false } })]], fake)
    H.eq('codegen: accept suggestion', child:lua([[return vim.fn.maparg('<C-y>', 'i', false, true).desc]]), '<C-y>')
    H.eq('', child:lua([[return vim.fn.maparg('<M-]>', 'i')]]), 'next unmapped')
    H.eq(false, child:lua([[return (vim.fn.maparg('<Tab>', 'i', false, true).desc or ''):find('codegen') ~= nil]]), 'default accept unmapped')
    H.eq('codegen: accept next line', child:lua([[return vim.fn.maparg('<M-Down>', 'i', false, true).desc]]), 'default kept')
    child:stop()
    child = H.spawn({ init = H.CHILD_HELPERS })
    child:lua([[require('codegen').setup({ cmd = { ..., 'lsp' }, keymaps = false })]], fake)
    H.eq(false, child:lua([[return (vim.fn.maparg('<Tab>', 'i', false, true).desc or ''):find('codegen') ~= nil]]), 'no maps')
    H.eq(2, child:lua([[return vim.fn.exists(':CodegenToggle')]]), 'commands still defined')
    child:stop()
  end)

  H.test('a missing binary gets a warning and a health error', function()
    local child = H.spawn({ init = H.CHILD_HELPERS })
    child:lua([[
      _G.notes = {}
      vim.notify = function(msg) table.insert(_G.notes, msg) end
      require('codegen').setup({ cmd = { 'codegen-does-not-exist', 'lsp' } })
    ]])
    local file = vim.fn.tempname() .. '.py'
    vim.fn.writefile({ 'x = 1' }, file)
    child:cmd('edit ' .. file)
    local notes = child:wait('#_G.notes > 0 and _G.notes', 3000, 'a warning')
    H.contains(notes[1], 'codegen-does-not-exist', 'warning')
    child:cmd('checkhealth codegen')
    local report = child:wait('vim.bo.filetype == "checkhealth" and T.buf_text():find("codegen: binary") and T.buf_text()', 10000, 'health report')
    H.contains(report, 'not found or not executable', 'report')
    child:stop()
  end)
end
