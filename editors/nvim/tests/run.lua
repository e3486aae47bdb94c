--- Entry point: nvim -l editors/nvim/tests/run.lua SPEC [ARGS...]
--- SPEC is `plugin` (against the fake server) or `e2e` (against a real `codegen lsp`).
local here = vim.fs.dirname(vim.fs.normalize(debug.getinfo(1, 'S').source:sub(2)))
package.path = here .. '/?.lua;' .. package.path
local spec = arg[1] or 'plugin'
local args = { unpack(arg, 2) }
require('spec_' .. spec)(require('harness'), args)
require('harness').finish()
