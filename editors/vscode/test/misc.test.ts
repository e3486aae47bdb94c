import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseCacheDir, parseModelList } from '../src/models';
import { RestartPolicy } from '../src/restart';

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
