// The packaged extension is out/extension.js alone (vsce --no-dependencies): it must load
// with nothing but Node's own modules and `vscode`.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import { builtinModules } from 'module';
import * as path from 'path';
import './stubs';

const bundle = path.join(__dirname, '..', '..', 'extension.js');

test('the bundle needs only node built-ins and vscode', () => {
  const source = fs.readFileSync(bundle, 'utf8');
  const required = new Set([...source.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]));
  for (const name of required) {
    assert.ok(name === 'vscode' || builtinModules.includes(name.replace(/^node:/, '')), `bundle requires ${name}`);
  }
});

test('the bundle loads and exports activate / deactivate', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ext = require(bundle);
  assert.equal(typeof ext.activate, 'function');
  assert.equal(typeof ext.deactivate, 'function');
});
