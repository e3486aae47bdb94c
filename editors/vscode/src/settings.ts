// VS Code settings (`codegen.*`) -> the settings object `codegen lsp` understands
// (initializationOptions, and `workspace/didChangeConfiguration` as `{ settings: { codegen } }`).
// No `vscode` import: unit-tested in plain Node.

/** The server's settings object (see the server contract). */
export interface ServerSettings {
  model?: string;
  /** Draft model for speculative decoding (a name, path or hf: reference), or `none`. */
  draftModel?: string;
  /** A remote engine that draws the samples: `[openai+|llama-server+|ollama+]http://HOST:PORT`. */
  backend?: string;
  /** The model to ask the remote engine for (Ollama needs one). */
  backendModel?: string;
  /** Seconds without requests before the server releases the model (0: never). */
  idleUnloadSecs?: number;
  /** A candidate model that runs in shadow and serves a rollout share of documents. */
  shadowModel?: string;
  /** Percent of replies the candidate also computes in the background (0-100). */
  shadowPercent?: number;
  /** Percent of documents the candidate serves instead of the model (0-100). */
  rolloutPercent?: number;
  device?: 'cpu' | 'cuda' | 'metal';
  threads?: number;
  maxTokens?: number;
  temperature?: number;
  /** Candidates for explicit requests (invoked, or cycling); the server's default is 4. */
  n?: number;
  /** Candidates while typing (automatic triggers), at most `n`; the server's default is 1. */
  nAutomatic?: number;
  rank?: RankPolicy;
  rankBudgetMs?: number;
  debounceMs?: number;
  timeBudgetMs?: number;
  languages?: string[];
  enabled: boolean;
}

/**
 * How the server orders the candidates; its inline items come back best first and are shown
 * in that order. `auto`: the docstring's examples (run in the sandbox within `rankBudgetMs`),
 * then syntax, agreement between samples, mean token log-probability, how often a text was
 * drawn. `logprob`: mean token log-probability. `none`: sample order.
 */
export type RankPolicy = 'auto' | 'logprob' | 'none';

/** Reads one `codegen.*` setting (a `WorkspaceConfiguration.get` in the extension). */
export type SettingReader = (key: string) => unknown;

export const DEFAULT_LANGUAGES = [
  'python',
  'rust',
  'javascript',
  'javascriptreact',
  'typescript',
  'typescriptreact',
  'go',
];

/**
 * Settings only the extension reads: the binary, LSP tracing, and the gate in front of the
 * server (`triggerMode`, `enable` per language; see gate.ts).
 */
export const CLIENT_SETTINGS = ['serverPath', 'trace.server', 'triggerMode', 'enable'];

/** Settings that only take effect when the server is started again. */
export const RESTART_SETTINGS = ['serverPath', 'languages', 'backend', 'backendModel'];

const DEVICES = ['cpu', 'cuda', 'metal'];
const RANK_POLICIES: RankPolicy[] = ['auto', 'logprob', 'none'];

/** The most candidates the server draws per request (`n` and `nAutomatic` are 1–16). */
export const MAX_N = 16;

function int(value: unknown, min: number): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= min ? Math.floor(value) : undefined;
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

/** `codegen.rank`: a policy name, or the old boolean (`true` is `auto`, `false` is `none`). */
function rankPolicy(value: unknown): RankPolicy | undefined {
  if (value === true) return 'auto';
  if (value === false) return 'none';
  const name = nonEmptyString(value);
  return name !== undefined && (RANK_POLICIES as string[]).includes(name) ? (name as RankPolicy) : undefined;
}

/** The language ids that get completions (the setting, else the default list). */
export function languages(read: SettingReader): string[] {
  const value = read('languages');
  if (Array.isArray(value)) {
    const ids = value.filter((v): v is string => typeof v === 'string' && v.trim() !== '').map((v) => v.trim());
    return [...new Set(ids)];
  }
  return [...DEFAULT_LANGUAGES];
}

/**
 * Maps `codegen.*` settings to the server's settings object. Empty or out-of-range values are
 * left out so the server's own defaults apply (an empty model is the default model, 0 threads
 * is all cores).
 */
/**
 * Command-line flags for `codegen lsp` from `codegen.backend` / `codegen.backendModel`: with a
 * remote backend the server does no model work itself (no local prefill, no validation).
 */
export function backendArgs(read: SettingReader): string[] {
  const backend = nonEmptyString(read('backend'));
  if (backend === undefined) return [];
  const args = ['--backend', backend];
  const model = nonEmptyString(read('backendModel'));
  if (model !== undefined) args.push('--backend-model', model);
  return args;
}

export function toServerSettings(read: SettingReader): ServerSettings {
  const settings: ServerSettings = { enabled: read('enabled') !== false };
  const model = nonEmptyString(read('model'));
  if (model !== undefined) settings.model = model;
  const draftModel = nonEmptyString(read('draftModel'));
  if (draftModel !== undefined) settings.draftModel = draftModel;
  const backend = nonEmptyString(read('backend'));
  if (backend !== undefined) settings.backend = backend;
  const backendModel = nonEmptyString(read('backendModel'));
  if (backendModel !== undefined) settings.backendModel = backendModel;
  const idle = int(read('idleUnloadSecs'), 0);
  if (idle !== undefined) settings.idleUnloadSecs = idle;
  const shadowModel = nonEmptyString(read('shadowModel'));
  if (shadowModel !== undefined) settings.shadowModel = shadowModel;
  const shadowPercent = int(read('shadowPercent'), 0);
  if (shadowPercent !== undefined && shadowPercent <= 100) settings.shadowPercent = shadowPercent;
  const rolloutPercent = int(read('rolloutPercent'), 0);
  if (rolloutPercent !== undefined && rolloutPercent <= 100) settings.rolloutPercent = rolloutPercent;
  const device = nonEmptyString(read('device'));
  if (device !== undefined && DEVICES.includes(device)) settings.device = device as ServerSettings['device'];
  const threads = int(read('threads'), 1);
  if (threads !== undefined) settings.threads = threads;
  const maxTokens = int(read('maxTokens'), 1);
  if (maxTokens !== undefined) settings.maxTokens = maxTokens;
  const temperature = read('temperature');
  if (typeof temperature === 'number' && Number.isFinite(temperature) && temperature >= 0) {
    settings.temperature = temperature;
  }
  const n = int(read('n'), 1);
  if (n !== undefined && n <= MAX_N) settings.n = n;
  const nAutomatic = int(read('nAutomatic'), 1);
  if (nAutomatic !== undefined && nAutomatic <= MAX_N) settings.nAutomatic = nAutomatic;
  const rank = rankPolicy(read('rank'));
  if (rank !== undefined) settings.rank = rank;
  const rankBudgetMs = int(read('rankBudgetMs'), 0);
  if (rankBudgetMs !== undefined) settings.rankBudgetMs = rankBudgetMs;
  const debounceMs = int(read('debounceMs'), 0);
  if (debounceMs !== undefined) settings.debounceMs = debounceMs;
  const timeBudgetMs = int(read('timeBudgetMs'), 0);
  if (timeBudgetMs !== undefined) settings.timeBudgetMs = timeBudgetMs;
  settings.languages = languages(read);
  return settings;
}

/** The document selector for the language client: files and untitled buffers of each language. */
export function documentSelector(langs: string[]): { scheme: string; language: string }[] {
  return langs.flatMap((language) => [
    { scheme: 'file', language },
    { scheme: 'untitled', language },
  ]);
}
