import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { parseCacheDir, parseModelList } from '../src/models';
import { RestartPolicy } from '../src/restart';
import { LSP_AUTOMATIC, LSP_INVOKED, lspInlineTriggerKind } from '../src/trigger';

const LIST = `NAME                                  SIZE  CACHED   DESCRIPTION
qwen2.5-coder-0.5b-instruct        469 MiB  yes      Qwen2.5-Coder 0.5B Instruct, Q4_K_M (default)
qwen2.5-coder-1.5b-instruct       1066 MiB  no       Qwen2.5-Coder 1.5B Instruct, Q4_K_M
odd-model                                ?  no
cache: /home/me/.cache/codegen
`;

test('codegen model list is parsed', () => {
  assert.deepEqual(parseModelList(LIST), [
    { name: 'qwen2.5-coder-0.5b-instruct', size: '469 MiB', cached: true, description: 'Qwen2.5-Coder 0.5B Instruct, Q4_K_M (default)' },
    { name: 'qwen2.5-coder-1.5b-instruct', size: '1066 MiB', cached: false, description: 'Qwen2.5-Coder 1.5B Instruct, Q4_K_M' },
    { name: 'odd-model', size: '?', cached: false, description: '' },
  ]);
  assert.equal(parseCacheDir(LIST), '/home/me/.cache/codegen');
});

test('restart policy: 4 restarts in 3 minutes, then stop; counts expire', () => {
  let now = 0;
  const p = new RestartPolicy(4, 180_000, () => now);
  for (let i = 0; i < 4; i++) assert.equal(p.shouldRestart(), true);
  assert.equal(p.shouldRestart(), false);
  now = 181_000;
  assert.equal(p.shouldRestart(), true);
  p.reset();
  for (let i = 0; i < 4; i++) assert.equal(p.shouldRestart(), true);
});

test('inline trigger kind: VS Code Invoke (0) -> LSP Invoked (1), Automatic (1) -> LSP Automatic (2)', () => {
  assert.equal(lspInlineTriggerKind(0), LSP_INVOKED);
  assert.equal(lspInlineTriggerKind(1), LSP_AUTOMATIC);
  assert.equal(lspInlineTriggerKind(undefined), LSP_AUTOMATIC);
  assert.deepEqual([LSP_INVOKED, LSP_AUTOMATIC], [1, 2]);
});

test('vscode-languageclient is the version whose trigger kind src/trigger.ts corrects', () => {
  // 9.0.1 passes VS Code's InlineCompletionTriggerKind (0, 1) through unchanged; a version that
  // converts it to LSP's (1, 2) itself needs the middleware's mapping removed.
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8'));
  assert.equal(pkg.dependencies['vscode-languageclient'], '9.0.1');
});
