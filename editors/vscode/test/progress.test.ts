// Model load and download progress: the notification and the status bar item.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { DownloadProgress, ProgressSink, withPercent } from '../src/progress';
import { render, StatusModel } from '../src/status';

function fakeOpener() {
  const opened: { title: string; reports: { message?: string; increment?: number }[]; done: boolean }[] = [];
  const open = (title: string): ProgressSink => {
    const entry = { title, reports: [] as { message?: string; increment?: number }[], done: false };
    opened.push(entry);
    return { report: (v) => entry.reports.push(v), done: () => (entry.done = true) };
  };
  return { opened, open };
}

test('a load without a percentage opens no notification', () => {
  const { opened, open } = fakeOpener();
  const p = new DownloadProgress(open);
  p.update({ kind: 'begin', title: 'codegen: loading the default model' });
  p.update({ kind: 'report', message: 'reading weights' });
  p.update({ kind: 'end', message: 'ready' });
  assert.deepEqual(opened, []);
});

test('a download: a notification with the message, the percentage and increments that add up to it', () => {
  const { opened, open } = fakeOpener();
  const p = new DownloadProgress(open);
  p.update({ kind: 'begin', title: 'codegen: loading qwen2.5-coder-0.5b-instruct' });
  p.update({ kind: 'report', percentage: 10, message: '46.9 / 469.0 MiB' });
  p.update({ kind: 'report', percentage: 87.9, message: '412.3 / 469.0 MiB' });
  p.update({ kind: 'report', percentage: 50, message: 'stale' });
  p.update({ kind: 'report', percentage: 140 });
  assert.equal(opened.length, 1);
  assert.equal(opened[0].title, 'codegen: loading qwen2.5-coder-0.5b-instruct');
  const reports = opened[0].reports;
  assert.deepEqual(
    reports.map((r) => r.message),
    ['46.9 / 469.0 MiB (10%)', '412.3 / 469.0 MiB (88%)', 'stale (50%)', '100%'],
  );
  assert.equal(reports[0].increment, 10);
  assert.equal(reports[2].increment, 0, 'never backwards');
  const total = reports.reduce((sum, r) => sum + (r.increment ?? 0), 0);
  assert.ok(Math.abs(total - 100) < 1e-9, `increments add up to 100 (${total})`);
  assert.equal(p.showing, true);
  p.update({ kind: 'end', message: 'codegen: model ready' });
  assert.equal(opened[0].done, true);
  assert.equal(p.showing, false);
  // A later load starts from 0 again.
  p.update({ kind: 'begin', title: 'again' });
  p.update({ kind: 'report', percentage: 5 });
  assert.deepEqual(opened[1].reports, [{ message: '5%', increment: 5 }]);
  p.close();
  assert.equal(opened[1].done, true);
});

test('withPercent', () => {
  assert.equal(withPercent('412.3 / 469.0 MiB', 87.9), '412.3 / 469.0 MiB (88%)');
  assert.equal(withPercent(undefined, 3), '3%');
});

test('the status bar item shows the download percentage, the message in its tooltip', () => {
  const s = new StatusModel();
  s.serverStatus({ state: 'loading', model: 'qwen2.5-coder-0.5b-instruct' });
  s.progress({ kind: 'begin', title: 'codegen: loading qwen2.5-coder-0.5b-instruct' });
  assert.equal(render(s.current).text, '$(loading~spin) codegen');
  s.progress({ kind: 'report', percentage: 87.9, message: '412.3 / 469.0 MiB' });
  assert.equal(render(s.current).text, '$(loading~spin) codegen 88%');
  assert.match(render(s.current).tooltip, /412\.3 \/ 469\.0 MiB/);
  s.progress({ kind: 'end' });
  s.serverStatus({ state: 'ready', model: 'qwen2.5-coder-0.5b-instruct' });
  assert.equal(render(s.current).text, '$(sparkle) qwen2.5-coder-0.5b-instruct');
});

test('the status bar item: snoozed until a time; a language turned off', () => {
  const s = new StatusModel();
  s.serverStatus({ state: 'ready', model: 'm' });
  const until = new Date(2026, 0, 2, 14, 35).getTime();
  s.setSnoozed(until);
  assert.equal(render(s.current).text, '$(clock) codegen snoozed until 14:35');
  assert.match(render(s.current).tooltip, /snoozed until 14:35/);
  s.serverStatus({ state: 'error', message: 'out of memory' });
  assert.equal(render(s.current).text, '$(error) codegen', 'an error still shows');
  assert.match(render(s.current).tooltip, /Suggestions snoozed until 14:35/);
  s.serverStatus({ state: 'ready', model: 'm' });
  s.setSnoozed(undefined);
  s.setLanguageOff('plaintext');
  assert.equal(render(s.current).text, '$(circle-slash) codegen');
  assert.match(render(s.current).tooltip, /off for plaintext/);
  s.setLanguageOff(undefined);
  assert.equal(render(s.current).text, '$(sparkle) m');
});
