// Parses `codegen model list --json`. No `vscode` import: unit-tested in plain Node.
//
// The shape:
//   {"cache": "/home/me/.cache/codegen", "default": "qwen2.5-coder-0.5b-instruct",
//    "models": [{"name": "...", "description": "...", "size_bytes": 491400032,
//                "cached": true, "default": true, "path": "/abs/file.gguf" | null}]}

export interface ModelEntry {
  name: string;
  description: string;
  /** Bytes of the GGUF file; undefined when the list does not know. */
  sizeBytes?: number;
  cached: boolean;
  default: boolean;
  /** The cached file, when there is one. */
  path?: string;
}

export interface ModelList {
  cache?: string;
  default?: string;
  models: ModelEntry[];
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Parses the JSON; throws when it is not an object with a `models` array. Bad entries are skipped. */
export function parseModelList(stdout: string): ModelList {
  let data: unknown;
  try {
    data = JSON.parse(stdout);
  } catch (err) {
    throw new Error(`codegen model list --json printed no JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof data !== 'object' || data === null || !Array.isArray((data as { models?: unknown }).models)) {
    throw new Error('codegen model list --json: no "models" array');
  }
  const d = data as { cache?: unknown; default?: unknown; models: unknown[] };
  const models: ModelEntry[] = [];
  for (const m of d.models) {
    if (typeof m !== 'object' || m === null) continue;
    const e = m as Record<string, unknown>;
    const name = str(e.name);
    if (!name) continue;
    const size = e.size_bytes;
    const path = str(e.path);
    models.push({
      name,
      description: str(e.description) ?? '',
      ...(typeof size === 'number' && Number.isFinite(size) && size >= 0 ? { sizeBytes: size } : {}),
      cached: e.cached === true,
      default: e.default === true || (e.default === undefined && name === d.default),
      ...(path ? { path } : {}),
    });
  }
  const list: ModelList = { models };
  if (str(d.cache)) list.cache = d.cache as string;
  if (str(d.default)) list.default = d.default as string;
  return list;
}

/** "469 MiB", "1066 MiB", "12.5 GiB" (from 10 GiB); "?" when unknown. */
export function formatSize(bytes: number | undefined): string {
  if (bytes === undefined) return '?';
  const mib = bytes / (1024 * 1024);
  if (mib >= 10 * 1024) return `${(mib / 1024).toFixed(1)} GiB`;
  return `${Math.round(mib)} MiB`;
}

/** The quick pick's description of a model: size, cache state, default, current. */
export function describeModel(m: ModelEntry, current: string): string {
  const parts = [formatSize(m.sizeBytes)];
  if (!m.cached) parts.push('not cached (fetched on first use)');
  if (m.default) parts.push('default');
  if (m.name === current || (current === '' && m.default)) parts.push('current');
  return parts.join(' · ');
}
