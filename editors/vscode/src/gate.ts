// Whether an inline completion request goes to the server: the global switch, a snooze,
// `codegen.enable` per language and `codegen.triggerMode`. No `vscode` import: unit-tested
// in plain Node.

/** `codegen.triggerMode`. */
export type TriggerMode = 'automatic' | 'manual';

export function triggerMode(value: unknown): TriggerMode {
  return value === 'manual' ? 'manual' : 'automatic';
}

/**
 * `codegen.enable` (like `{"*": true, "plaintext": false}`) for one language id: the
 * language's own entry, else `"*"`, else on. Entries that are not booleans are ignored.
 */
export function enabledForLanguage(value: unknown, languageId: string): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return true;
  const map = value as Record<string, unknown>;
  if (typeof map[languageId] === 'boolean') return map[languageId] as boolean;
  if (typeof map['*'] === 'boolean') return map['*'] as boolean;
  return true;
}

/** `codegen.enable` with the language set on or off (a new object; the others are kept). */
export function withLanguage(value: unknown, languageId: string, enabled: boolean): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (typeof v === 'boolean') out[k] = v;
    }
  }
  out[languageId] = enabled;
  return out;
}

/** The durations `codegen: Snooze` offers, in minutes. */
export const SNOOZE_MINUTES = [5, 15, 60];

/** A snooze: suggestions pause until a time, then resume by themselves. */
export class Snooze {
  private until: number | undefined;

  constructor(private readonly now: () => number = Date.now) {}

  /** Snoozes for `minutes` from now; returns when it ends (epoch ms). */
  start(minutes: number): number {
    this.until = this.now() + Math.max(0, minutes) * 60_000;
    return this.until;
  }

  stop(): void {
    this.until = undefined;
  }

  /** When the snooze ends (epoch ms); undefined when not snoozed (or it has ended). */
  get snoozedUntil(): number | undefined {
    if (this.until !== undefined && this.now() >= this.until) this.until = undefined;
    return this.until;
  }

  get active(): boolean {
    return this.snoozedUntil !== undefined;
  }
}

/** `HH:MM` in local time, for "snoozed until". */
export function clock(ms: number): string {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

/**
 * In manual mode a suggestion asked for with the key stays served while you type through it:
 * automatic requests on the same line of the same document as the last explicit one go to
 * the server (which answers them from what it already generated), until one comes back empty
 * or the cursor leaves the line.
 */
export interface ManualSession {
  uri: string;
  line: number;
}

export interface Request {
  /** `codegen.enabled`. */
  enabled: boolean;
  snoozed: boolean;
  /** `codegen.enable` for the document's language. */
  languageEnabled: boolean;
  mode: TriggerMode;
  /** The user asked (the trigger command, Alt+\, cycling), not typing. */
  explicit: boolean;
  uri: string;
  line: number;
  session?: ManualSession;
}

/** Whether the request goes to the server. */
export function shouldRequest(r: Request): boolean {
  if (!r.enabled || r.snoozed || !r.languageEnabled) return false;
  if (r.mode === 'automatic' || r.explicit) return true;
  return r.session !== undefined && r.session.uri === r.uri && r.session.line === r.line;
}

/** The manual session after a request: kept while requests on its line bring items. */
export function nextSession(r: Request, served: boolean, gotItems: boolean): ManualSession | undefined {
  if (r.mode !== 'manual' || !served || !gotItems) return undefined;
  return { uri: r.uri, line: r.line };
}
