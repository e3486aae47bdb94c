// Partial acceptance (accept word / accept line) reported to the server. No `vscode` import:
// unit-tested in plain Node.
//
// VS Code runs an inline item's command only when the whole item is accepted (Tab); for a
// full accept the server's own `codegen.accepted` command on each item does the reporting.
// Accepting a word or a line runs no command, so the extension wraps
// `editor.action.inlineSuggest.acceptNextWord` / `acceptNextLine`: it runs the built-in
// command, reads the text it inserted at the cursor, finds the suggestion that text came
// from among the items the server returned last, and sends
// `workspace/executeCommand` `codegen.accepted` `[{id, kind: "partial", acceptedLength}]`.

/** The server's command on every inline item, and the one that records acceptances. */
export const ACCEPT_COMMAND = 'codegen.accepted';

/** A suggestion on screen: its server id and the text still to be inserted at the cursor. */
export interface Candidate {
  id: string;
  ghost: string;
}

/** The suggestion id in an item's `codegen.accepted` command (`arguments[0].id`). */
export function suggestionId(command: unknown): string | undefined {
  if (typeof command !== 'object' || command === null) return undefined;
  const c = command as { command?: unknown; arguments?: unknown };
  if (c.command !== ACCEPT_COMMAND || !Array.isArray(c.arguments)) return undefined;
  const arg = c.arguments[0] as { id?: unknown } | undefined;
  return typeof arg?.id === 'string' ? arg.id : undefined;
}

/**
 * The text an item would insert at the cursor: its insert text less the part that repeats
 * what is already between the start of its range and the cursor (the server's items
 * replace the line up to the cursor). Undefined when the item does not continue that text.
 */
export function ghostText(insertText: string, beforeCursorInRange: string): string | undefined {
  return insertText.startsWith(beforeCursorInRange) ? insertText.slice(beforeCursorInRange.length) : undefined;
}

/** Length in UTF-8 bytes, the unit of the server's suggestion lengths. */
export function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

export interface PartialAcceptance {
  id: string;
  kind: 'partial';
  /** UTF-8 bytes accepted by this action. */
  acceptedLength: number;
}

/** The suggestions the server returned last, per document, for matching partial accepts. */
export class ShownSuggestions {
  private uri: string | undefined;
  private candidates: Candidate[] = [];
  /** Counts `set` and `clear` calls: a copy taken earlier is stale when it differs. */
  generation = 0;

  /** Items the server just returned for `uri`, in rank order. */
  set(uri: string, candidates: Candidate[]): void {
    this.uri = uri;
    this.candidates = candidates.filter((c) => c.ghost !== '');
    this.generation++;
  }

  clear(): void {
    this.uri = undefined;
    this.candidates = [];
    this.generation++;
  }

  /**
   * A copy, taken before an accept command runs: VS Code may ask for new items (for the
   * cursor after the insertion) before the command's promise resolves.
   */
  copy(): ShownSuggestions {
    const c = new ShownSuggestions();
    c.uri = this.uri;
    c.candidates = this.candidates.map((x) => ({ ...x }));
    c.generation = this.generation;
    return c;
  }

  /** Takes over what is left of `other` (a copy) unless new items came meanwhile. */
  adopt(other: ShownSuggestions): void {
    if (other.generation !== this.generation) return;
    this.uri = other.uri;
    this.candidates = other.candidates;
  }

  /**
   * `inserted` was accepted at the cursor of `uri`: the acceptance to report, or undefined
   * when it came from no codegen suggestion (another provider's, or nothing was inserted).
   * The first candidate, in rank order, that starts with the inserted text is taken; what is
   * left of it stays for the next partial accept.
   */
  accepted(uri: string, inserted: string): PartialAcceptance | undefined {
    if (inserted === '' || uri !== this.uri) return undefined;
    const match = this.candidates.find((c) => c.ghost.startsWith(inserted));
    if (!match) return undefined;
    // The others no longer continue the text at the cursor unless they share the prefix.
    this.candidates = this.candidates
      .filter((c) => c.ghost.startsWith(inserted))
      .map((c) => ({ id: c.id, ghost: c.ghost.slice(inserted.length) }))
      .filter((c) => c.ghost !== '');
    return { id: match.id, kind: 'partial', acceptedLength: utf8Length(inserted) };
  }
}
