// Partial acceptance: matching what accept-word / accept-line inserted to a suggestion.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ACCEPT_COMMAND, ghostText, ShownSuggestions, suggestionId, utf8Length } from '../src/accept';

test('the suggestion id is the codegen.accepted command argument', () => {
  assert.equal(ACCEPT_COMMAND, 'codegen.accepted');
  assert.equal(suggestionId({ title: 't', command: 'codegen.accepted', arguments: [{ id: 'abc', kind: 'full' }] }), 'abc');
  assert.equal(suggestionId({ command: 'other.command', arguments: [{ id: 'abc' }] }), undefined);
  assert.equal(suggestionId({ command: 'codegen.accepted', arguments: [] }), undefined);
  assert.equal(suggestionId({ command: 'codegen.accepted' }), undefined);
  assert.equal(suggestionId(undefined), undefined);
});

test('ghost text: the insert text less what is already before the cursor in its range', () => {
  assert.equal(ghostText('    return a + b', '    ret'), 'urn a + b');
  assert.equal(ghostText('return a + b', ''), 'return a + b');
  assert.equal(ghostText('return a + b', 'x = '), undefined, 'does not continue the text');
});

test('UTF-8 lengths, the unit of the server', () => {
  assert.equal(utf8Length('abc'), 3);
  assert.equal(utf8Length('é'), 2);
  assert.equal(utf8Length('→'), 3);
});

test('accepted text is matched to the first candidate, in rank order, that starts with it', () => {
  const shown = new ShownSuggestions();
  shown.set('file:///a.py', [
    { id: 'best', ghost: 'return a + b\n' },
    { id: 'second', ghost: 'return sum((a, b))\n' },
    { id: 'third', ghost: 'pass\n' },
  ]);
  assert.deepEqual(shown.accepted('file:///a.py', 'return '), { id: 'best', kind: 'partial', acceptedLength: 7 });
  // Next word: both still continue "return ", the best still comes first.
  assert.deepEqual(shown.accepted('file:///a.py', 'sum('), { id: 'second', kind: 'partial', acceptedLength: 4 });
  // Only the second continues now.
  assert.deepEqual(shown.accepted('file:///a.py', '(a, b))\n'), { id: 'second', kind: 'partial', acceptedLength: 8 });
  assert.equal(shown.accepted('file:///a.py', 'x'), undefined, 'nothing left');
});

test('no report for text from elsewhere, another document, or nothing inserted', () => {
  const shown = new ShownSuggestions();
  shown.set('file:///a.py', [{ id: 'x', ghost: 'foo(bar)' }]);
  assert.equal(shown.accepted('file:///a.py', 'baz'), undefined, "another provider's suggestion");
  assert.equal(shown.accepted('file:///b.py', 'foo'), undefined);
  assert.equal(shown.accepted('file:///a.py', ''), undefined);
  assert.deepEqual(shown.accepted('file:///a.py', 'foo('), { id: 'x', kind: 'partial', acceptedLength: 4 });
  shown.clear();
  assert.equal(shown.accepted('file:///a.py', 'bar'), undefined);
});

test('multi-byte text is counted in UTF-8 bytes', () => {
  const shown = new ShownSuggestions();
  shown.set('u', [{ id: 'x', ghost: 'print("héllo")' }]);
  assert.deepEqual(shown.accepted('u', 'print("héllo")'), { id: 'x', kind: 'partial', acceptedLength: 15 });
});

test('a copy matches what was shown before the command; new items that came meanwhile win', () => {
  const shown = new ShownSuggestions();
  shown.set('u', [{ id: 'old', ghost: 'foo(bar)' }]);
  const copy = shown.copy();
  // VS Code asked again for the cursor after "foo(" before the accept command returned.
  shown.set('u', [{ id: 'new', ghost: 'bar)' }]);
  assert.deepEqual(copy.accepted('u', 'foo('), { id: 'old', kind: 'partial', acceptedLength: 4 });
  shown.adopt(copy);
  assert.deepEqual(shown.accepted('u', 'bar'), { id: 'new', kind: 'partial', acceptedLength: 3 }, 'the newer items stay');
  // No new items meanwhile: what is left of the copy is taken over.
  const again = shown.copy();
  assert.deepEqual(again.accepted('u', ')'), { id: 'new', kind: 'partial', acceptedLength: 1 });
  shown.adopt(again);
  assert.equal(shown.accepted('u', ')'), undefined, 'already accepted');
});
