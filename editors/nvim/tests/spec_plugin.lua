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
      local ok, entry = pcall(vim.json.decode, line)
      if ok then -- the last line may be half written
        table.insert(entries, entry)
      end
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
      child:input('<M-C-Right>')
      child:wait('T.buf_text() == ' .. vim.inspect(expected), 3000, 'the line inserted')
      H.eq({ 'def total(xs):', '    """Sum of xs."""', '    total = 0', '' }, child:lua('return vim.api.nvim_buf_get_lines(0, 0, -1, false)'), 'lines')
      H.eq('i', child:lua('return T.mode()'), 'still in insert mode')
      local partial = child:wait([[(function()
        for _, l in ipairs(vim.fn.readfile(vim.env.FAKE_LSP_LOG)) do
          local ok, m = pcall(vim.json.decode, l)
          if ok and m.method == 'workspace/executeCommand' and m.params.arguments[1].kind == 'partial' then return m.params end
        end
      end)()]], 3000, 'executeCommand codegen.accepted partial')
      H.eq('codegen.accepted', partial.command, 'command')
      H.eq(10, partial.arguments[1].acceptedLength, 'acceptedLength of "total = 0\\n"')
      H.truthy(partial.arguments[1].id, 'item id')
    end)

    local function partials()
      return vim.tbl_filter(function(m)
        return m.params.command == 'codegen.accepted' and m.params.arguments[1].kind == 'partial'
      end, messages(log, 'workspace/executeCommand'))
    end

    H.test(name('accept word inserts the next word and reports the length accepted so far'), function()
      local line_partial = partials()[1].params.arguments[1]
      local s = child:wait('T.suggestion()', 5000, 'a suggestion after accept line')
      local word = child:lua('return require("codegen.text").next_word(...)', s)
      local expected = child:lua('return T.with_piece(...)', word)
      local before = #partials()
      child:input('<M-Right>')
      child:wait('T.buf_text() == ' .. vim.inspect(expected), 3000, 'the word inserted')
      for _ = 1, 100 do
        if #partials() > before then
          break
        end
        vim.wait(30)
      end
      local got = partials()[before + 1]
      H.truthy(got, 'a partial acceptance reported')
      local arg = got.params.arguments[1]
      if backend == 'extmark' then
        -- The same item as the line: the length counts both.
        H.eq(line_partial.id, arg.id, 'same item as accept line')
        H.eq(line_partial.acceptedLength + #word, arg.acceptedLength, 'acceptedLength of line + word')
      else
        -- vim.lsp.inline_completion asked again after the line: a new item.
        H.eq(#word, arg.acceptedLength, 'acceptedLength of the word')
      end
    end)

    H.test(name('<Tab> accepts the whole suggestion and runs its command'), function()
      local s = child:wait('T.suggestion()', 5000, 'a suggestion')
      local expected = child:lua('return T.with_piece(...)', s)
      child:input('<Tab>')
      child:wait('T.buf_text() == ' .. vim.inspect(expected), 3000, 'the suggestion inserted')
      child:wait([[(function()
        for _, l in ipairs(vim.fn.readfile(vim.env.FAKE_LSP_LOG)) do
          local ok, m = pcall(vim.json.decode, l)
          if ok and m.method == 'workspace/executeCommand' and m.params.arguments[1].kind == 'full' then return true end
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

    H.test(name('<M-\\> (trigger()) asks explicitly and shows the best candidate'), function()
      child:input('<Esc>')
      child:lua('vim.api.nvim_buf_set_lines(0, 2, -1, false, { "    ret" })')
      child:cmd('call cursor(3, 8)')
      child:input('A')
      child:wait('T.suggestion() == "urn sum(xs)"', 5000, 'the automatic suggestion')
      local before = #trigger_kinds()
      child:input('<M-\\>')
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

    H.test(name(':CodegenStatus shows the state, the model, the buffer and the latency'), function()
      local out = child:lua('return vim.fn.execute("CodegenStatus")')
      H.contains(out, 'codegen: ready', ':CodegenStatus')
      H.contains(out, 'model: fake-model', ':CodegenStatus')
      H.contains(out, 'this buffer: on', ':CodegenStatus')
      H.contains(out, 'last latency: 7 ms', ':CodegenStatus')
      H.contains(out, 'ghost text: ' .. backend, ':CodegenStatus')
    end)

    H.test(name(':CodegenDisable and vim.b.codegen_enabled turn one buffer off'), function()
      local confs = #messages(log, 'workspace/didChangeConfiguration')
      child:cmd('CodegenDisable')
      H.eq(false, child:lua('return vim.b.codegen_enabled'), 'vim.b.codegen_enabled')
      H.eq('codegen: off (buffer)', child:lua('return require("codegen").statusline()'), 'statusline')
      H.contains(child:lua('return vim.fn.execute("CodegenStatus")'), 'this buffer: off', ':CodegenStatus')
      child:lua('vim.api.nvim_buf_set_lines(0, 2, -1, false, { "    " })')
      child:cmd('call cursor(3, 5)')
      child:input('A')
      child:sleep(600)
      H.eq(true, child:lua('return T.suggestion() == nil'), 'no suggestion in this buffer')
      child:input('<Esc>')
      H.eq(confs, #messages(log, 'workspace/didChangeConfiguration'), 'the server is not told (other buffers still ask)')
      -- Another buffer still gets suggestions.
      child:cmd('split ' .. vim.fn.fnameescape(tmp .. '/other.py'))
      child:lua('vim.api.nvim_buf_set_lines(0, 0, -1, false, { "def f(xs):", "    " })')
      child:wait('vim.lsp.buf_is_attached(0, T.client().id)', 5000, 'the other buffer attached')
      child:cmd('call cursor(2, 5)')
      child:input('A')
      child:wait('T.suggestion()', 5000, 'a suggestion in the other buffer')
      child:input('<Esc>')
      child:cmd('bwipeout!')
      child:cmd('CodegenEnable')
      child:cmd('call cursor(3, 5)')
      child:input('A')
      child:wait('T.suggestion()', 5000, 'suggestions again after :CodegenEnable')
      child:input('<Esc>')
      -- The variable alone, set as an ftplugin or a user would.
      child:lua('vim.b.codegen_enabled = false')
      child:input('A')
      child:sleep(600)
      H.eq(true, child:lua('return T.suggestion() == nil'), 'no suggestion with vim.b.codegen_enabled = false')
      child:input('<Esc>')
      child:lua('vim.b.codegen_enabled = nil')
      child:input('A')
      child:wait('T.suggestion()', 5000, 'suggestions again')
      child:input('<Esc>')
    end)

    H.test(name(':CodegenModel switches the model'), function()
      H.eq({ 'fake-model-large' }, child:lua([[return vim.fn.getcompletion('CodegenModel fake-model-l', 'cmdline')]]), 'completion from --json')
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
      H.contains(offered[1], '469 MiB', 'size from size_bytes')
      H.contains(offered[1], 'default', 'the default model marked')
      H.contains(offered[2], 'fake-model-large  1066 MiB  not cached', 'second entry')
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

  H.test('model download: $/progress shows in the statusline and :CodegenStatus, notified at start and end', function()
    local tmp = vim.fn.tempname()
    vim.fn.mkdir(tmp, 'p')
    local child = H.spawn({ cwd = tmp, env = { FAKE_LSP_DOWNLOAD_MS = tostring(math.floor(1500 * H.slack)) }, init = H.CHILD_HELPERS })
    child:lua([[
      _G.notes = {}
      vim.notify = function(msg) table.insert(_G.notes, msg) end
      require('codegen').setup({ cmd = { ..., 'lsp' } })
    ]], fake)
    vim.fn.writefile({ 'def total(xs):', '    ' }, tmp .. '/t.py')
    child:cmd('edit ' .. tmp .. '/t.py')
    child:wait('require("codegen").statusline() == "codegen: downloading 87%"', 5000, 'downloading 87% in the statusline')
    local out = child:lua('return vim.fn.execute("CodegenStatus")')
    H.contains(out, 'codegen: loading', ':CodegenStatus')
    H.contains(out, 'progress: downloading 87% (412.3 / 469.0 MiB)', ':CodegenStatus')
    child:wait('require("codegen").status.state == "ready"', 10000, 'ready')
    H.eq('codegen: ready (fake-model, 7 ms)', child:lua('return require("codegen").statusline()'), 'statusline when ready')
    H.eq(nil, (child:lua('return vim.fn.execute("CodegenStatus")')):find('progress:', 1, true), 'no progress line when ready')
    local notes = child:wait('#_G.notes >= 2 and _G.notes', 3000, 'two notifications')
    local downloads = vim.tbl_filter(function(n) return n:find('download', 1, true) ~= nil end, notes)
    H.eq(2, #downloads, 'download notifications (start and end only): ' .. vim.inspect(notes))
    H.contains(downloads[1], 'downloading the model', 'start')
    H.contains(downloads[2], 'download finished', 'end')
    child:stop()
  end)

  H.test('filetypes map: "*" enables every filetype, false turns one off; :CodegenEnable overrides', function()
    local tmp = vim.fn.tempname()
    vim.fn.mkdir(tmp, 'p')
    local log = tmp .. '/server.jsonl'
    local child = H.spawn({ cwd = tmp, env = { FAKE_LSP_LOG = log }, init = H.CHILD_HELPERS })
    child:lua([[require('codegen').setup({ cmd = { ..., 'lsp' }, filetypes = { ['*'] = true, markdown = false, gitcommit = false } })]], fake)
    vim.fn.writefile({ 'hello' }, tmp .. '/a.txt')
    vim.fn.writefile({ '# title' }, tmp .. '/b.md')
    -- Markdown first: no server; :CodegenEnable starts it for this buffer.
    child:cmd('edit ' .. tmp .. '/b.md')
    H.eq('markdown', child:lua('return vim.bo.filetype'), 'filetype')
    child:sleep(300)
    H.eq(true, child:lua('return T.client() == nil'), 'no server for markdown')
    H.eq('', child:lua('return require("codegen").statusline()'), 'no statusline in a buffer codegen leaves alone')
    H.contains(child:lua('return vim.fn.execute("CodegenStatus")'), 'this buffer: off, filetype markdown is not enabled', ':CodegenStatus')
    child:cmd('CodegenEnable')
    child:wait('T.client() and T.client().initialized and vim.lsp.buf_is_attached(0, T.client().id)', 5000, 'markdown attached after :CodegenEnable')
    H.contains(child:lua('return vim.fn.execute("CodegenStatus")'), 'this buffer: on', ':CodegenStatus')
    local init = messages(log, 'initialize')[1]
    H.eq(vim.NIL, init.params.initializationOptions.languages, 'languages: null (every language)')
    -- Any other filetype attaches by itself, to the same server.
    child:cmd('edit ' .. tmp .. '/a.txt')
    child:wait('vim.lsp.buf_is_attached(0, T.client().id)', 5000, 'a text buffer attached')
    H.eq(1, child:lua('return #vim.lsp.get_clients({ name = "codegen" })'), 'the same server')
    child:cmd('enew')
    child:cmd('setfiletype gitcommit')
    child:sleep(200)
    H.eq(false, child:lua('return vim.lsp.buf_is_attached(0, T.client().id)'), 'gitcommit not attached')
    child:stop()
  end)

  H.test('filetypes list: other filetypes are left alone; languages sent to the server', function()
    local tmp = vim.fn.tempname()
    vim.fn.mkdir(tmp, 'p')
    local log = tmp .. '/server.jsonl'
    local child = H.spawn({ cwd = tmp, env = { FAKE_LSP_LOG = log }, init = H.CHILD_HELPERS })
    child:lua([[require('codegen').setup({ cmd = { ..., 'lsp' }, filetypes = { 'python' } })]], fake)
    vim.fn.writefile({ 'hello' }, tmp .. '/a.txt')
    vim.fn.writefile({ 'x = 1' }, tmp .. '/b.py')
    child:cmd('edit ' .. tmp .. '/a.txt')
    child:sleep(300)
    H.eq(true, child:lua('return T.client() == nil'), 'no server for a text file')
    child:cmd('edit ' .. tmp .. '/b.py')
    child:wait('T.client() and T.client().initialized and vim.lsp.buf_is_attached(0, T.client().id)', 5000, 'python attached')
    H.eq({ 'python' }, messages(log, 'initialize')[1].params.initializationOptions.languages, 'languages')
    -- A text buffer turned on by hand: the server is told to complete `text` too.
    child:cmd('split ' .. tmp .. '/a.txt')
    child:cmd('CodegenEnable')
    child:wait('vim.lsp.buf_is_attached(0, T.client().id)', 5000, 'the text buffer attached after :CodegenEnable')
    local languages
    for _ = 1, 100 do
      local confs = messages(log, 'workspace/didChangeConfiguration')
      languages = confs[#confs] and confs[#confs].params.settings.codegen.languages
      if vim.deep_equal(languages, { 'python', 'text' }) then
        break
      end
      vim.wait(30)
    end
    H.eq({ 'python', 'text' }, languages, 'languages after :CodegenEnable in a text buffer')
    child:cmd('close')
    -- A filetype change to one that is not enabled detaches.
    child:cmd('set filetype=text')
    child:wait('not vim.lsp.buf_is_attached(0, T.client().id)', 3000, 'detached after the filetype changed')
    child:stop()
  end)

  H.test('should_attach decides per buffer', function()
    local tmp = vim.fn.tempname()
    vim.fn.mkdir(tmp, 'p')
    local child = H.spawn({ cwd = tmp, init = H.CHILD_HELPERS })
    child:lua([[require('codegen').setup({
      cmd = { ..., 'lsp' },
      should_attach = function(bufnr)
        _G.asked = (_G.asked or 0) + 1
        return not vim.api.nvim_buf_get_name(bufnr):find('secret', 1, true)
      end,
    })]], fake)
    vim.fn.writefile({ 'x = 1' }, tmp .. '/secret.py')
    vim.fn.writefile({ 'x = 1' }, tmp .. '/open.py')
    child:cmd('edit ' .. tmp .. '/secret.py')
    child:sleep(300)
    H.truthy(child:lua('return _G.asked'), 'should_attach called')
    H.eq(true, child:lua('return T.client() == nil'), 'no server for secret.py')
    H.contains(child:lua('return vim.fn.execute("CodegenStatus")'), 'should_attach returned false', ':CodegenStatus')
    child:cmd('edit ' .. tmp .. '/open.py')
    child:wait('T.client() and T.client().initialized and vim.lsp.buf_is_attached(0, T.client().id)', 5000, 'open.py attached')
    child:cmd('edit ' .. tmp .. '/secret.py')
    child:sleep(300)
    H.eq(false, child:lua('return vim.lsp.buf_is_attached(0, T.client().id)'), 'secret.py still not attached')
    child:stop()
  end)

  H.test('without a suggestion the keys do what their earlier mappings did', function()
    local tmp = vim.fn.tempname()
    vim.fn.mkdir(tmp, 'p')
    local child = H.spawn({ cwd = tmp, init = H.CHILD_HELPERS })
    child:lua([==[
      -- <Tab>: a Lua callback that edits the buffer (as snippet plugins do): not an <expr> map.
      vim.keymap.set('i', '<Tab>', function()
        _G.tab_calls = (_G.tab_calls or 0) + 1
        vim.api.nvim_put({ '[callback]' }, 'c', false, true)
      end)
      -- accept word: a Vim script <expr> mapping (completion menus).
      vim.cmd([=[inoremap <expr> <M-Right> pumvisible() ? "\<C-n>" : "[expr]"]=])
      -- accept line: a Lua <expr> callback whose keys need replace_keycodes.
      vim.keymap.set('i', '<M-C-Right>', function() return 'ab<Left>' end, { expr = true })
      -- dismiss: a recursive map to a <Plug> map.
      vim.cmd([=[inoremap <Plug>(test-dismiss) [plug]]=])
      vim.cmd([=[imap <C-]> <Plug>(test-dismiss)]=])
      require('codegen').setup({ cmd = { ..., 'lsp' } })
    ]==], fake)
    vim.fn.writefile({ 'def total(xs):', '    ' }, tmp .. '/t.py')
    child:cmd('edit ' .. tmp .. '/t.py')
    child:cmd('call cursor(2, 5)')
    child:input('A')
    local s = child:wait('T.suggestion()', 5000, 'a suggestion')
    local expected = child:lua('return T.with_piece(...)', s)
    child:input('<Tab>')
    child:wait('T.buf_text() == ' .. vim.inspect(expected), 3000, '<Tab> accepts the suggestion')
    H.eq(true, child:lua('return _G.tab_calls == nil'), 'the earlier <Tab> not run')
    child:input('<Esc>')
    child:lua('require("codegen").toggle(false)')
    local function line_after(keys)
      child:input('<Esc>')
      child:wait('T.mode() == "n"', 3000, 'normal mode')
      child:lua('vim.api.nvim_buf_set_lines(0, 0, -1, false, { "" })')
      child:input('i' .. keys)
      child:wait('T.buf_text() ~= ""', 3000, 'something typed after ' .. keys)
      child:sleep(50)
      return child:lua('return T.buf_text()')
    end
    H.eq('[callback]', line_after('<Tab>'), '<Tab>: the Lua callback')
    H.eq(1, child:lua('return _G.tab_calls'), 'called once')
    H.eq('[expr]', line_after('<M-Right>'), '<M-Right>: the <expr> mapping')
    H.eq('aXb', line_after('<M-C-Right>X'), '<M-C-Right>: the Lua <expr> callback with keycodes')
    H.eq('[plug]', line_after('<C-]>'), '<C-]>: the recursive <Plug> mapping')
    -- setup() again keeps the earlier mappings (not its own) as the fallback.
    child:lua([[require('codegen').setup({ cmd = { ..., 'lsp' }, enabled = false })]], fake)
    H.eq('[callback]', line_after('<Tab>'), '<Tab> after a second setup()')
    child:stop()
  end)

  H.test('keymaps: copilot.vim\'s defaults', function()
    local child = H.spawn({ init = H.CHILD_HELPERS })
    child:lua([[require('codegen').setup({ cmd = { ..., 'lsp' } })]], fake)
    local function desc(lhs)
      return child:lua([[return vim.fn.maparg(..., 'i', false, true).desc]], lhs)
    end
    H.eq('codegen: accept suggestion', desc('<Tab>'), '<Tab>')
    H.eq('codegen: ask for suggestions now', desc('<M-\\>'), '<M-\\>')
    H.eq('codegen: next suggestion', desc('<M-]>'), '<M-]>')
    H.eq('codegen: previous suggestion', desc('<M-[>'), '<M-[>')
    H.eq('codegen: accept next word', desc('<M-Right>'), '<M-Right>')
    H.eq('codegen: accept next line', desc('<M-C-Right>'), '<M-C-Right>')
    H.eq('codegen: dismiss suggestion', desc('<C-]>'), '<C-]>')
    child:stop()
  end)

  H.test('keymaps can be changed or turned off', function()
    local child = H.spawn({ init = H.CHILD_HELPERS })
    child:lua([[require('codegen').setup({ cmd = { ..., 'lsp' }, keymaps = { accept = '<C-y>', next = false } })]], fake)
    H.eq('codegen: accept suggestion', child:lua([[return vim.fn.maparg('<C-y>', 'i', false, true).desc]]), '<C-y>')
    H.eq('', child:lua([[return vim.fn.maparg('<M-]>', 'i')]]), 'next unmapped')
    H.eq(false, child:lua([[return (vim.fn.maparg('<Tab>', 'i', false, true).desc or ''):find('codegen') ~= nil]]), 'default accept unmapped')
    H.eq('codegen: accept next line', child:lua([[return vim.fn.maparg('<M-C-Right>', 'i', false, true).desc]]), 'default kept')
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
