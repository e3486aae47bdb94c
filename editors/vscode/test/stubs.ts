// Minimal stand-ins for the `vscode` module and vscode-languageclient, enough to activate the
// extension in plain Node and watch what it does. Installed before src/extension is loaded.
import Module = require('module');
import { EventEmitter } from 'events';

export const calls = {
  commands: new Map<string, (...args: unknown[]) => unknown>(),
  /** Commands run that no one registered (VS Code's own: setContext, inlineSuggest.*). */
  builtins: [] as { name: string; args: unknown[] }[],
  errors: [] as string[],
  clients: [] as FakeClient[],
  quickPicks: [] as unknown[][],
  pickAnswer: undefined as unknown,
  /** Settings writes: key, value and ConfigurationTarget (1 user, 2 workspace, 3 folder). */
  updates: [] as { key: string; value: unknown; target: unknown }[],
  /** withProgress notifications: title, reports, and whether it ended. */
  progress: [] as { title: string; reports: { message?: string; increment?: number }[]; done: boolean }[],
};

export const settings = new Map<string, unknown>();
/** Where a setting is set, as `inspect()` reports it; user settings when not listed. */
export const settingScopes = new Map<string, 'globalValue' | 'workspaceValue' | 'workspaceFolderValue'>();

export class Position {
  constructor(
    public line: number,
    public character: number,
  ) {}
}

export class Range {
  constructor(
    public start: Position,
    public end: Position,
  ) {}
}

/** A text document: enough of `vscode.TextDocument` for the extension. */
export class FakeDocument {
  version = 1;
  uri: { scheme: string; fsPath: string; toString(): string };
  constructor(
    public languageId: string,
    public text = '',
    path = `/src/file.${languageId}`,
    scheme = 'file',
  ) {
    this.uri = { scheme, fsPath: path, toString: () => `${scheme}://${path}` };
  }
  offsetAt(p: Position): number {
    const lines = this.text.split('\n');
    let offset = 0;
    for (let i = 0; i < p.line && i < lines.length; i++) offset += lines[i].length + 1;
    return offset + p.character;
  }
  positionAt(offset: number): Position {
    const before = this.text.slice(0, offset).split('\n');
    return new Position(before.length - 1, before[before.length - 1].length);
  }
  getText(range?: Range): string {
    if (!range) return this.text;
    return this.text.slice(this.offsetAt(range.start), this.offsetAt(range.end));
  }
  /** Inserts at the offset, as an accept command would, and moves `editor`'s cursor after it. */
  insert(offset: number, text: string, editor?: FakeEditor): void {
    this.text = this.text.slice(0, offset) + text + this.text.slice(offset);
    this.version++;
    if (editor) editor.selection = { active: this.positionAt(offset + text.length) };
  }
}

export class FakeEditor {
  selection: { active: Position };
  constructor(
    public document: FakeDocument,
    cursor = new Position(0, 0),
  ) {
    this.selection = { active: cursor };
  }
}

/** The open documents and active editor, as the tests arrange them. */
export const editors = {
  documents: [] as FakeDocument[],
  active: undefined as FakeEditor | undefined,
};
const openListeners: ((doc: FakeDocument) => unknown)[] = [];

/** Opens a document like VS Code does (onDidOpenTextDocument). */
export async function openDocument(doc: FakeDocument): Promise<void> {
  editors.documents.push(doc);
  for (const l of openListeners) await l(doc);
}
const configListeners: ((e: { affectsConfiguration: (s: string) => boolean }) => unknown)[] = [];

/** Changes `codegen.KEY` and fires onDidChangeConfiguration like VS Code does. */
export async function changeSetting(key: string, value: unknown): Promise<void> {
  settings.set(key, value);
  const full = `codegen.${key}`;
  for (const l of configListeners) {
    await l({ affectsConfiguration: (s: string) => full === s || full.startsWith(s + '.') });
  }
}

class StatusBarItem {
  text = '';
  tooltip = '';
  command = '';
  name = '';
  backgroundColor: unknown;
  show() {}
  dispose() {}
}
export const statusItems: StatusBarItem[] = [];

const vscode = {
  StatusBarAlignment: { Left: 1, Right: 2 },
  ConfigurationTarget: { Global: 1, Workspace: 2, WorkspaceFolder: 3 },
  ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
  Position,
  Range,
  ThemeColor: class {
    constructor(public id: string) {}
  },
  window: {
    createOutputChannel: () => ({ appendLine() {}, append() {}, show() {}, dispose() {}, info() {}, error() {} }),
    createStatusBarItem: () => {
      const item = new StatusBarItem();
      statusItems.push(item);
      return item;
    },
    showErrorMessage: async (msg: string) => {
      calls.errors.push(msg);
      return undefined;
    },
    showQuickPick: async (items: unknown[]) => {
      calls.quickPicks.push(items);
      return calls.pickAnswer;
    },
    showInformationMessage: async () => undefined,
    setStatusBarMessage: () => ({ dispose() {} }),
    get activeTextEditor() {
      return editors.active;
    },
    onDidChangeActiveTextEditor: () => ({ dispose() {} }),
    withProgress: async (opts: { title: string }, task: (p: unknown) => Promise<unknown>) => {
      const entry = { title: opts.title, reports: [] as { message?: string; increment?: number }[], done: false };
      calls.progress.push(entry);
      await task({ report: (v: { message?: string; increment?: number }) => entry.reports.push(v) });
      entry.done = true;
    },
    showTextDocument: async () => undefined,
    showOpenDialog: async () => undefined,
  },
  commands: {
    registerCommand: (name: string, fn: (...args: unknown[]) => unknown) => {
      calls.commands.set(name, fn);
      return { dispose() {} };
    },
    executeCommand: async (name: string, ...args: unknown[]) => {
      const fn = calls.commands.get(name);
      if (fn) return fn(...args);
      calls.builtins.push({ name, args });
      return undefined;
    },
  },
  workspace: {
    workspaceFolders: undefined,
    get textDocuments() {
      return editors.documents;
    },
    onDidOpenTextDocument: (fn: (doc: FakeDocument) => unknown) => {
      openListeners.push(fn);
      return { dispose() {} };
    },
    getConfiguration: () => ({
      get: (key: string, dflt?: unknown) => (settings.has(key) ? settings.get(key) : dflt),
      inspect: (key: string) =>
        settings.has(key) ? { key, [settingScopes.get(key) ?? 'globalValue']: settings.get(key) } : { key },
      update: async (key: string, value: unknown, target?: unknown) => {
        calls.updates.push({ key, value, target });
        await changeSetting(key, value);
      },
    }),
    onDidChangeConfiguration: (fn: (e: { affectsConfiguration: (s: string) => boolean }) => unknown) => {
      configListeners.push(fn);
      return { dispose() {} };
    },
    openTextDocument: async (opts: unknown) => opts,
  },
};

export class FakeClient extends EventEmitter {
  state = 1; // Stopped
  proposed = false;
  features: unknown[] = [];
  notifications = new Map<string, (params: unknown) => void>();
  sent: { method: string; params: unknown }[] = [];
  requests: { method: string; params: unknown }[] = [];
  constructor(
    public id: string,
    public name: string,
    public serverOptions: { command: string; args: string[] },
    public clientOptions: {
      initializationOptions: () => unknown;
      documentSelector: unknown;
      errorHandler: {
        closed: () => Promise<{ action: number; message?: string }>;
        error: (...a: unknown[]) => { action: number };
      };
      middleware: {
        provideInlineCompletionItems: (...a: unknown[]) => Promise<unknown>;
        workspace: { configuration: (...a: unknown[]) => unknown };
      };
    },
  ) {
    super();
    calls.clients.push(this);
  }
  registerProposedFeatures() {
    this.proposed = true;
  }
  registerFeature(f: unknown) {
    this.features.push(f);
  }
  onNotification(method: string, fn: (params: unknown) => void) {
    this.notifications.set(method, fn);
    return { dispose() {} };
  }
  requestHandlers = new Map<string, (params: unknown) => unknown>();
  progressHandlers = new Map<unknown, (value: unknown) => void>();
  onRequest(type: { method: string }, fn: (params: unknown) => unknown) {
    this.requestHandlers.set(type.method, fn);
    return { dispose() {} };
  }
  onProgress(_type: unknown, token: unknown, fn: (value: unknown) => void) {
    this.progressHandlers.set(token, fn);
    return { dispose: () => this.progressHandlers.delete(token) };
  }
  onDidChangeState() {
    return { dispose() {} };
  }
  async start() {
    this.state = 2; // Running
  }
  async stop() {
    this.state = 1;
  }
  async sendNotification(type: { method: string }, params: unknown) {
    this.sent.push({ method: type.method, params });
  }
  async sendRequest(type: { method: string }, params: unknown) {
    this.requests.push({ method: type.method, params });
    return null;
  }
  /** vscode-languageclient's own DefaultErrorHandler (its restart limits). */
  createDefaultErrorHandler(maxRestartCount?: number) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const real = require('vscode-languageclient/lib/common/client');
    return real.BaseLanguageClient.prototype.createDefaultErrorHandler.call(this, maxRestartCount);
  }
}

const languageclient = {
  LanguageClient: FakeClient,
  State: { Stopped: 1, Running: 2, Starting: 3 },
  CloseAction: { DoNotRestart: 1, Restart: 2 },
  ErrorAction: { Continue: 1, Shutdown: 2 },
  TransportKind: { stdio: 0 },
  DidChangeConfigurationNotification: { type: { method: 'workspace/didChangeConfiguration' } },
  ExecuteCommandRequest: { type: { method: 'workspace/executeCommand' } },
  WorkDoneProgress: { type: { method: '$/progress' } },
  WorkDoneProgressCreateRequest: { type: { method: 'window/workDoneProgress/create' } },
};

// Anything else the bundled languageclient touches at load time (classes it extends, enums).
const generic = new Map<PropertyKey, unknown>();
const vscodeModule = new Proxy(vscode as Record<PropertyKey, unknown>, {
  get(target, prop) {
    if (prop in target) return target[prop];
    if (!generic.has(prop)) generic.set(prop, class {});
    return generic.get(prop);
  },
});

const load = (Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown })._load;
(Module as unknown as { _load: unknown })._load = function (request: string, ...rest: unknown[]) {
  if (request === 'vscode') return vscodeModule;
  if (request === 'vscode-languageclient/node') return languageclient;
  return load.call(this, request, ...rest);
};
