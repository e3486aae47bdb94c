import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { backendArgs, CLIENT_SETTINGS, DEFAULT_LANGUAGES, documentSelector, toServerSettings } from '../src/settings';

const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8'));

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
      draftModel: 'none',
      shadowModel: ' qwen2.5-coder-0.5b-instruct ',
      shadowPercent: 40,
      rolloutPercent: 10,
      device: 'cuda',
      threads: 4,
      maxTokens: 64,
      temperature: 0,
      n: 3,
      nAutomatic: 2,
      rank: 'logprob',
      rankBudgetMs: 0,
      debounceMs: 50,
      timeBudgetMs: 1500,
      languages: ['python', 'go', 'python'],
      serverPath: '/opt/codegen',
    }),
  );
  assert.deepEqual(s, {
    enabled: false,
    model: 'qwen2.5-coder-1.5b-instruct',
    draftModel: 'none',
    shadowModel: 'qwen2.5-coder-0.5b-instruct',
    shadowPercent: 40,
    rolloutPercent: 10,
    device: 'cuda',
    threads: 4,
    maxTokens: 64,
    temperature: 0,
    n: 3,
    nAutomatic: 2,
    rank: 'logprob',
    rankBudgetMs: 0,
    debounceMs: 50,
    timeBudgetMs: 1500,
    languages: ['python', 'go'],
  });
});

test('empty and out-of-range values are left to the server', () => {
  const s = toServerSettings(
    reader({ model: '  ', draftModel: '', device: 'tpu', threads: 0, maxTokens: -1, temperature: -0.5, n: 0, nAutomatic: 0, debounceMs: -3, rank: 'yes', rankBudgetMs: -1 }),
  );
  assert.deepEqual(s, { enabled: true, languages: DEFAULT_LANGUAGES });
  assert.equal(toServerSettings(reader({ n: 17 })).n, undefined, 'n above 16');
  assert.equal(toServerSettings(reader({ rolloutPercent: 101 })).rolloutPercent, undefined, 'over 100%');
  assert.equal(toServerSettings(reader({ shadowPercent: -1 })).shadowPercent, undefined, 'negative');
  assert.equal(toServerSettings(reader({ shadowModel: ' ' })).shadowModel, undefined, 'blank');
  assert.equal(toServerSettings(reader({ nAutomatic: 17 })).nAutomatic, undefined, 'nAutomatic above 16');
  assert.equal(toServerSettings(reader({ nAutomatic: '2' })).nAutomatic, undefined, 'nAutomatic as a string');
  assert.equal(toServerSettings(reader({ rank: 'combined' })).rank, undefined, 'not a setting value');
  assert.equal(toServerSettings(reader({ rankBudgetMs: '250' })).rankBudgetMs, undefined, 'a string');
});

test('rank: the three policies; the old booleans mean auto and none', () => {
  for (const policy of ['auto', 'logprob', 'none']) {
    assert.equal(toServerSettings(reader({ rank: policy })).rank, policy);
  }
  assert.equal(toServerSettings(reader({ rank: ' logprob ' })).rank, 'logprob');
  assert.equal(toServerSettings(reader({ rank: true })).rank, 'auto');
  assert.equal(toServerSettings(reader({ rank: false })).rank, 'none');
});

test('rankBudgetMs: 0 (never run the examples) is sent; fractions are floored', () => {
  assert.equal(toServerSettings(reader({ rankBudgetMs: 0 })).rankBudgetMs, 0);
  assert.equal(toServerSettings(reader({ rankBudgetMs: 400 })).rankBudgetMs, 400);
  assert.equal(toServerSettings(reader({ rankBudgetMs: 99.9 })).rankBudgetMs, 99);
  assert.equal(toServerSettings(reader({ n: 16 })).n, 16);
});

test('n and nAutomatic: sent as set, 1-16, fractions floored; the server caps nAutomatic at n', () => {
  assert.deepEqual(
    [toServerSettings(reader({ n: 1, nAutomatic: 1 })).n, toServerSettings(reader({ n: 1, nAutomatic: 1 })).nAutomatic],
    [1, 1],
  );
  assert.equal(toServerSettings(reader({ nAutomatic: 16 })).nAutomatic, 16);
  assert.equal(toServerSettings(reader({ nAutomatic: 2.9 })).nAutomatic, 2);
  const both = toServerSettings(reader({ n: 2, nAutomatic: 4 }));
  assert.deepEqual([both.n, both.nAutomatic], [2, 4], 'sent as set; the server uses at most n while typing');
  assert.equal('nAutomatic' in toServerSettings(reader({ n: 8 })), false, 'not set: the server default (1)');
});

test('every contributed setting but the client-only ones reaches the server', () => {
  const props: Record<string, { type: string; default: unknown; enum?: unknown[] }> = pkg.contributes.configuration.properties;
  for (const [full, prop] of Object.entries(props)) {
    const key = full.replace(/^codegen\./, '');
    if (CLIENT_SETTINGS.includes(key)) {
      assert.equal(key in toServerSettings(reader({ [key]: prop.default })), false, `codegen.${key} stays in the client`);
      continue;
    }
    let value: unknown;
    if (prop.enum) value = prop.enum.find((v) => v !== prop.default);
    else if (prop.type === 'boolean') value = !prop.default;
    else if (prop.type === 'integer' || prop.type === 'number') value = (prop.default as number) + 1;
    else if (prop.type === 'string') value = 'some-model';
    else if (prop.type === 'array') value = ['python'];
    const sent = toServerSettings(reader({ [key]: value })) as unknown as Record<string, unknown>;
    assert.deepEqual(sent[key], value, `codegen.${key} = ${JSON.stringify(value)}`);
  }
});

test('package.json: rank, rankBudgetMs, n and nAutomatic as the server defines them', () => {
  const props = pkg.contributes.configuration.properties;
  const rank = props['codegen.rank'];
  assert.equal(rank.type, 'string');
  assert.deepEqual(rank.enum, ['auto', 'logprob', 'none']);
  assert.equal(rank.default, 'auto');
  assert.equal(rank.enumDescriptions.length, 3);
  assert.match(rank.enumDescriptions[0], /docstring's examples run in the sandbox \(Python only/);
  assert.match(rank.enumDescriptions[0], /rankBudgetMs/);
  assert.match(rank.enumDescriptions[0], /then syntax .*then agreement .*then mean token log-probability, then how often/);
  assert.equal(rank.enumDescriptions[1], 'Highest mean token log-probability first.');
  assert.equal(rank.enumDescriptions[2], 'Sample order.');
  const budget = props['codegen.rankBudgetMs'];
  assert.deepEqual([budget.type, budget.default, budget.minimum], ['number', 250, 0]);
  const n = props['codegen.n'];
  assert.deepEqual([n.type, n.default, n.minimum, n.maximum], ['integer', 4, 1, 16]);
  assert.match(n.markdownDescription, /explicit requests/);
  assert.match(n.markdownDescription, /cycle/);
  assert.match(n.markdownDescription, /greedy/);
  assert.match(n.markdownDescription, /0\.8/);
  assert.match(n.markdownDescription, /#codegen\.nAutomatic#/);
  const nAutomatic = props['codegen.nAutomatic'];
  assert.deepEqual([nAutomatic.type, nAutomatic.default, nAutomatic.minimum, nAutomatic.maximum], ['integer', 1, 1, 16]);
  assert.match(nAutomatic.markdownDescription, /while typing/);
  assert.match(nAutomatic.markdownDescription, /at most `#codegen\.n#`/);
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

test('a remote backend goes on the server command line too', () => {
  assert.deepEqual(backendArgs(reader({})), []);
  assert.deepEqual(backendArgs(reader({ backend: '  ' })), []);
  assert.deepEqual(backendArgs(reader({ backend: 'ollama+http://gpu:11434', backendModel: 'qwen2.5-coder:1.5b-base' })), [
    '--backend',
    'ollama+http://gpu:11434',
    '--backend-model',
    'qwen2.5-coder:1.5b-base',
  ]);
  assert.equal(toServerSettings(reader({ backend: 'http://gpu:8000' })).backend, 'http://gpu:8000');
});
