// What the status bar item shows: a small state machine fed by the server's `codegen/status`
// and `$/progress` notifications and by the client's lifecycle, and a pure render().
// No `vscode` import: unit-tested in plain Node.
import { clock } from './gate';

/** `idle`: not started yet; the server starts when a file of `codegen.languages` opens. */
export type ServerState = 'idle' | 'starting' | 'loading' | 'ready' | 'error' | 'stopped';

export interface Status {
  state: ServerState;
  enabled: boolean;
  model?: string;
  message?: string;
  lastLatencyMs?: number;
  /** Work-done progress while the model loads or downloads ($/progress). */
  progress?: { title?: string; message?: string; percentage?: number };
  /** Suggestions snoozed until this time (epoch ms). */
  snoozedUntil?: number;
  /** The active editor's language, when `codegen.enable` turns it off. */
  languageOff?: string;
}

/** The `codegen/status` notification's params. */
export interface CodegenStatusParams {
  /** `idle`: the server released the model after `idleUnloadSecs` without requests. */
  state: 'loading' | 'ready' | 'error' | 'idle';
  model?: string;
  message?: string;
  lastLatencyMs?: number;
}

export type ProgressValue =
  | { kind: 'begin'; title?: string; message?: string; percentage?: number }
  | { kind: 'report'; message?: string; percentage?: number }
  | { kind: 'end'; message?: string };

export class StatusModel {
  private status: Status = { state: 'idle', enabled: true };
  private listeners: ((s: Status) => void)[] = [];

  get current(): Status {
    return { ...this.status, progress: this.status.progress && { ...this.status.progress } };
  }

  onChange(listener: (s: Status) => void): void {
    this.listeners.push(listener);
  }

  private update(patch: Partial<Status>): void {
    this.status = { ...this.status, ...patch };
    for (const l of this.listeners) l(this.current);
  }

  setEnabled(enabled: boolean): void {
    this.update({ enabled });
  }

  /** A snooze until `until` (epoch ms), or none. */
  setSnoozed(until: number | undefined): void {
    this.update({ snoozedUntil: until });
  }

  /** The active editor's language when `codegen.enable` turns it off, else undefined. */
  setLanguageOff(languageId: string | undefined): void {
    if (this.status.languageOff !== languageId) this.update({ languageOff: languageId });
  }

  starting(): void {
    this.update({ state: 'starting', message: undefined, progress: undefined });
  }

  stopped(message?: string): void {
    this.update({ state: 'stopped', message, progress: undefined });
  }

  error(message: string): void {
    this.update({ state: 'error', message, progress: undefined });
  }

  /** `codegen/status` from the server. Malformed params are ignored. */
  serverStatus(params: unknown): void {
    if (typeof params !== 'object' || params === null) return;
    const p = params as Partial<CodegenStatusParams>;
    if (p.state !== 'loading' && p.state !== 'ready' && p.state !== 'error' && p.state !== 'idle') return;
    // A model released while idle is still the one that serves: the next
    // request loads it again. Shown as ready, with the server's message.
    const patch: Partial<Status> = { state: p.state === 'idle' ? 'ready' : p.state };
    if (typeof p.model === 'string') patch.model = p.model;
    patch.message = typeof p.message === 'string' ? p.message : undefined;
    if (typeof p.lastLatencyMs === 'number') patch.lastLatencyMs = p.lastLatencyMs;
    if (p.state !== 'loading') patch.progress = undefined;
    this.update(patch);
  }

  /** `$/progress` for a work-done token the server created. */
  progress(value: ProgressValue): void {
    if (value.kind === 'begin') {
      this.update({
        state: this.status.state === 'ready' ? 'ready' : 'loading',
        progress: { title: value.title, message: value.message, percentage: value.percentage },
      });
    } else if (value.kind === 'report') {
      const prev = this.status.progress ?? {};
      this.update({
        progress: {
          title: prev.title,
          message: value.message ?? prev.message,
          percentage: value.percentage ?? prev.percentage,
        },
      });
    } else {
      this.update({ progress: undefined });
    }
  }

  /** Round-trip time of an inline completion request, measured by the client. */
  latency(ms: number): void {
    this.update({ lastLatencyMs: Math.round(ms) });
  }
}

export interface Rendered {
  text: string;
  tooltip: string;
  background?: 'error' | 'warning';
}

/** The status bar item's text ($(icon) codicons), tooltip and background. */
export function render(s: Status): Rendered {
  const click = 'Click for the codegen menu.';
  if (!s.enabled) {
    return { text: '$(circle-slash) codegen', tooltip: `codegen: suggestions are off. ${click}` };
  }
  const snoozed = s.snoozedUntil !== undefined ? `snoozed until ${clock(s.snoozedUntil)}` : undefined;
  if (snoozed && (s.state === 'ready' || s.state === 'starting' || s.state === 'idle')) {
    return { text: `$(clock) codegen ${snoozed}`, tooltip: `codegen: suggestions ${snoozed}. ${click}` };
  }
  if (s.languageOff !== undefined && s.state === 'ready') {
    return {
      text: '$(circle-slash) codegen',
      tooltip: `codegen: suggestions are off for ${s.languageOff} ("codegen.enable"). ${click}`,
    };
  }
  const r = renderState(s, click);
  if (snoozed) r.tooltip = `${r.tooltip} Suggestions ${snoozed}.`;
  return r;
}

function renderState(s: Status, click: string): Rendered {
  switch (s.state) {
    case 'idle':
      return {
        text: '$(sparkle) codegen',
        tooltip: `codegen: the server starts when a file of "codegen.languages" is open. ${click}`,
      };
    case 'starting':
      return { text: '$(loading~spin) codegen', tooltip: `codegen: starting the server. ${click}` };
    case 'loading': {
      const pct = s.progress?.percentage;
      const what = [s.progress?.title, s.progress?.message].filter(Boolean).join(': ') || `loading ${s.model ?? 'the model'}`;
      return {
        text: `$(loading~spin) codegen${pct !== undefined ? ` ${Math.round(pct)}%` : ''}`,
        tooltip: `codegen: ${what}. ${click}`,
      };
    }
    case 'ready': {
      const parts = [s.model ?? 'ready'];
      if (s.lastLatencyMs !== undefined) parts.push(`${s.lastLatencyMs} ms`);
      return {
        text: `$(sparkle) ${parts.join(' · ')}`,
        tooltip: `codegen: ready${s.model ? ` with ${s.model}` : ''}${
          s.lastLatencyMs !== undefined ? `, last completion ${s.lastLatencyMs} ms` : ''
        }${s.message ? ` (${s.message})` : ''}. ${click}`,
      };
    }
    case 'error':
      return {
        text: '$(error) codegen',
        tooltip: `codegen: ${s.message ?? 'error'}. ${click}`,
        background: 'error',
      };
    case 'stopped':
    default:
      return {
        text: '$(debug-disconnect) codegen',
        tooltip: `codegen: server stopped${s.message ? ` (${s.message})` : ''}. ${click}`,
        background: 'warning',
      };
  }
}
