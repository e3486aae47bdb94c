--- Insert-mode keys that do something only when a suggestion is shown (accept, accept word,
--- accept line, dismiss) and otherwise do what the key did before setup(): the global insert
--- mapping it had (a snippet plugin's or a completion menu's <Tab>), else the key itself.
local M = {}

--- Earlier mappings, by the key's internal form; kept across setup() calls.
---@type table<string, table|false>
M.previous = {}

--- Non-<expr> callback mappings, run from <Cmd> so that they may edit the buffer.
---@type table<integer, function>
local callbacks = {}

local function raw(lhs)
  return vim.keycode(lhs)
end

--- The global insert-mode mapping of `lhs` now, or nil.
local function global_map(lhs)
  local want = raw(lhs)
  for _, m in ipairs(vim.api.nvim_get_keymap('i')) do
    if m.lhs and raw(m.lhs) == want then
      return m
    end
  end
end

local function is_ours(m)
  return type(m.desc) == 'string' and vim.startswith(m.desc, 'codegen: ')
end

--- Records what `lhs` does before codegen maps it (once: a second setup() finds its own map).
---@return table|false the mapping (nvim_get_keymap form), or false for none
function M.capture(lhs)
  local key = raw(lhs)
  local m = global_map(lhs)
  if m and is_ours(m) then
    return M.previous[key] or false
  end
  M.previous[key] = m or false
  return M.previous[key]
end

--- Runs a recorded non-<expr> callback mapping (called through <Cmd>).
function M.run_callback(i)
  local fn = callbacks[i]
  if fn then
    fn()
  end
end

local function with_sid(rhs, sid)
  if sid and sid > 0 then
    rhs = rhs:gsub('<[Ss][Ii][Dd]>', '<SNR>' .. sid .. '_')
  end
  return rhs
end

--- The keys that do what `prev` did (for the return value of an <expr> mapping with
--- replace_keycodes off). Without `prev`: the key itself.
---@param lhs string
---@param prev table|false
---@return string
function M.fallback_keys(lhs, prev)
  if not prev then
    return raw(lhs)
  end
  if prev.callback then
    if prev.expr == 1 then
      local ok, keys = pcall(prev.callback)
      if not ok then
        vim.notify('codegen: the earlier ' .. lhs .. ' mapping failed: ' .. tostring(keys), vim.log.levels.ERROR)
        return ''
      end
      keys = type(keys) == 'string' and keys or ''
      return prev.replace_keycodes == 1 and raw(keys) or keys
    end
    if not prev._index then
      table.insert(callbacks, prev.callback)
      prev._index = #callbacks
    end
    return raw(('<Cmd>lua require("codegen.keys").run_callback(%d)<CR>'):format(prev._index))
  end
  local rhs = with_sid(prev.rhs or '', prev.sid)
  if prev.expr == 1 then
    local ok, keys = pcall(vim.fn.eval, rhs)
    if not ok then
      vim.notify('codegen: the earlier ' .. lhs .. ' mapping failed: ' .. tostring(keys), vim.log.levels.ERROR)
      return ''
    end
    keys = type(keys) == 'string' and keys or tostring(keys)
    return prev.replace_keycodes == 1 and raw(keys) or keys
  end
  return raw(rhs)
end

--- Maps `lhs` in insert mode to `fn`; when `fn()` returns false, the key does what it did
--- before. `desc` must start with "codegen: ".
---@param lhs string
---@param fn fun(): boolean
---@param desc string
function M.map_with_fallback(lhs, fn, desc)
  local prev = M.capture(lhs)
  -- The earlier mapping's keys are remapped when it was recursive (<Plug> maps and the like).
  local remap = prev and prev.noremap == 0 or false
  vim.keymap.set('i', lhs, function()
    if fn() then
      return ''
    end
    return M.fallback_keys(lhs, prev)
  end, { desc = desc, silent = true, expr = true, replace_keycodes = false, remap = remap })
end

return M
