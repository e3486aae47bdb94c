// Where the `codegen` binary is: the `codegen.serverPath` setting, else `codegen` on PATH.
// No `vscode` import: unit-tested in plain Node with a fake file system.
import * as path from 'path';

export interface ResolveEnv {
  /** process.env.PATH */
  pathVar: string | undefined;
  /** process.env.PATHEXT (Windows) */
  pathExt?: string;
  platform: NodeJS.Platform;
  homedir: string;
  /** The first workspace folder, for `${workspaceFolder}` and relative paths. */
  workspaceFolder?: string;
  /** Whether `file` exists and is an executable file. */
  isExecutable: (file: string) => boolean;
}

export type Resolved = { path: string } | { error: string };

export const DEFAULT_COMMAND = 'codegen';

function expand(configured: string, env: ResolveEnv): string {
  let p = configured.trim();
  if (p === '~' || p.startsWith('~/') || p.startsWith('~\\')) {
    p = path.join(env.homedir, p.slice(1));
  }
  if (p.includes('${workspaceFolder}')) {
    p = p.split('${workspaceFolder}').join(env.workspaceFolder ?? '');
  }
  if (p.includes('${userHome}')) {
    p = p.split('${userHome}').join(env.homedir);
  }
  return p;
}

function candidates(file: string, env: ResolveEnv): string[] {
  if (env.platform !== 'win32' || path.extname(file) !== '') return [file];
  const exts = (env.pathExt ?? '.EXE;.CMD;.BAT;.COM').split(';').filter((e) => e !== '');
  return [file, ...exts.map((e) => file + e.toLowerCase()), ...exts.map((e) => file + e)];
}

/** Searches PATH for `name`. */
export function which(name: string, env: ResolveEnv): string | undefined {
  const sep = env.platform === 'win32' ? ';' : ':';
  const join = env.platform === 'win32' ? path.win32.join : path.posix.join;
  for (const dir of (env.pathVar ?? '').split(sep)) {
    if (dir === '') continue;
    for (const file of candidates(join(dir, name), env)) {
      if (env.isExecutable(file)) return file;
    }
  }
  return undefined;
}

/**
 * Resolves the server binary. A bare name (no slash) is looked up on PATH; a path is taken
 * as is after `~` / `${workspaceFolder}` expansion, relative to the workspace folder.
 */
export function resolveServerPath(configured: string | undefined, env: ResolveEnv): Resolved {
  const raw = configured && configured.trim() !== '' ? expand(configured, env) : DEFAULT_COMMAND;
  const isBareName = !raw.includes('/') && !(env.platform === 'win32' && raw.includes('\\'));
  if (isBareName) {
    const found = which(raw, env);
    if (found) return { path: found };
    return {
      error:
        `\`${raw}\` was not found on PATH. Install codegen (cargo install --path crates/codegen-cli) ` +
        'or set "codegen.serverPath" to the binary.',
    };
  }
  const isAbsolute = env.platform === 'win32' ? path.win32.isAbsolute(raw) : path.posix.isAbsolute(raw);
  const full = isAbsolute || !env.workspaceFolder ? raw : path.join(env.workspaceFolder, raw);
  for (const file of candidates(full, env)) {
    if (env.isExecutable(file)) return { path: file };
  }
  return { error: `"codegen.serverPath" is ${full}, which is not an executable file.` };
}
