// The gate in front of the server: codegen.enable per language, snooze, manual trigger mode,
// and which settings scope a command writes to.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  clock,
  enabledForLanguage,
  nextSession,
  Request,
  shouldRequest,
  Snooze,
  SNOOZE_MINUTES,
  triggerMode,
  withLanguage,
} from '../src/gate';
import { Target, writeTarget } from '../src/scope';

test('codegen.enable: the language, else "*", else on', () => {
  const value = { '*': true, plaintext: false, markdown: false };
  assert.equal(enabledForLanguage(value, 'python'), true);
  assert.equal(enabledForLanguage(value, 'plaintext'), false);
  assert.equal(enabledForLanguage({ '*': false, python: true }, 'python'), true);
  assert.equal(enabledForLanguage({ '*': false, python: true }, 'rust'), false);
  assert.equal(enabledForLanguage({ plaintext: false }, 'rust'), true, 'no "*": on');
  assert.equal(enabledForLanguage({}, 'rust'), true);
  assert.equal(enabledForLanguage(undefined, 'rust'), true);
  assert.equal(enabledForLanguage(true, 'rust'), true, 'not an object: on');
  assert.equal(enabledForLanguage({ rust: 'no', '*': false }, 'rust'), false, 'a non-boolean entry is ignored');
});

test('codegen.enable with one language set, the others kept', () => {
  assert.deepEqual(withLanguage({ '*': true, plaintext: false }, 'go', false), { '*': true, plaintext: false, go: false });
  assert.deepEqual(withLanguage({ go: false, junk: 3 }, 'go', true), { go: true });
  assert.deepEqual(withLanguage(undefined, 'go', false), { go: false });
});

test('snooze: until a time, then over by itself; stop ends it early', () => {
  let now = 1_000_000;
  const s = new Snooze(() => now);
  assert.equal(s.active, false);
  assert.equal(s.start(15), 1_000_000 + 15 * 60_000);
  assert.equal(s.active, true);
  now += 15 * 60_000 - 1;
  assert.equal(s.snoozedUntil, 1_000_000 + 15 * 60_000);
  now += 1;
  assert.equal(s.active, false);
  assert.equal(s.snoozedUntil, undefined);
  s.start(5);
  s.stop();
  assert.equal(s.active, false);
  assert.deepEqual(SNOOZE_MINUTES, [5, 15, 60]);
});

test('clock: local HH:MM', () => {
  const d = new Date(2026, 0, 2, 9, 5);
  assert.equal(clock(d.getTime()), '09:05');
  assert.equal(clock(new Date(2026, 0, 2, 23, 45).getTime()), '23:45');
});

test('triggerMode: manual, else automatic', () => {
  assert.equal(triggerMode('manual'), 'manual');
  assert.equal(triggerMode('automatic'), 'automatic');
  assert.equal(triggerMode(undefined), 'automatic');
  assert.equal(triggerMode('sometimes'), 'automatic');
});

const base: Request = {
  enabled: true,
  snoozed: false,
  languageEnabled: true,
  mode: 'automatic',
  explicit: false,
  uri: 'file:///a.py',
  line: 3,
};

test('requests: off, snoozed or language off send nothing, explicit or not', () => {
  assert.equal(shouldRequest(base), true);
  for (const patch of [{ enabled: false }, { snoozed: true }, { languageEnabled: false }]) {
    assert.equal(shouldRequest({ ...base, ...patch }), false, JSON.stringify(patch));
    assert.equal(shouldRequest({ ...base, ...patch, explicit: true }), false, JSON.stringify(patch));
  }
});

test('manual mode: only explicit requests, and typing through their suggestion on the same line', () => {
  const manual: Request = { ...base, mode: 'manual' };
  assert.equal(shouldRequest(manual), false, 'typing asks for nothing');
  const asked = { ...manual, explicit: true };
  assert.equal(shouldRequest(asked), true, 'Alt+\\ asks');
  const session = nextSession(asked, true, true);
  assert.deepEqual(session, { uri: 'file:///a.py', line: 3 });
  assert.equal(shouldRequest({ ...manual, session }), true, 'typing through on the same line');
  assert.equal(shouldRequest({ ...manual, session, line: 4 }), false, 'another line');
  assert.equal(shouldRequest({ ...manual, session, uri: 'file:///b.py' }), false, 'another file');
  assert.equal(nextSession({ ...manual, session }, true, false), undefined, 'an empty answer ends it');
  assert.equal(nextSession(asked, true, false), undefined, 'nothing came back');
  assert.equal(nextSession({ ...manual, session, line: 4 }, false, false), undefined, 'not sent: ended');
  assert.equal(nextSession({ ...base, explicit: true }, true, true), undefined, 'automatic mode keeps no session');
});

test('settings scope: written where the effective value is set, else user settings', () => {
  assert.equal(writeTarget(undefined), Target.Global);
  assert.equal(writeTarget({}), Target.Global);
  assert.equal(writeTarget({ globalValue: false }), Target.Global);
  assert.equal(writeTarget({ globalValue: true, workspaceValue: false }), Target.Workspace);
  assert.equal(writeTarget({ globalValue: true, workspaceValue: false, workspaceFolderValue: true }), Target.WorkspaceFolder);
  assert.equal(writeTarget({ workspaceFolderValue: '' }), Target.WorkspaceFolder, 'an empty string is a value');
  assert.deepEqual([Target.Global, Target.Workspace, Target.WorkspaceFolder], [1, 2, 3], 'as vscode.ConfigurationTarget');
});
