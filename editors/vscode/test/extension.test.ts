// The extension's glue, activated against stubbed `vscode` and vscode-languageclient modules.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  calls,
  changeSetting,
  editors,
  FakeClient,
  FakeDocument,
  FakeEditor,
  Position,
  settings,
  statusItems,
} from './stubs';
import { activate } from '../src/extension';

const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8'));

function fakeBinary(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'codegen-vscode-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  return file;
}

const context = { subscriptions: [] as unknown[] };
let client: FakeClient;
const pyDoc = new FakeDocument('python', 'def add(a, b):\n    ');
editors.documents.push(pyDoc);
editors.active = new FakeEditor(pyDoc, new Position(1, 4));

const notCancelled = { isCancellationRequested: false };

/** Calls the inline completion middleware; `next` stands for the request to the server. */
function provide(
  context: Record<string, unknown>,
  next: (d: unknown, p: unknown, c: Record<string, unknown>) => Promise<unknown> = async () => ({ items: [] }),
  doc: FakeDocument = pyDoc,
  pos: Position = new Position(1, 4),
): Promise<unknown> {
  return client.clientOptions.middleware.provideInlineCompletionItems(doc, pos, context, notCancelled, next);
}

test('activate: starts `SERVER lsp` with the settings and proposed features', async () => {
  settings.set('serverPath', fakeBinary('codegen'));
  settings.set('model', 'qwen2.5-coder-1.5b-instruct');
  settings.set('n', 3);
  settings.set('nAutomatic', 2);
  settings.set('rank', 'logprob');
  settings.set('rankBudgetMs', 0);
  await activate(context as never);
  assert.equal(calls.clients.length, 1);
  client = calls.clients[0];
  assert.equal(client.serverOptions.command, settings.get('serverPath'));
  assert.deepEqual(client.serverOptions.args, ['lsp']);
  assert.equal(client.proposed, true, 'registerProposedFeatures() (inline completion)');
  const init = client.clientOptions.initializationOptions() as Record<string, unknown>;
  assert.equal(init.model, 'qwen2.5-coder-1.5b-instruct');
  assert.equal(init.n, 3);
  assert.equal(init.nAutomatic, 2);
  assert.equal(init.rank, 'logprob');
  assert.equal(init.rankBudgetMs, 0, '0 (never run the examples) is sent, not dropped');
  assert.equal(init.enabled, true);
  assert.equal('temperature' in init, false, 'settings left at their defaults are not sent');
  assert.deepEqual((client.clientOptions.documentSelector as unknown[]).length, 14);
});

test('every command in package.json is registered, and only those', () => {
  const declared = pkg.contributes.commands.map((c: { command: string }) => c.command).sort();
  assert.deepEqual([...calls.commands.keys()].sort(), declared);
});

test('activation: on startup finished, not a fixed list of languages', () => {
  assert.deepEqual(pkg.activationEvents, ['onStartupFinished']);
});

test('an untrusted workspace cannot set the binary or the model file', () => {
  const untrusted = pkg.capabilities.untrustedWorkspaces;
  assert.equal(untrusted.supported, 'limited');
  assert.ok(untrusted.restrictedConfigurations.includes('codegen.serverPath'));
  assert.ok(untrusted.restrictedConfigurations.includes('codegen.model'));
  // Every setting naming a file to run or load is restricted.
  for (const [key, prop] of Object.entries(pkg.contributes.configuration.properties as Record<string, { markdownDescription?: string; description?: string }>)) {
    if (/path/i.test(`${key} ${prop.markdownDescription ?? prop.description ?? ''}`) && key !== 'codegen.languages') {
      assert.ok(untrusted.restrictedConfigurations.includes(key), key);
    }
  }
});

test('codegen/status drives the status bar item', () => {
  const item = statusItems[0];
  client.notifications.get('codegen/status')!({ state: 'ready', model: 'qwen2.5-coder-1.5b-instruct', lastLatencyMs: 95 });
  assert.equal(item.text, '$(sparkle) qwen2.5-coder-1.5b-instruct · 95 ms');
  assert.equal(item.command, 'codegen.showMenu');
  client.notifications.get('codegen/status')!({ state: 'error', message: 'out of memory' });
  assert.equal(item.text, '$(error) codegen');
});

test('a settings change is sent as workspace/didChangeConfiguration', async () => {
  client.sent = [];
  await changeSetting('temperature', 0.5);
  const last = client.sent.at(-1)!;
  assert.equal(last.method, 'workspace/didChangeConfiguration');
  const sent = (last.params as { settings: { codegen: Record<string, unknown> } }).settings.codegen;
  assert.equal(sent.temperature, 0.5);
  assert.equal(sent.model, 'qwen2.5-coder-1.5b-instruct');
  assert.equal(calls.clients.length, 1, 'no restart for a plain setting');
});

test('rank, rankBudgetMs, n and nAutomatic changes are sent as workspace/didChangeConfiguration', async () => {
  const last = () => (client.sent.at(-1)!.params as { settings: { codegen: Record<string, unknown> } }).settings.codegen;
  client.sent = [];
  await changeSetting('rank', 'auto');
  assert.equal(client.sent.at(-1)!.method, 'workspace/didChangeConfiguration');
  assert.equal(last().rank, 'auto');
  assert.equal(last().rankBudgetMs, 0);
  await changeSetting('rankBudgetMs', 400);
  assert.equal(last().rankBudgetMs, 400);
  await changeSetting('rank', false);
  assert.equal(last().rank, 'none', 'an old boolean value is sent as a policy');
  await changeSetting('n', 5);
  assert.equal(last().n, 5);
  assert.equal(last().rank, 'none');
  await changeSetting('nAutomatic', 3);
  assert.equal(last().nAutomatic, 3);
  assert.equal(last().n, 5);
  await changeSetting('nAutomatic', 0);
  assert.equal('nAutomatic' in last(), false, 'an out-of-range value is left to the server');
  await changeSetting('nAutomatic', 3);
  assert.equal(calls.clients.length, 1, 'no restart for ranking settings');
  const pulled = client.clientOptions.initializationOptions() as Record<string, unknown>;
  assert.deepEqual(
    [pulled.rank, pulled.rankBudgetMs, pulled.n, pulled.nAutomatic],
    ['none', 400, 5, 3],
    'a restarted server gets them too',
  );
  const config = client.clientOptions.middleware.workspace.configuration;
  const answer = (await config({ items: [{ section: 'codegen' }] }, {}, async () => [])) as Record<string, unknown>[];
  assert.deepEqual([answer[0].n, answer[0].nAutomatic], [5, 3], 'a settings pull (workspace/configuration) gets them');
});

test('toggle: enabled=false reaches the server and no request is made', async () => {
  client.sent = [];
  await calls.commands.get('codegen.toggle')!();
  const sent = (client.sent.at(-1)!.params as { settings: { codegen: Record<string, unknown> } }).settings.codegen;
  assert.equal(sent.enabled, false);
  assert.equal(statusItems[0].text, '$(circle-slash) codegen');
  let asked = false;
  const result = await provide({ triggerKind: 1 }, async () => {
    asked = true;
    return { items: [] };
  });
  assert.equal(result, null);
  assert.equal(asked, false);
  await calls.commands.get('codegen.toggle')!();
  const again = await provide({ triggerKind: 1 }, async () => ({ items: ['x'] }));
  assert.deepEqual(again, { items: ['x'] });
});

test('inline items are passed on in the order the server ranked them', async () => {
  const returning = (result: unknown) => provide({ triggerKind: 1 }, async () => result);
  const items = [{ insertText: 'best' }, { insertText: 'second' }, { insertText: 'third' }];
  const list = (await returning({ items })) as { items: { insertText: string }[] };
  assert.deepEqual(
    list.items.map((i) => i.insertText),
    ['best', 'second', 'third'],
  );
  const array = (await returning([...items].reverse())) as { insertText: string }[];
  assert.deepEqual(
    array.map((i) => i.insertText),
    ['third', 'second', 'best'],
    'whatever order the server chose',
  );
});

test('the trigger kind goes out as LSP numbers it: typing Automatic (2), a trigger or cycling Invoked (1)', async () => {
  const seen: unknown[] = [];
  const record = async (_d: unknown, _p: unknown, c: Record<string, unknown>) => {
    seen.push(c);
    return { items: [] };
  };
  const selected = { range: 'r', text: 'x' };
  await provide({ triggerKind: 1 /* VS Code Automatic */ }, record);
  await provide({ triggerKind: 0 /* VS Code Invoke: the trigger command, Alt+] / Alt+[ */, selectedCompletionInfo: selected }, record);
  assert.deepEqual(seen, [{ triggerKind: 2 }, { triggerKind: 1, selectedCompletionInfo: selected }]);
});

test("a crashed server: vscode-languageclient's own handler restarts it 4 times, then the status bar shows its error", async () => {
  const closed = client.clientOptions.errorHandler.closed;
  for (let i = 0; i < 4; i++) {
    assert.equal((await closed()).action, 2 /* Restart */);
    assert.equal(statusItems[0].text, '$(loading~spin) codegen');
  }
  const last = await closed();
  assert.equal(last.action, 1 /* DoNotRestart */);
  assert.equal(statusItems[0].text, '$(error) codegen');
  assert.match(statusItems[0].tooltip, /crashed 5 times in the last 3 minutes/);
  assert.equal(client.clientOptions.errorHandler.error(new Error('x'), undefined, 1).action, 1 /* Continue */);
});

test('changing the server path or languages restarts the server', async () => {
  await changeSetting('serverPath', fakeBinary('codegen-other'));
  assert.equal(calls.clients.length, 2);
  assert.match(calls.clients[1].serverOptions.command, /codegen-other$/);
  await changeSetting('languages', ['python']);
  assert.equal(calls.clients.length, 3);
  assert.equal((calls.clients[2].clientOptions.documentSelector as unknown[]).length, 2);
});

test('a missing binary is an error in the status bar, not a crash', async () => {
  const before = calls.errors.length;
  await changeSetting('serverPath', '/nonexistent/codegen');
  assert.equal(calls.clients.length, 3, 'no client without a binary');
  assert.equal(statusItems[0].text, '$(error) codegen');
  assert.ok(calls.errors.length > before);
  assert.match(calls.errors.at(-1)!, /nonexistent/);
});

test('the menu offers toggle, per-language toggle, snooze, model, stats, restart and log', async () => {
  calls.pickAnswer = undefined;
  await calls.commands.get('codegen.showMenu')!();
  const items = calls.quickPicks.at(-1) as { command: string; label: string }[];
  assert.deepEqual(
    items.map((i) => i.command),
    [
      'codegen.toggle',
      'codegen.toggleLanguage',
      'codegen.snooze',
      'codegen.selectModel',
      'codegen.showStats',
      'codegen.restartServer',
      'codegen.showLog',
    ],
  );
  assert.match(items[1].label, /Disable suggestions for python/);
});
