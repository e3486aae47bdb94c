--- Ghost text. Two backends over the same LSP request (textDocument/inlineCompletion):
--- `native` drives vim.lsp.inline_completion (Neovim 0.12+); `extmark` (Neovim 0.11) asks
--- the server itself and draws the suggestion with extmarks. Accept word / accept line are
--- ours in both, and report partial acceptance to the server (workspace/executeCommand
--- `codegen.accepted` with kind "partial").
local text = require('codegen.text')
local api = vim.api

local M = {}

local ns = api.nvim_create_namespace('codegen.ghost')
local METHOD = 'textDocument/inlineCompletion'
-- LSP InlineCompletionTriggerKind. The server draws `nAutomatic` candidates (default 1) for
-- Automatic and `n` (default 4, ranked) for Invoked: the user asked, or cycles.
local INVOKED, AUTOMATIC = 1, 2

---@class codegen.Item
---@field client_id integer
---@field insert_text string
---@field range? { start: { row: integer, col: integer }, end_: { row: integer, col: integer } } 0-based, byte columns
---@field command? lsp.Command

---@class codegen.BufState
---@field items lsp.InlineCompletionItem[]
---@field index integer
---@field client_id integer?
---@field anchor? { row: integer, col: integer, tick: integer } cursor when the items came
---@field accepted integer bytes of the current item accepted so far (partial accepts)
---@field request_id integer?
---@field timer uv.uv_timer_t?

---@type table<integer, codegen.BufState>
M.bufs = {}
--- native backend: items in the last inline completion answer, per buffer.
---@type table<integer, integer>
M.native_counts = {}
--- native backend: buffers whose next inline completion request is explicit, with what to do
--- with its answer.
---@type table<integer, fun(result: table)>
local native_invoke = {}
M.opts = { backend = 'auto', debounce_ms = 30 }
M.enabled = true

--- Whether suggestions are on in `bufnr`: on globally and not turned off for the buffer
--- (`vim.b.codegen_enabled = false`, :CodegenDisable).
function M.buf_enabled(bufnr)
  return M.enabled and vim.b[bufnr].codegen_enabled ~= false
end

function M.native_available()
  return vim.lsp.inline_completion ~= nil and type(vim.lsp.inline_completion.get) == 'function'
end

function M.backend()
  if M.opts.backend == 'native' or (M.opts.backend == 'auto' and M.native_available()) then
    return 'native'
  end
  return 'extmark'
end

local function resolve_buf(bufnr)
  if bufnr == nil or bufnr == 0 then
    return api.nvim_get_current_buf()
  end
  return bufnr
end

local function cursor(bufnr)
  local win = vim.fn.bufwinid(bufnr)
  local pos = api.nvim_win_get_cursor(win ~= -1 and win or 0)
  return pos[1] - 1, pos[2]
end

local function line_at(bufnr, row)
  return api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
end

--- LSP range -> 0-based rows and byte columns.
local function to_range(bufnr, lsp_range, encoding)
  if not lsp_range then
    return nil
  end
  local function pos(p)
    local l = line_at(bufnr, p.line)
    local ok, col = pcall(vim.str_byteindex, l, encoding or 'utf-16', p.character, false)
    return { row = p.line, col = ok and col or math.min(p.character, #l) }
  end
  return { start = pos(lsp_range.start), end_ = pos(lsp_range['end']) }
end

local function item_text(insert_text)
  if type(insert_text) == 'table' then
    return insert_text.value or ''
  end
  return insert_text or ''
end

--- What of `item` is not in the buffer yet, and where the cursor is.
---@param item codegen.Item
local function rest_of(bufnr, item)
  local row, col = cursor(bufnr)
  local typed = ''
  local r = item.range
  if r and r.start.row == row and r.start.col <= col then
    typed = line_at(bufnr, row):sub(r.start.col + 1, col)
  end
  return text.remainder(item.insert_text, typed), row, col
end

--- Inserts `piece` at the cursor and puts the cursor after it.
local function insert_at_cursor(bufnr, piece, replace_to_col)
  local row, col = cursor(bufnr)
  local lines = vim.split(piece, '\n', { plain = true })
  local end_col = math.max(col, replace_to_col or col)
  api.nvim_buf_set_text(bufnr, row, col, row, math.min(end_col, #line_at(bufnr, row)), lines)
  local last_row = row + #lines - 1
  local last_col = (#lines == 1 and col or 0) + #lines[#lines]
  local win = vim.fn.bufwinid(bufnr)
  api.nvim_win_set_cursor(win ~= -1 and win or 0, { last_row + 1, last_col })
end

local function item_id(item)
  local cmd = item.command
  local arg = cmd and cmd.arguments and cmd.arguments[1]
  return type(arg) == 'table' and arg.id or nil
end

--- Sends `codegen.accepted` with kind "partial" for `item`.
function M.report_partial(item, accepted_len)
  local id = item_id(item)
  local client = vim.lsp.get_client_by_id(item.client_id)
  if not id or not client then
    return
  end
  client:request('workspace/executeCommand', {
    command = 'codegen.accepted',
    arguments = { { id = id, kind = 'partial', acceptedLength = accepted_len } },
  }, function() end)
end

local function run_command(bufnr, item)
  local client = item.command and vim.lsp.get_client_by_id(item.client_id)
  if client then
    client:exec_cmd(item.command, { bufnr = bufnr })
  end
end

--- Which of `items` (just fetched for an explicit request) to show: `count` on from the one
--- that was shown (`shown`: what remained of it to type), or the best when it is not there.
local function index_after(bufnr, client, items, shown, count)
  if shown and shown ~= '' then
    for j, raw in ipairs(items) do
      local item = { insert_text = item_text(raw.insertText), range = to_range(bufnr, raw.range, client.offset_encoding) }
      if (rest_of(bufnr, item)) == shown then
        return (j - 1 + count) % #items + 1
      end
    end
  end
  return 1
end

-- ---------------------------------------------------------------------------------------
-- extmark backend (Neovim 0.11; also usable on 0.12 with backend = 'extmark')

local function state(bufnr)
  local s = M.bufs[bufnr]
  if not s then
    s = { items = {}, index = 1, accepted = 0 }
    M.bufs[bufnr] = s
  end
  return s
end

local function hide(bufnr)
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  end
end

local function current_item(bufnr)
  local s = M.bufs[bufnr]
  if not s or not s.client_id then
    return nil
  end
  local raw = s.items[s.index]
  if not raw then
    return nil
  end
  local client = vim.lsp.get_client_by_id(s.client_id)
  return {
    client_id = s.client_id,
    insert_text = item_text(raw.insertText),
    range = to_range(bufnr, raw.range, client and client.offset_encoding),
    command = raw.command,
  }
end

local function clear(bufnr)
  local s = M.bufs[bufnr]
  if s then
    s.items, s.index, s.client_id, s.anchor, s.accepted = {}, 1, nil, nil, 0
  end
  hide(bufnr)
end

local function show(bufnr)
  hide(bufnr)
  local item = current_item(bufnr)
  if not item or api.nvim_get_mode().mode:sub(1, 1) ~= 'i' then
    return
  end
  local rest, row, col = rest_of(bufnr, item)
  if rest == '' then
    return
  end
  local lines = vim.split(rest, '\n', { plain = true })
  local s = M.bufs[bufnr]
  local first = { { lines[1], 'CodegenSuggestion' } }
  local virt_lines = {}
  for i = 2, #lines do
    table.insert(virt_lines, { { lines[i], 'CodegenSuggestion' } })
  end
  if #s.items > 1 then
    local hint = { (' (%d/%d)'):format(s.index, #s.items), 'CodegenSuggestionInfo' }
    table.insert(#virt_lines > 0 and virt_lines[#virt_lines] or first, hint)
  end
  api.nvim_buf_set_extmark(bufnr, ns, row, col, {
    virt_text = first,
    virt_text_pos = 'inline',
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = 'combine',
  })
end

local function cancel(bufnr)
  local s = M.bufs[bufnr]
  if not s then
    return
  end
  if s.timer then
    if not s.timer:is_closing() then -- a fired defer_fn timer closes itself
      s.timer:stop()
      s.timer:close()
    end
    s.timer = nil
  end
  if s.request_id then
    for _, client in ipairs(vim.lsp.get_clients({ bufnr = bufnr, name = 'codegen' })) do
      client:cancel_request(s.request_id)
    end
    s.request_id = nil
  end
end

--- Asks the server for suggestions at the cursor. Automatic (while typing) unless `explicit`;
--- `pick(items, client)` chooses the index to show (default: the best, 1).
---@param explicit? boolean
---@param pick? fun(items: table[], client: vim.lsp.Client): integer
local function request(bufnr, explicit, pick)
  local s = state(bufnr)
  local client = vim.lsp.get_clients({ bufnr = bufnr, name = 'codegen' })[1]
  if not client or not M.buf_enabled(bufnr) or api.nvim_get_mode().mode:sub(1, 1) ~= 'i' then
    return
  end
  local row, col = cursor(bufnr)
  local tick = api.nvim_buf_get_changedtick(bufnr)
  local win = vim.fn.bufwinid(bufnr)
  local params = vim.lsp.util.make_position_params(win ~= -1 and win or 0, client.offset_encoding)
  params.context = { triggerKind = explicit and INVOKED or AUTOMATIC }
  local ok, id
  ok, id = client:request(METHOD, params, function(err, result)
    if s.request_id == id then
      s.request_id = nil
    end
    if err or not result or not api.nvim_buf_is_valid(bufnr) then
      return
    end
    local now_row, now_col = cursor(bufnr)
    if now_row ~= row or now_col ~= col or api.nvim_buf_get_changedtick(bufnr) ~= tick then
      return -- stale: the user moved on; a newer request is on its way
    end
    local items = result.items or result -- ranked by the server, best first: kept in that order
    local index = pick and #items > 0 and pick(items, client) or 1
    s.items, s.index, s.client_id, s.accepted = items, index, client.id, 0
    s.anchor = { row = row, col = col, tick = tick }
    show(bufnr)
  end, bufnr)
  if ok then
    s.request_id = id
  end
end

--- After a keystroke: keep showing what still matches, ask again after a short pause.
local function on_change(bufnr)
  local s = state(bufnr)
  cancel(bufnr)
  local item = current_item(bufnr)
  if item then
    local rest = rest_of(bufnr, item)
    if rest == item.insert_text and s.anchor then
      local row, col = cursor(bufnr)
      if row ~= s.anchor.row or col ~= s.anchor.col then
        clear(bufnr) -- the typed text left the suggestion
      end
    end
    show(bufnr)
  end
  if not M.buf_enabled(bufnr) then
    clear(bufnr)
    return
  end
  s.timer = vim.defer_fn(function()
    s.timer = nil
    if api.nvim_buf_is_valid(bufnr) then
      request(bufnr)
    end
  end, M.opts.debounce_ms)
end

local function attach_extmark(bufnr)
  local group = api.nvim_create_augroup('codegen.ghost.' .. bufnr, { clear = true })
  api.nvim_create_autocmd({ 'InsertEnter', 'CursorMovedI', 'TextChangedI' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      local s = state(bufnr)
      local row, col = cursor(bufnr)
      local key = ('%d:%d:%d'):format(row, col, api.nvim_buf_get_changedtick(bufnr))
      if s.last_key == key then
        return -- CursorMovedI and TextChangedI for the same keystroke
      end
      s.last_key = key
      on_change(bufnr)
    end,
  })
  api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      cancel(bufnr)
      clear(bufnr)
      state(bufnr).last_key = nil
    end,
  })
end

-- ---------------------------------------------------------------------------------------
-- public API, same for both backends

--- native backend: vim.lsp.inline_completion only ever asks with triggerKind Automatic and
--- keeps its items to itself. Its requests to our client go through this wrapper, which counts
--- the items of each answer and turns the request after an explicit action into Invoked.
local function wrap_native_requests(client)
  if client._codegen_wrapped then
    return
  end
  client._codegen_wrapped = true
  local request = client.request
  client.request = function(self, method, params, handler, ...)
    local doc = method == METHOD and type(params) == 'table' and params.textDocument
    local bufnr = doc and handler and vim.uri_to_bufnr(doc.uri)
    if bufnr then
      local after = native_invoke[bufnr]
      native_invoke[bufnr] = nil
      if after then
        params.context = vim.tbl_extend('force', params.context or {}, { triggerKind = INVOKED })
      end
      local inner = handler
      handler = function(err, result, ctx, ...)
        if not err and result then
          M.native_counts[bufnr] = #(result.items or result)
        end
        if inner then
          inner(err, result, ctx, ...)
        end
        if after and not err and result then
          after(result)
        end
      end
    end
    return request(self, method, params, handler, ...)
  end
end

--- Makes the buffer's ghost text follow buf_enabled(): on entering insert mode (the buffer
--- variable may have changed) and after :CodegenEnable / :CodegenDisable.
function M.sync(bufnr)
  if not api.nvim_buf_is_valid(bufnr) then
    return
  end
  local on = M.buf_enabled(bufnr)
  if M.backend() == 'native' then
    if vim.lsp.inline_completion.is_enabled({ bufnr = bufnr }) ~= on then
      vim.lsp.inline_completion.enable(on, { bufnr = bufnr })
    end
  elseif not on then
    cancel(bufnr)
    clear(bufnr)
  end
end

--- Called from the server config's on_attach.
function M.attach(client, bufnr)
  -- Before vim.lsp.inline_completion's own InsertEnter, so that it sees the result.
  local group = api.nvim_create_augroup('codegen.buffer.' .. bufnr, { clear = true })
  api.nvim_create_autocmd('InsertEnter', {
    group = group,
    buffer = bufnr,
    callback = function()
      M.sync(bufnr)
    end,
  })
  if M.backend() == 'native' then
    wrap_native_requests(client)
    if M.buf_enabled(bufnr) then
      vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    end
  else
    attach_extmark(bufnr)
  end
  vim.schedule(M.refresh)
end

function M.detach(bufnr)
  cancel(bufnr)
  clear(bufnr)
  M.native_counts[bufnr], native_invoke[bufnr] = nil, nil
  pcall(api.nvim_del_augroup_by_name, 'codegen.ghost.' .. bufnr)
  pcall(api.nvim_del_augroup_by_name, 'codegen.buffer.' .. bufnr)
  M.bufs[bufnr] = nil
end

--- Asks again now if the current buffer is in insert mode (the server just attached or finished
--- loading the model, so an earlier request may have come back empty).
function M.refresh()
  local bufnr = api.nvim_get_current_buf()
  if not M.buf_enabled(bufnr) or api.nvim_get_mode().mode:sub(1, 1) ~= 'i' then
    return
  end
  if #vim.lsp.get_clients({ bufnr = bufnr, name = 'codegen' }) == 0 then
    return
  end
  if M.backend() == 'native' then
    api.nvim_exec_autocmds('CursorMovedI', { buffer = bufnr, modeline = false })
  else
    state(bufnr).last_key = nil
    on_change(bufnr)
  end
end

--- Turns suggestions on or off in every attached buffer (buffers turned off stay off).
function M.set_enabled(enabled)
  M.enabled = enabled
  for _, client in ipairs(vim.lsp.get_clients({ name = 'codegen' })) do
    for _, bufnr in ipairs(vim.lsp.get_buffers_by_client_id(client.id)) do
      M.sync(bufnr)
    end
  end
end

--- Whether a suggestion is shown in `bufnr`.
function M.visible(bufnr)
  bufnr = resolve_buf(bufnr)
  if M.backend() == 'native' then
    for _, mark in ipairs(api.nvim_buf_get_extmarks(bufnr, -1, 0, -1, { details = true })) do
      local details = mark[4]
      if details and details.ns_id == api.nvim_get_namespaces()['nvim.lsp.inline_completion'] then
        return true
      end
    end
    return false
  end
  local item = current_item(bufnr)
  return item ~= nil and (rest_of(bufnr, item)) ~= ''
end

--- The suggestion's text still to be typed (nil when none), for statuslines and tests.
function M.current_text(bufnr)
  bufnr = resolve_buf(bufnr)
  if M.backend() == 'native' then
    local ns_native = api.nvim_get_namespaces()['nvim.lsp.inline_completion']
    if not ns_native then
      return nil
    end
    local marks = api.nvim_buf_get_extmarks(bufnr, ns_native, 0, -1, { details = true })
    local mark = marks[1]
    if not mark then
      return nil
    end
    local parts = {}
    local first = {}
    for _, chunk in ipairs(mark[4].virt_text or {}) do
      if chunk[2] ~= 'ComplHintMore' then
        table.insert(first, chunk[1])
      end
    end
    table.insert(parts, table.concat(first))
    for _, vl in ipairs(mark[4].virt_lines or {}) do
      local l = {}
      for _, chunk in ipairs(vl) do
        if chunk[2] ~= 'ComplHintMore' then
          table.insert(l, chunk[1])
        end
      end
      table.insert(parts, table.concat(l))
    end
    return table.concat(parts, '\n')
  end
  local item = current_item(bufnr)
  return item and (rest_of(bufnr, item)) or nil
end

--- Accepts the whole suggestion. Returns false when none is shown (so <Tab> can fall back).
--- Safe in <expr> mappings: the edit happens on the next tick.
function M.accept(bufnr)
  bufnr = resolve_buf(bufnr)
  if M.backend() == 'native' then
    return vim.lsp.inline_completion.get({ bufnr = bufnr })
  end
  local item = current_item(bufnr)
  if not item or (rest_of(bufnr, item)) == '' then
    return false
  end
  vim.schedule(function()
    local rest = rest_of(bufnr, item)
    local r = item.range
    local row = cursor(bufnr)
    local replace_to = r and r.end_.row == row and r.end_.col or nil
    cancel(bufnr)
    clear(bufnr)
    insert_at_cursor(bufnr, rest, replace_to)
    run_command(bufnr, item)
  end)
  return true
end

---@param pick fun(rest: string): string
local function accept_part(bufnr, pick)
  bufnr = resolve_buf(bufnr)
  --- Inserts the next piece of `item`; returns the bytes accepted so far and the rest.
  local function apply(item, accepted_before)
    local rest = rest_of(bufnr, item)
    local piece = pick(rest)
    if piece == '' then
      return accepted_before, rest
    end
    insert_at_cursor(bufnr, piece)
    local accepted = accepted_before + #piece -- UTF-8 bytes, as the server counts
    if piece == rest then
      run_command(bufnr, item) -- the last piece completes the item
    else
      M.report_partial(item, accepted)
    end
    return accepted, rest:sub(#piece + 1)
  end
  if M.backend() == 'native' then
    return vim.lsp.inline_completion.get({
      bufnr = bufnr,
      on_accept = function(item)
        apply({
          client_id = item.client_id,
          insert_text = item_text(item.insert_text),
          range = item.range and {
            start = { row = item.range.start.row, col = item.range.start.col },
            end_ = { row = item.range.end_.row, col = item.range.end_.col },
          },
          command = item.command,
        }, 0)
      end,
    })
  end
  local item = current_item(bufnr)
  if not item or (rest_of(bufnr, item)) == '' then
    return false
  end
  vim.schedule(function()
    local s = state(bufnr)
    cancel(bufnr)
    local after
    s.accepted, after = apply(item, s.accepted)
    -- Keep showing the rest of the same item, anchored at the new cursor; the cursor move
    -- this edit causes must not count as a keystroke.
    local row, col = cursor(bufnr)
    local tick = api.nvim_buf_get_changedtick(bufnr)
    s.anchor = { row = row, col = col, tick = tick }
    s.last_key = ('%d:%d:%d'):format(row, col, tick)
    local raw = s.items[s.index]
    if raw then
      local client = vim.lsp.get_client_by_id(s.client_id)
      local enc = client and client.offset_encoding or 'utf-16'
      local character = vim.str_utfindex(line_at(bufnr, row), enc, col, false)
      local here = { line = row, character = character }
      raw.insertText = after
      raw.range = { start = here, ['end'] = here }
    end
    show(bufnr)
  end)
  return true
end

function M.accept_word(bufnr)
  return accept_part(bufnr, text.next_word)
end

function M.accept_line(bufnr)
  return accept_part(bufnr, text.next_line)
end

--- Asks the server explicitly (triggerKind Invoked: `n` ranked candidates) and shows the one
--- `count` on from the suggestion shown now (0: the best).
local function invoke(bufnr, count)
  if not M.buf_enabled(bufnr) or api.nvim_get_mode().mode:sub(1, 1) ~= 'i' then
    return
  end
  local shown = M.current_text(bufnr)
  local function pick(items, client)
    return shown and index_after(bufnr, client, items, shown, count) or 1
  end
  if M.backend() == 'native' then
    native_invoke[bufnr] = function(result)
      local items = result.items or result
      local client = vim.lsp.get_clients({ bufnr = bufnr, name = 'codegen' })[1]
      if #items > 0 and client and api.nvim_buf_is_valid(bufnr) then
        -- The native handler has shown the best; move on from it (and show "(i/n)").
        vim.lsp.inline_completion.select({ bufnr = bufnr, count = pick(items, client) - 1 })
      end
    end
    -- The native backend asks on CursorMovedI; the wrapper makes that request Invoked.
    api.nvim_exec_autocmds('CursorMovedI', { buffer = bufnr, modeline = false })
    return
  end
  cancel(bufnr)
  request(bufnr, true, pick)
end

--- Next candidate. With one candidate or none (what typing gets, `nAutomatic`), asks the
--- server explicitly for `n` ranked ones first.
function M.next(count)
  count = count or 1
  local bufnr = api.nvim_get_current_buf()
  if M.backend() == 'native' then
    if (M.native_counts[bufnr] or 0) > 1 then
      vim.lsp.inline_completion.select({ bufnr = bufnr, count = count })
    else
      invoke(bufnr, count)
    end
    return
  end
  local s = M.bufs[bufnr]
  if not s or #s.items <= 1 then
    invoke(bufnr, count)
    return
  end
  s.index = (s.index - 1 + count) % #s.items + 1
  s.accepted = 0
  show(bufnr)
end

--- Asks the server explicitly now (triggerKind Invoked: `n` ranked candidates, the best shown).
function M.trigger(bufnr)
  invoke(resolve_buf(bufnr), 0)
end

function M.prev()
  M.next(-1)
end

--- Hides the suggestion until the next keystroke.
function M.dismiss(bufnr)
  bufnr = resolve_buf(bufnr)
  if M.backend() == 'native' then
    return vim.lsp.inline_completion.get({ bufnr = bufnr, on_accept = function() end })
  end
  local shown = M.visible(bufnr)
  cancel(bufnr)
  clear(bufnr)
  return shown
end

function M.setup_highlights()
  api.nvim_set_hl(0, 'CodegenSuggestion', { link = 'Comment', default = true })
  api.nvim_set_hl(0, 'CodegenSuggestionInfo', { link = 'NonText', default = true })
end

return M
