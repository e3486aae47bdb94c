// Which settings scope a command writes to. No `vscode` import: unit-tested in plain Node.
//
// `WorkspaceConfiguration.update(key, value)` without a target writes to the user (global)
// settings; when the value in effect comes from the workspace or a workspace folder, that
// write changes nothing the user sees. Commands write where the effective value lives.

/** The parts of `WorkspaceConfiguration.inspect()` that say where a value is set. */
export interface Inspected {
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

/** Numbered as `vscode.ConfigurationTarget`. */
export const enum Target {
  Global = 1,
  Workspace = 2,
  WorkspaceFolder = 3,
}

/**
 * The most specific scope that sets the value (workspace folder, then workspace, then user
 * settings); user settings when none does.
 */
export function writeTarget(inspected: Inspected | undefined): Target {
  if (inspected?.workspaceFolderValue !== undefined) return Target.WorkspaceFolder;
  if (inspected?.workspaceValue !== undefined) return Target.Workspace;
  return Target.Global;
}
