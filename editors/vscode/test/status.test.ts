import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { render, StatusModel } from '../src/status';

test('starting, loading with progress, ready with model and latency', () => {
  const s = new StatusModel();
  assert.equal(s.current.state, 'idle', 'not started until a file of codegen.languages opens');
  s.starting();
  assert.match(render(s.current).text, /loading~spin/);
  s.serverStatus({ state: 'loading', model: 'qwen2.5-coder-0.5b-instruct' });
  s.progress({ kind: 'begin', title: 'Loading model', percentage: 10 });
  assert.equal(render(s.current).text, '$(loading~spin) codegen 10%');
  s.progress({ kind: 'report', percentage: 55.4, message: 'weights' });
  assert.equal(render(s.current).text, '$(loading~spin) codegen 55%');
  assert.match(render(s.current).tooltip, /Loading model: weights/);
  s.progress({ kind: 'end' });
  s.serverStatus({ state: 'ready', model: 'qwen2.5-coder-0.5b-instruct', lastLatencyMs: 180 });
  assert.equal(render(s.current).text, '$(sparkle) qwen2.5-coder-0.5b-instruct · 180 ms');
  assert.equal(render(s.current).background, undefined);
});

test('client-measured latency when the server sends none', () => {
  const s = new StatusModel();
  s.serverStatus({ state: 'ready', model: 'm' });
  assert.equal(render(s.current).text, '$(sparkle) m');
  s.latency(42.4);
  assert.equal(render(s.current).text, '$(sparkle) m · 42 ms');
});

test('error from the server, with its message', () => {
  const s = new StatusModel();
  s.serverStatus({ state: 'error', message: 'model file is corrupt' });
  const r = render(s.current);
  assert.equal(r.text, '$(error) codegen');
  assert.equal(r.background, 'error');
  assert.match(r.tooltip, /model file is corrupt/);
  s.serverStatus({ state: 'ready', model: 'm' });
  assert.equal(s.current.message, undefined);
});

test('disabled wins over the server state', () => {
  const s = new StatusModel();
  s.serverStatus({ state: 'ready', model: 'm' });
  s.setEnabled(false);
  assert.equal(render(s.current).text, '$(circle-slash) codegen');
  s.setEnabled(true);
  assert.equal(render(s.current).text, '$(sparkle) m');
});

test('malformed codegen/status is ignored', () => {
  const s = new StatusModel();
  s.serverStatus({ state: 'ready', model: 'm' });
  s.serverStatus({ state: 'bogus' });
  s.serverStatus(null);
  s.serverStatus('ready');
  assert.equal(s.current.state, 'ready');
});

test('listeners hear every change; a stopped server is a warning', () => {
  const s = new StatusModel();
  const seen: string[] = [];
  s.onChange((st) => seen.push(st.state));
  s.starting();
  s.stopped('exit code 1');
  assert.deepEqual(seen, ['starting', 'stopped']);
  assert.equal(render(s.current).background, 'warning');
  assert.match(render(s.current).tooltip, /exit code 1/);
});

test('a model released while idle still shows, with the server message in the tooltip', () => {
  const s = new StatusModel();
  s.serverStatus({ state: 'ready', model: 'm' });
  s.serverStatus({
    state: 'idle',
    model: 'm',
    message: 'model released after 3600 s without requests; the next request loads it again',
  });
  assert.equal(s.current.state, 'ready');
  assert.equal(render(s.current).text, '$(sparkle) m');
  assert.match(render(s.current).tooltip, /released after 3600 s/);
  s.serverStatus({ state: 'ready', model: 'm' });
  assert.doesNotMatch(render(s.current).tooltip, /released/);
});
