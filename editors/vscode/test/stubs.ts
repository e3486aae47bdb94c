// Minimal stand-ins for the `vscode` module and vscode-languageclient, enough to activate the
// extension in plain Node and watch what it does. Installed before src/extension is loaded.
import Module = require('module');
import { EventEmitter } from 'events';

export const calls = {
  commands: new Map<string, (...args: unknown[]) => unknown>(),
  errors: [] as string[],
  clients: [] as FakeClient[],
  quickPicks: [] as unknown[][],
  pickAnswer: undefined as unknown,
};

export const settings = new Map<string, unknown>();
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
  ConfigurationTarget: { Global: 1, Workspace: 2 },
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
    setStatusBarMessage: () => ({ dispose() {} }),
    showTextDocument: async () => undefined,
    showOpenDialog: async () => undefined,
  },
  commands: {
    registerCommand: (name: string, fn: (...args: unknown[]) => unknown) => {
      calls.commands.set(name, fn);
      return { dispose() {} };
    },
    executeCommand: async (name: string, ...args: unknown[]) => calls.commands.get(name)?.(...args),
  },
  workspace: {
    workspaceFolders: undefined,
    getConfiguration: () => ({
      get: (key: string, dflt?: unknown) => (settings.has(key) ? settings.get(key) : dflt),
      inspect: (key: string) => (settings.has(key) ? { key, globalValue: settings.get(key) } : { key }),
      update: async (key: string, value: unknown) => changeSetting(key, value),
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
  constructor(
    public id: string,
    public name: string,
    public serverOptions: { command: string; args: string[] },
    public clientOptions: {
      initializationOptions: () => unknown;
      documentSelector: unknown;
      errorHandler: { closed: () => { action: number } };
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
  onRequest() {
    return { dispose() {} };
  }
  onProgress() {
    return { dispose() {} };
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
}

const languageclient = {
  LanguageClient: FakeClient,
  State: { Stopped: 1, Running: 2, Starting: 3 },
  CloseAction: { DoNotRestart: 1, Restart: 2 },
  ErrorAction: { Continue: 1, Shutdown: 2 },
  TransportKind: { stdio: 0 },
  DidChangeConfigurationNotification: { type: { method: 'workspace/didChangeConfiguration' } },
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
