// Work-done progress the server reports while it loads the model, and while it downloads it
// (`$/progress` reports with `percentage` 0–100 and a message like "412.3 / 469.0 MiB").
// No `vscode` import: unit-tested in plain Node.
//
// vscode-languageclient's own progress feature shows server-initiated progress as a window
// (status bar) progress that drops the percentage; the extension handles the tokens itself
// instead (see LoadProgressFeature in extension.ts): the status bar item shows the
// percentage, and once a report carries a percentage (a download, which can take minutes)
// a notification with a progress bar shows it too. A load without download shows no
// notification.
import type { ProgressValue } from './status';

/** A `vscode.window.withProgress` notification, as the extension opens it. */
export interface ProgressSink {
  report(value: { message?: string; increment?: number }): void;
  done(): void;
}

export class DownloadProgress {
  private title: string | undefined;
  private sink: ProgressSink | undefined;
  private reported = 0;

  constructor(private readonly open: (title: string) => ProgressSink) {}

  get showing(): boolean {
    return this.sink !== undefined;
  }

  update(value: ProgressValue): void {
    if (value.kind === 'end') {
      this.close();
      return;
    }
    if (value.kind === 'begin') {
      this.close();
      this.title = value.title;
    }
    const pct = value.percentage;
    if (typeof pct !== 'number' || !Number.isFinite(pct)) {
      if (this.sink && value.message) this.sink.report({ message: value.message });
      return;
    }
    const clamped = Math.max(0, Math.min(100, pct));
    if (!this.sink) this.sink = this.open(this.title ?? 'codegen: downloading the model');
    const increment = Math.max(0, clamped - this.reported);
    this.reported += increment;
    this.sink.report({ message: withPercent(value.message, clamped), increment });
  }

  close(): void {
    this.sink?.done();
    this.sink = undefined;
    this.title = undefined;
    this.reported = 0;
  }
}

/** "412.3 / 469.0 MiB (88%)". */
export function withPercent(message: string | undefined, percentage: number): string {
  const pct = `${Math.round(percentage)}%`;
  return message ? `${message} (${pct})` : pct;
}
