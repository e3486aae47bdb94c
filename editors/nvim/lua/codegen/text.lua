--- Pure text helpers: what of a suggestion is still to be typed, the next word or line of it.
local M = {}

--- The part of `insert_text` not yet in the buffer. `typed` is the buffer text between the
--- item's range start and the cursor (empty without a range).
---@param insert_text string
---@param typed string
---@return string
function M.remainder(insert_text, typed)
  if typed ~= '' and insert_text:sub(1, #typed) == typed then
    return insert_text:sub(#typed + 1)
  end
  return insert_text
end

--- The next word: a run of word characters or of punctuation, with the blanks before it;
--- at a line break, the break and the next line's indentation.
---@param rest string
---@return string
function M.next_word(rest)
  return rest:match('^\r?\n[ \t]*')
    or rest:match('^[ \t]*[%w_\128-\255]+')
    or rest:match('^[ \t]*[^%w_%s\128-\255]+')
    or rest:match('^%s+')
    or rest
end

--- The next line: up to the end of the current line, with the line break when more text
--- follows; at a line break, the break and the next line.
---@param rest string
---@return string
function M.next_line(rest)
  local at_break = rest:match('^\r?\n[^\n]*')
  if at_break then
    return at_break
  end
  local line = rest:match('^[^\n]*')
  local after = rest:sub(#line + 1)
  if after:match('^\r?\n') and after:match('%S') then
    line = line .. after:match('^\r?\n')
  end
  return line
end

return M
