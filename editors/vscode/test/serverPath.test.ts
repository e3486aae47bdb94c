import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { resolveServerPath, ResolveEnv } from '../src/serverPath';

function env(executables: string[], extra: Partial<ResolveEnv> = {}): ResolveEnv {
  return {
    pathVar: '/usr/local/bin:/home/me/.cargo/bin',
    platform: 'linux',
    homedir: '/home/me',
    isExecutable: (f) => executables.includes(f),
    ...extra,
  };
}

test('default: codegen on PATH', () => {
  assert.deepEqual(resolveServerPath('', env(['/home/me/.cargo/bin/codegen'])), {
    path: '/home/me/.cargo/bin/codegen',
  });
  assert.deepEqual(resolveServerPath(undefined, env(['/usr/local/bin/codegen', '/home/me/.cargo/bin/codegen'])), {
    path: '/usr/local/bin/codegen',
  });
});

test('not on PATH: an error that says how to fix it', () => {
  const r = resolveServerPath('', env([]));
  assert.ok('error' in r);
  assert.match(r.error, /not found on PATH/);
  assert.match(r.error, /codegen\.serverPath/);
});

test('a bare name is looked up on PATH', () => {
  assert.deepEqual(resolveServerPath('codegen-dev', env(['/usr/local/bin/codegen-dev'])), {
    path: '/usr/local/bin/codegen-dev',
  });
});

test('~ and ${workspaceFolder} are expanded; relative paths are from the workspace', () => {
  assert.deepEqual(resolveServerPath('~/bin/codegen', env(['/home/me/bin/codegen'])), { path: '/home/me/bin/codegen' });
  const ws = { workspaceFolder: '/src/proj' };
  assert.deepEqual(resolveServerPath('${workspaceFolder}/target/release/codegen', env(['/src/proj/target/release/codegen'], ws)), {
    path: '/src/proj/target/release/codegen',
  });
  assert.deepEqual(resolveServerPath('./target/debug/codegen', env(['/src/proj/target/debug/codegen'], ws)), {
    path: '/src/proj/target/debug/codegen',
  });
});

test('a configured path that is not executable is an error naming it', () => {
  const r = resolveServerPath('/opt/missing/codegen', env([]));
  assert.ok('error' in r);
  assert.match(r.error, /\/opt\/missing\/codegen/);
});

test('Windows: PATHEXT and ; separators', () => {
  const r = resolveServerPath(
    '',
    env(['C:\\tools\\codegen.exe'], { platform: 'win32', pathVar: 'C:\\Windows;C:\\tools', pathExt: '.COM;.EXE' }),
  );
  assert.deepEqual(r, { path: 'C:\\tools\\codegen.exe' });
});
