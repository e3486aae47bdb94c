import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { describeModel, formatSize, parseModelList } from '../src/models';
import { LSP_AUTOMATIC, LSP_INVOKED, lspInlineTriggerKind } from '../src/trigger';

// `codegen model list --json`.
const LIST = JSON.stringify({
  cache: '/home/me/.cache/codegen',
  default: 'qwen2.5-coder-0.5b-instruct',
  models: [
    {
      name: 'qwen2.5-coder-0.5b-instruct',
      description: 'Qwen2.5-Coder 0.5B Instruct, Q4_K_M',
      size_bytes: 491400032,
      cached: true,
      default: true,
      path: '/home/me/.cache/codegen/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf',
    },
    {
      name: 'qwen2.5-coder-1.5b-instruct',
      description: 'Qwen2.5-Coder 1.5B Instruct, Q4_K_M',
      size_bytes: 1117320736,
      cached: false,
      default: false,
      path: null,
    },
  ],
});

test('codegen model list --json is parsed', () => {
  assert.deepEqual(parseModelList(LIST), {
    cache: '/home/me/.cache/codegen',
    default: 'qwen2.5-coder-0.5b-instruct',
    models: [
      {
        name: 'qwen2.5-coder-0.5b-instruct',
        description: 'Qwen2.5-Coder 0.5B Instruct, Q4_K_M',
        sizeBytes: 491400032,
        cached: true,
        default: true,
        path: '/home/me/.cache/codegen/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf',
      },
      {
        name: 'qwen2.5-coder-1.5b-instruct',
        description: 'Qwen2.5-Coder 1.5B Instruct, Q4_K_M',
        sizeBytes: 1117320736,
        cached: false,
        default: false,
      },
    ],
  });
});

test('model list: entries without a name are skipped, missing fields have defaults', () => {
  const list = parseModelList(
    JSON.stringify({ default: 'a', models: [{ name: 'a' }, { description: 'no name' }, 7, null, { name: 'b', size_bytes: -1, cached: 'yes' }] }),
  );
  assert.deepEqual(list, {
    default: 'a',
    models: [
      { name: 'a', description: '', cached: false, default: true },
      { name: 'b', description: '', cached: false, default: false },
    ],
  });
});

test('model list: not JSON, or no models array, is an error that names the command', () => {
  // The human table of older binaries.
  assert.throws(() => parseModelList('NAME SIZE CACHED DESCRIPTION\n'), /codegen model list --json/);
  assert.throws(() => parseModelList('{"cache": "/x"}'), /"models"/);
  assert.throws(() => parseModelList('[]'), /"models"/);
});

test('model sizes and quick pick descriptions', () => {
  assert.equal(formatSize(491400032), '469 MiB');
  assert.equal(formatSize(1117320736), '1066 MiB');
  assert.equal(formatSize(12.5 * 1024 ** 3), '12.5 GiB');
  assert.equal(formatSize(undefined), '?');
  const [small, large] = parseModelList(LIST).models;
  assert.equal(describeModel(small, ''), '469 MiB · default · current');
  assert.equal(describeModel(small, 'qwen2.5-coder-1.5b-instruct'), '469 MiB · default');
  assert.equal(describeModel(large, 'qwen2.5-coder-1.5b-instruct'), '1066 MiB · not cached (fetched on first use) · current');
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
