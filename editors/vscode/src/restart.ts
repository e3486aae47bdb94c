// When the server dies: restart it, unless it died too often lately.
// No `vscode` import: unit-tested in plain Node.

export class RestartPolicy {
  private times: number[] = [];

  constructor(
    private readonly maxRestarts = 4,
    private readonly windowMs = 3 * 60 * 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records a crash; true when the server should be started again. */
  shouldRestart(): boolean {
    const t = this.now();
    this.times = this.times.filter((x) => t - x < this.windowMs);
    if (this.times.length >= this.maxRestarts) return false;
    this.times.push(t);
    return true;
  }

  /** A restart by the user starts the count again. */
  reset(): void {
    this.times = [];
  }
}
