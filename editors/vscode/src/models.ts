// Parses `codegen model list`. No `vscode` import: unit-tested in plain Node.

export interface ModelEntry {
  name: string;
  size: string;
  cached: boolean;
  description: string;
}

/**
 * `codegen model list` prints a header (NAME SIZE CACHED DESCRIPTION), one row per model and a
 * final `cache: DIR` line. SIZE is "469 MiB" or "?".
 */
export function parseModelList(stdout: string): ModelEntry[] {
  const models: ModelEntry[] = [];
  for (const line of stdout.split(/\r?\n/)) {
    const m = /^(\S+)\s+(\?|\S+ \S+)\s+(yes|no)\b\s*(.*)$/.exec(line);
    if (!m || m[1] === 'NAME') continue;
    models.push({ name: m[1], size: m[2], cached: m[3] === 'yes', description: m[4].trim() });
  }
  return models;
}

/** The `cache: DIR` line of `codegen model list`, if any. */
export function parseCacheDir(stdout: string): string | undefined {
  const m = /^cache: (.+)$/m.exec(stdout);
  return m ? m[1].trim() : undefined;
}
