// The extension's editor features against stubbed `vscode` and vscode-languageclient: lazy
// start, partial accept reporting, manual trigger mode, codegen.enable per language, snooze,
// settings scopes, model list JSON and download progress.
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
  openDocument,
  Position,
  settings,
  settingScopes,
  statusItems,
} from './stubs';
import { activate } from '../src/extension';

const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8'));

const MODELS_JSON = JSON.stringify({
  cache: '/home/me/.cache/codegen',
  default: 'qwen2.5-coder-0.5b-instruct',
  models: [
    { name: 'qwen2.5-coder-0.5b-instruct', description: 'Qwen2.5-Coder 0.5B', size_bytes: 491400032, cached: true, default: true, path: '/x.gguf' },
    { name: 'qwen2.5-coder-1.5b-instruct', description: 'Qwen2.5-Coder 1.5B', size_bytes: 1117320736, cached: false, default: false, path: null },
  ],
});

/** A fake `codegen` that answers `model list --json` and logs its arguments. */
function fakeBinary(): { bin: string; argsLog: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'codegen-vscode-'));
  const bin = path.join(dir, 'codegen');
  const argsLog = path.join(dir, 'args');
  fs.writeFileSync(path.join(dir, 'models.json'), MODELS_JSON);
  fs.writeFileSync(
    bin,
    `#!/bin/sh\necho "$*" >> '${argsLog}'\nif [ "$1 $2 $3" = "model list --json" ]; then cat '${dir}/models.json'; fi\nexit 0\n`,
    { mode: 0o755 },
  );
  return { bin, argsLog };
}

const fake = fakeBinary();
const context = { subscriptions: [] as unknown[] };
let client: FakeClient;
const notCancelled = { isCancellationRequested: false };
const INVOKE = 0; // vscode.InlineCompletionTriggerKind.Invoke
const AUTOMATIC = 1;

function item(id: string, insertText: string, range?: unknown) {
  return { insertText, range, command: { title: 'codegen: suggestion accepted', command: 'codegen.accepted', arguments: [{ id, kind: 'full' }] } };
}

function provide(doc: FakeDocument, pos: Position, triggerKind: number, result: unknown = { items: [] }) {
  let asked = false;
  const answer = client.clientOptions.middleware.provideInlineCompletionItems(doc, pos, { triggerKind }, notCancelled, async () => {
    asked = true;
    return result;
  });
  return answer.then((r) => ({ asked, result: r }));
}

test('activation starts no server until a document of codegen.languages is open', async () => {
  settings.set('serverPath', fake.bin);
  editors.documents.push(new FakeDocument('markdown'));
  await activate(context as never);
  assert.equal(calls.clients.length, 0);
  assert.equal(statusItems[0].text, '$(sparkle) codegen');
  assert.match(statusItems[0].tooltip, /starts when a file of "codegen\.languages" is open/);
  assert.equal(statusItems[0].backgroundColor, undefined);
  await openDocument(new FakeDocument('haskell'));
  assert.equal(calls.clients.length, 0, 'not in codegen.languages');
  await openDocument(new FakeDocument('python', '', '/x.py', 'git'));
  assert.equal(calls.clients.length, 0, 'a scheme the client does not attach to');
});

test('any language in codegen.languages starts it, not a fixed list', async () => {
  await changeSetting('languages', ['python', 'haskell']);
  assert.equal(calls.clients.length, 1, 'the haskell file already open');
  client = calls.clients[0];
  assert.deepEqual(client.clientOptions.documentSelector, [
    { scheme: 'file', language: 'python' },
    { scheme: 'untitled', language: 'python' },
    { scheme: 'file', language: 'haskell' },
    { scheme: 'untitled', language: 'haskell' },
  ]);
  await openDocument(new FakeDocument('python'));
  assert.equal(calls.clients.length, 1, 'started once');
});

test('every new command is declared, the accept wrappers are bound to the built-in keys', () => {
  const declared = pkg.contributes.commands.map((c: { command: string }) => c.command).sort();
  assert.deepEqual([...calls.commands.keys()].sort(), declared);
  const keys = pkg.contributes.keybindings as { command: string; key: string; mac?: string; when: string }[];
  const word = keys.find((k) => k.command === 'codegen.acceptNextWord')!;
  assert.deepEqual([word.key, word.mac], ['ctrl+right', 'cmd+right']);
  assert.match(word.when, /inlineSuggestionVisible/);
  const line = keys.find((k) => k.command === 'codegen.acceptNextLine')!;
  assert.deepEqual([line.key, line.mac], ['alt+right', 'cmd+alt+right']);
  assert.equal(keys.some((k) => k.command.startsWith('editor.action.inlineSuggest.')), false, 'no unwrapped accept binding');
  const request = keys.find((k) => k.command === 'codegen.requestSuggestion')!;
  assert.equal(request.key, 'alt+\\');
});

test('accept word / line: runs the built-in command, then reports a partial acceptance with its length', async () => {
  const doc = new FakeDocument('python', 'def add(a, b):\n    ret');
  const editor = new FakeEditor(doc, new Position(1, 7));
  editors.active = editor;
  // The server's items replace the line up to the cursor.
  const range = { start: new Position(1, 0), end: new Position(1, 7) };
  await provide(doc, new Position(1, 7), AUTOMATIC, {
    items: [item('s1', '    return a + b', range), item('s2', '    return sum((a, b))', range)],
  });
  let builtinRan = '';
  calls.commands.set('editor.action.inlineSuggest.acceptNextWord', () => {
    builtinRan = 'word';
    doc.insert(doc.offsetAt(editor.selection.active), 'urn ', editor);
  });
  calls.commands.set('editor.action.inlineSuggest.acceptNextLine', () => {
    builtinRan = 'line';
    doc.insert(doc.offsetAt(editor.selection.active), 'sum((a, b))', editor);
  });
  client.requests = [];
  await calls.commands.get('codegen.acceptNextWord')!();
  assert.equal(builtinRan, 'word');
  assert.deepEqual(client.requests, [
    { method: 'workspace/executeCommand', params: { command: 'codegen.accepted', arguments: [{ id: 's1', kind: 'partial', acceptedLength: 4 }] } },
  ]);
  await calls.commands.get('codegen.acceptNextLine')!();
  assert.equal(builtinRan, 'line');
  assert.deepEqual(client.requests[1].params, {
    command: 'codegen.accepted',
    arguments: [{ id: 's2', kind: 'partial', acceptedLength: 11 }],
  });
});

test("accept word on another provider's suggestion, or with nothing inserted, reports nothing", async () => {
  const doc = new FakeDocument('python', 'x = ');
  const editor = new FakeEditor(doc, new Position(0, 4));
  editors.active = editor;
  await provide(doc, new Position(0, 4), AUTOMATIC, { items: [item('s3', 'x = 1')] });
  calls.commands.set('editor.action.inlineSuggest.acceptNextWord', () => doc.insert(4, 'other', editor));
  client.requests = [];
  await calls.commands.get('codegen.acceptNextWord')!();
  assert.deepEqual(client.requests, []);
  calls.commands.set('editor.action.inlineSuggest.acceptNextWord', () => undefined);
  await calls.commands.get('codegen.acceptNextWord')!();
  assert.deepEqual(client.requests, []);
  calls.commands.delete('editor.action.inlineSuggest.acceptNextWord');
  calls.commands.delete('editor.action.inlineSuggest.acceptNextLine');
});

test('manual trigger mode: typing asks nothing, Alt+\\ asks, typing through its suggestion keeps it', async () => {
  const doc = new FakeDocument('python', 'def f():\n    \n');
  await changeSetting('triggerMode', 'manual');
  assert.equal((await provide(doc, new Position(1, 4), AUTOMATIC)).asked, false);
  calls.builtins = [];
  await calls.commands.get('codegen.requestSuggestion')!();
  assert.deepEqual(calls.builtins.map((b) => b.name), ['editor.action.inlineSuggest.trigger']);
  const invoked = await provide(doc, new Position(1, 4), INVOKE, { items: [item('m1', '    return 1')] });
  assert.equal(invoked.asked, true);
  assert.equal((await provide(doc, new Position(1, 5), AUTOMATIC, { items: [item('m2', '    return 1')] })).asked, true, 'same line');
  assert.equal((await provide(doc, new Position(2, 0), AUTOMATIC)).asked, false, 'the cursor left the line');
  assert.equal((await provide(doc, new Position(1, 6), AUTOMATIC)).asked, false, 'and the session is over');
  await changeSetting('triggerMode', 'automatic');
  assert.equal((await provide(doc, new Position(1, 6), AUTOMATIC)).asked, true);
  const binding = pkg.contributes.configuration.properties['codegen.triggerMode'];
  assert.deepEqual([binding.enum, binding.default], [['automatic', 'manual'], 'automatic']);
});

test('codegen.enable: off for a language with "*" on for the rest, status bar says so', async () => {
  const text = new FakeDocument('plaintext');
  const py = new FakeDocument('python');
  await changeSetting('enable', { '*': true, plaintext: false });
  assert.equal((await provide(text, new Position(0, 0), INVOKE)).asked, false);
  assert.equal((await provide(py, new Position(0, 0), AUTOMATIC)).asked, true);
  await changeSetting('enable', { '*': false, python: true });
  assert.equal((await provide(new FakeDocument('haskell'), new Position(0, 0), AUTOMATIC)).asked, false);
  assert.equal((await provide(py, new Position(0, 0), AUTOMATIC)).asked, true);
  // The status bar follows the active editor.
  client.notifications.get('codegen/status')!({ state: 'ready', model: 'm' });
  editors.active = new FakeEditor(new FakeDocument('haskell'));
  await changeSetting('enable', { '*': false, python: true });
  assert.equal(statusItems[0].text, '$(circle-slash) codegen');
  assert.match(statusItems[0].tooltip, /off for haskell/);
  // The per-language toggle writes codegen.enable where it is set.
  settingScopes.set('enable', 'workspaceValue');
  calls.updates = [];
  await calls.commands.get('codegen.toggleLanguage')!();
  assert.deepEqual(calls.updates, [{ key: 'enable', value: { '*': false, python: true, haskell: true }, target: 2 }]);
  assert.match(statusItems[0].text, /^\$\(sparkle\) m( · \d+ ms)?$/);
  const prop = pkg.contributes.configuration.properties['codegen.enable'];
  assert.equal(prop.type, 'object');
  assert.equal(prop.default['*'], true);
  await changeSetting('enable', { '*': true });
});

test('snooze: no requests until the time, the status bar shows it, unsnooze resumes', async () => {
  const py = new FakeDocument('python');
  await calls.commands.get('codegen.snooze')!(15);
  assert.match(statusItems[0].text, /^\$\(clock\) codegen snoozed until \d\d:\d\d$/);
  const hhmm = (ms: number) => `${String(new Date(ms).getHours()).padStart(2, '0')}:${String(new Date(ms).getMinutes()).padStart(2, '0')}`;
  const shown = statusItems[0].text.replace('$(clock) codegen snoozed until ', '');
  const afterwards = Date.now() + 15 * 60_000;
  assert.ok([hhmm(afterwards), hhmm(afterwards - 1000)].includes(shown), statusItems[0].text);
  assert.equal((await provide(py, new Position(0, 0), INVOKE)).asked, false);
  assert.ok(calls.builtins.some((b) => b.name === 'setContext' && b.args[0] === 'codegen.snoozed' && b.args[1] === true));
  await calls.commands.get('codegen.unsnooze')!();
  assert.match(statusItems[0].text, /^\$\(sparkle\) m( · \d+ ms)?$/);
  assert.equal((await provide(py, new Position(0, 0), AUTOMATIC)).asked, true);
  // Without an argument: a pick of 5, 15 or 60 minutes.
  calls.pickAnswer = undefined;
  await calls.commands.get('codegen.snooze')!();
  const picks = calls.quickPicks.at(-1) as { label: string; minutes: number }[];
  assert.deepEqual(picks.map((p) => p.minutes), [5, 15, 60]);
  assert.match(statusItems[0].text, /^\$\(sparkle\) m/, 'dismissed: not snoozed');
  calls.pickAnswer = picks[0];
  await calls.commands.get('codegen.snooze')!();
  assert.match(statusItems[0].text, /snoozed until/);
  await calls.commands.get('codegen.unsnooze')!();
});

test('toggle and model selection write to the scope that sets the value', async () => {
  editors.active = new FakeEditor(new FakeDocument('python'));
  settings.set('enabled', false);
  settingScopes.set('enabled', 'workspaceValue');
  calls.updates = [];
  await calls.commands.get('codegen.toggle')!();
  assert.deepEqual(calls.updates, [{ key: 'enabled', value: true, target: 2 /* Workspace */ }]);
  settingScopes.set('enabled', 'workspaceFolderValue');
  await calls.commands.get('codegen.toggle')!();
  assert.deepEqual(calls.updates[1], { key: 'enabled', value: false, target: 3 /* WorkspaceFolder */ });
  settings.delete('enabled');
  settingScopes.delete('enabled');
  await calls.commands.get('codegen.toggle')!();
  assert.deepEqual(calls.updates[2], { key: 'enabled', value: false, target: 1 /* Global: set nowhere */ });
  await calls.commands.get('codegen.toggle')!();
  assert.deepEqual(calls.updates[3], { key: 'enabled', value: true, target: 1 });

  // Select model: from `codegen model list --json`.
  settings.set('model', 'qwen2.5-coder-0.5b-instruct');
  settingScopes.set('model', 'workspaceValue');
  calls.pickAnswer = undefined;
  await calls.commands.get('codegen.selectModel')!();
  assert.match(fs.readFileSync(fake.argsLog, 'utf8'), /^model list --json$/m);
  const picks = calls.quickPicks.at(-1) as { label: string; description: string }[];
  assert.deepEqual(picks.map((p) => p.label).slice(0, 2), ['qwen2.5-coder-0.5b-instruct', 'qwen2.5-coder-1.5b-instruct']);
  assert.equal(picks[0].description, '469 MiB · default · current');
  assert.equal(picks[1].description, '1066 MiB · not cached (fetched on first use)');
  calls.pickAnswer = picks[1];
  calls.updates = [];
  const before = calls.clients.length;
  await calls.commands.get('codegen.selectModel')!();
  assert.deepEqual(calls.updates, [{ key: 'model', value: 'qwen2.5-coder-1.5b-instruct', target: 2 }]);
  assert.equal(calls.clients.length, before, 'a model change needs no restart');
});

test('load and download progress: status bar percentage and a notification', async () => {
  client = calls.clients.at(-1)!;
  const feature = client.features[0] as { initialize(): void };
  feature.initialize();
  await client.requestHandlers.get('window/workDoneProgress/create')!({ token: 'codegen/load/2' });
  const report = client.progressHandlers.get('codegen/load/2')!;
  client.notifications.get('codegen/status')!({ state: 'loading', model: 'qwen2.5-coder-1.5b-instruct' });
  report({ kind: 'begin', title: 'codegen: loading qwen2.5-coder-1.5b-instruct' });
  assert.equal(statusItems[0].text, '$(loading~spin) codegen');
  assert.equal(calls.progress.length, 0, 'no notification for a load');
  report({ kind: 'report', percentage: 87.9, message: '412.3 / 469.0 MiB' });
  assert.equal(statusItems[0].text, '$(loading~spin) codegen 88%');
  assert.match(statusItems[0].tooltip, /412\.3 \/ 469\.0 MiB/);
  await new Promise((r) => setImmediate(r));
  assert.equal(calls.progress.length, 1);
  assert.equal(calls.progress[0].title, 'codegen: loading qwen2.5-coder-1.5b-instruct');
  assert.deepEqual(calls.progress[0].reports, [{ message: '412.3 / 469.0 MiB (88%)', increment: 87.9 }]);
  report({ kind: 'end', message: 'codegen: model ready' });
  await new Promise((r) => setImmediate(r));
  assert.equal(calls.progress[0].done, true);
  assert.equal(client.progressHandlers.has('codegen/load/2'), false, 'the handler is gone');
  client.notifications.get('codegen/status')!({ state: 'ready', model: 'qwen2.5-coder-1.5b-instruct' });
  assert.match(statusItems[0].text, /^\$\(sparkle\) qwen2\.5-coder-1\.5b-instruct/);
});
