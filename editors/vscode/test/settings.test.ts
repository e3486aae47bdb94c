import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { DEFAULT_LANGUAGES, documentSelector, toServerSettings } from '../src/settings';

function reader(values: Record<string, unknown>) {
  return (key: string) => values[key];
}

test('defaults: enabled, the default languages, nothing else', () => {
  assert.deepEqual(toServerSettings(reader({})), { enabled: true, languages: DEFAULT_LANGUAGES });
});

test('every setting maps to the server name', () => {
  const s = toServerSettings(
    reader({
      enabled: false,
      model: ' qwen2.5-coder-1.5b-instruct ',
      device: 'cuda',
      threads: 4,
      maxTokens: 64,
      temperature: 0,
      n: 3,
      rank: false,
      debounceMs: 50,
      timeBudgetMs: 1500,
      languages: ['python', 'go', 'python'],
      serverPath: '/opt/codegen',
    }),
  );
  assert.deepEqual(s, {
    enabled: false,
    model: 'qwen2.5-coder-1.5b-instruct',
    device: 'cuda',
    threads: 4,
    maxTokens: 64,
    temperature: 0,
    n: 3,
    rank: false,
    debounceMs: 50,
    timeBudgetMs: 1500,
    languages: ['python', 'go'],
  });
});

test('empty and out-of-range values are left to the server', () => {
  const s = toServerSettings(
    reader({ model: '  ', device: 'tpu', threads: 0, maxTokens: -1, temperature: -0.5, n: 0, debounceMs: -3, rank: 'yes' }),
  );
  assert.deepEqual(s, { enabled: true, languages: DEFAULT_LANGUAGES });
});

test('fractional numbers are floored', () => {
  const s = toServerSettings(reader({ threads: 2.7, maxTokens: 10.2 }));
  assert.equal(s.threads, 2);
  assert.equal(s.maxTokens, 10);
});

test('document selector: files and untitled buffers per language', () => {
  assert.deepEqual(documentSelector(['python']), [
    { scheme: 'file', language: 'python' },
    { scheme: 'untitled', language: 'python' },
  ]);
});
