// What the status bar item shows: a small state machine fed by the server's `codegen/status`
// and `$/progress` notifications and by the client's lifecycle, and a pure render().
// No `vscode` import: unit-tested in plain Node.

export type ServerState = 'starting' | 'loading' | 'ready' | 'error' | 'stopped';

export interface Status {
  state: ServerState;
  enabled: boolean;
  model?: string;
  message?: string;
  lastLatencyMs?: number;
  /** Work-done progress while the model loads ($/progress). */
  progress?: { title?: string; message?: string; percentage?: number };
}

/** The `codegen/status` notification's params. */
export interface CodegenStatusParams {
  state: 'loading' | 'ready' | 'error';
  model?: string;
  message?: string;
  lastLatencyMs?: number;
}

export type ProgressValue =
  | { kind: 'begin'; title?: string; message?: string; percentage?: number }
  | { kind: 'report'; message?: string; percentage?: number }
  | { kind: 'end'; message?: string };

export class StatusModel {
  private status: Status = { state: 'stopped', enabled: true };
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
    if (p.state !== 'loading' && p.state !== 'ready' && p.state !== 'error') return;
    const patch: Partial<Status> = { state: p.state };
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
  switch (s.state) {
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
        }. ${click}`,
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
