// codegen for VS Code: starts `codegen lsp` and lets vscode-languageclient's inline
// completion feature (a proposed LSP 3.18 feature, hence registerProposedFeatures) turn its
// items into ghost text. Everything testable without VS Code lives in the other modules.
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as vscode from 'vscode';
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
  StaticFeature,
  TransportKind,
  WorkDoneProgress,
  WorkDoneProgressCreateRequest,
} from 'vscode-languageclient/node';
import { parseModelList } from './models';
import { RestartPolicy } from './restart';
import { resolveServerPath } from './serverPath';
import { documentSelector, languages, RESTART_SETTINGS, toServerSettings } from './settings';
import { render, StatusModel } from './status';
import { lspInlineTriggerKind } from './trigger';

const SECTION = 'codegen';

function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration(SECTION);
}

function isExecutable(file: string): boolean {
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) return false;
    if (process.platform === 'win32') return true;
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function runCodegen(bin: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: 60_000, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(stderr.trim() || err.message));
      } else {
        resolve({ stdout, stderr });
      }
    });
  });
}

/**
 * Routes `$/progress` of server-created work-done tokens (model loading) to the status model.
 * Registered after the built-in progress feature, so its `window/workDoneProgress/create`
 * handler is the one in effect.
 */
class LoadProgressFeature implements StaticFeature {
  constructor(
    private readonly client: LanguageClient,
    private readonly status: StatusModel,
  ) {}
  fillClientCapabilities(capabilities: { window?: { workDoneProgress?: boolean } }): void {
    capabilities.window = capabilities.window ?? {};
    capabilities.window.workDoneProgress = true;
  }
  getState(): { kind: 'static' } {
    return { kind: 'static' };
  }
  initialize(): void {
    this.client.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
      const sub = this.client.onProgress(WorkDoneProgress.type, token, (value) => {
        this.status.progress(value);
        if (value.kind === 'end') sub.dispose();
      });
    });
  }
  clear(): void {}
}

export class Codegen implements vscode.Disposable {
  readonly status = new StatusModel();
  readonly output: vscode.OutputChannel;
  private readonly item: vscode.StatusBarItem;
  private readonly restarts = new RestartPolicy();
  private client: LanguageClient | undefined;
  private serverPath: string | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor() {
    this.output = vscode.window.createOutputChannel('codegen', { log: true });
    this.item = vscode.window.createStatusBarItem('codegen.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'codegen';
    this.item.command = 'codegen.showMenu';
    this.status.onChange(() => this.renderStatus());
    this.status.setEnabled(config().get<boolean>('enabled', true));
    this.renderStatus();
    this.item.show();
  }

  private renderStatus(): void {
    const r = render(this.status.current);
    this.item.text = r.text;
    this.item.tooltip = r.tooltip;
    this.item.backgroundColor = r.background
      ? new vscode.ThemeColor(r.background === 'error' ? 'statusBarItem.errorBackground' : 'statusBarItem.warningBackground')
      : undefined;
  }

  /** Only settings the user set are sent; the server's own defaults apply to the rest. */
  private settingsObject() {
    const cfg = config();
    return toServerSettings((key) => {
      const i = cfg.inspect(key);
      const set =
        i !== undefined &&
        (i.globalValue !== undefined || i.workspaceValue !== undefined || i.workspaceFolderValue !== undefined);
      return set ? cfg.get(key) : undefined;
    });
  }

  async start(): Promise<void> {
    const cfg = config();
    const resolved = resolveServerPath(cfg.get<string>('serverPath'), {
      pathVar: process.env.PATH,
      pathExt: process.env.PATHEXT,
      platform: process.platform,
      homedir: os.homedir(),
      workspaceFolder: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath,
      isExecutable,
    });
    if ('error' in resolved) {
      this.serverPath = undefined;
      this.status.error(resolved.error);
      this.output.appendLine(`error: ${resolved.error}`);
      const open = 'Open Settings';
      void vscode.window.showErrorMessage(`codegen: ${resolved.error}`, open).then((choice) => {
        if (choice === open) void vscode.commands.executeCommand('workbench.action.openSettings', 'codegen.serverPath');
      });
      return;
    }
    this.serverPath = resolved.path;
    const serverOptions: ServerOptions = {
      command: resolved.path,
      args: ['lsp'],
      transport: TransportKind.stdio,
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: documentSelector(languages((key) => cfg.get(key))),
      // A function: a restart after a crash sends the settings of that moment.
      initializationOptions: () => this.settingsObject(),
      outputChannel: this.output,
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue }),
        closed: () => {
          if (this.restarts.shouldRestart()) {
            this.output.appendLine('codegen lsp exited; restarting it');
            this.status.starting();
            return { action: CloseAction.Restart };
          }
          this.status.error('the server exited 4 times in 3 minutes; see the log, then restart it');
          return { action: CloseAction.DoNotRestart };
        },
      },
      middleware: {
        // The server's items come back ranked, best first (`codegen.rank`); they are passed
        // on as they are, so VS Code shows the best one and Alt+] / Alt+[ cycle in rank order.
        // The trigger kind goes out as LSP numbers it (see trigger.ts): typing gets
        // `nAutomatic` candidates, a trigger command or Alt+] / Alt+[ gets `n`.
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          if (!this.status.current.enabled) return null;
          const started = Date.now();
          const lspContext = {
            ...context,
            triggerKind: lspInlineTriggerKind(context.triggerKind) as number as vscode.InlineCompletionTriggerKind,
          };
          const result = await next(document, position, lspContext, token);
          if (!token.isCancellationRequested && result) this.status.latency(Date.now() - started);
          return result;
        },
        workspace: {
          // A server that pulls its settings gets the same object as initializationOptions.
          configuration: (params, token, next) => {
            if (params.items.every((i) => i.section === SECTION)) {
              return params.items.map(() => this.settingsObject());
            }
            return next(params, token);
          },
        },
      },
    };
    const client = new LanguageClient('codegen', 'codegen', serverOptions, clientOptions);
    client.registerProposedFeatures();
    client.registerFeature(new LoadProgressFeature(client, this.status));
    client.onNotification('codegen/status', (params: unknown) => this.status.serverStatus(params));
    client.onDidChangeState((e) => {
      if (e.newState === State.Starting) this.status.starting();
      if (e.newState === State.Stopped && this.status.current.state !== 'error') this.status.stopped();
    });
    this.client = client;
    this.status.starting();
    try {
      await client.start();
      // The server's settings might differ from initializationOptions if it pulls them.
      await client.sendNotification(DidChangeConfigurationNotification.type, {
        settings: { [SECTION]: this.settingsObject() },
      });
    } catch (err) {
      this.status.error(`cannot start ${resolved.path} lsp: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) {
      try {
        await client.stop(5000);
      } catch (err) {
        this.output.appendLine(`error while stopping the server: ${String(err)}`);
      }
    }
    this.status.stopped();
  }

  async restart(): Promise<void> {
    this.restarts.reset();
    await this.stop();
    await this.start();
  }

  async onConfigurationChanged(e: vscode.ConfigurationChangeEvent): Promise<void> {
    if (!e.affectsConfiguration(SECTION)) return;
    this.status.setEnabled(config().get<boolean>('enabled', true));
    if (RESTART_SETTINGS.some((key) => e.affectsConfiguration(`${SECTION}.${key}`)) || !this.client) {
      await this.restart();
      return;
    }
    if (this.client.state === State.Running) {
      await this.client.sendNotification(DidChangeConfigurationNotification.type, {
        settings: { [SECTION]: this.settingsObject() },
      });
    }
  }

  async toggle(): Promise<void> {
    const enabled = config().get<boolean>('enabled', true);
    await config().update('enabled', !enabled, vscode.ConfigurationTarget.Global);
    void vscode.window.setStatusBarMessage(`codegen: suggestions ${enabled ? 'off' : 'on'}`, 2000);
  }

  private binary(): string | undefined {
    if (!this.serverPath) {
      void vscode.window.showErrorMessage('codegen: the codegen binary was not found; set "codegen.serverPath".');
    }
    return this.serverPath;
  }

  async selectModel(): Promise<void> {
    const bin = this.binary();
    if (!bin) return;
    let models;
    try {
      models = parseModelList((await runCodegen(bin, ['model', 'list'])).stdout);
    } catch (err) {
      void vscode.window.showErrorMessage(`codegen model list failed: ${String(err)}`);
      return;
    }
    const current = config().get<string>('model', '');
    const browse = '$(file) Browse for a GGUF file…';
    const picked = await vscode.window.showQuickPick(
      [
        ...models.map((m) => ({
          label: m.name,
          description: `${m.size}${m.cached ? '' : ' · not cached (fetched on first use)'}${m.name === current ? ' · current' : ''}`,
          detail: m.description,
        })),
        { label: browse, description: '', detail: 'Any local GGUF of a supported architecture (qwen2)' },
      ],
      { title: 'codegen: select model', placeHolder: current || 'default model' },
    );
    if (!picked) return;
    let model = picked.label;
    if (model === browse) {
      const files = await vscode.window.showOpenDialog({ filters: { GGUF: ['gguf'] }, canSelectMany: false });
      if (!files || files.length === 0) return;
      model = files[0].fsPath;
    }
    await config().update('model', model, vscode.ConfigurationTarget.Global);
  }

  async showStats(): Promise<void> {
    const bin = this.binary();
    if (!bin) return;
    try {
      const { stdout } = await runCodegen(bin, ['stats']);
      const doc = await vscode.workspace.openTextDocument({ content: stdout, language: 'plaintext' });
      await vscode.window.showTextDocument(doc, { preview: true });
    } catch (err) {
      void vscode.window.showErrorMessage(`codegen stats failed: ${String(err)}`);
    }
  }

  async showMenu(): Promise<void> {
    const enabled = this.status.current.enabled;
    const items: (vscode.QuickPickItem & { command: string })[] = [
      {
        label: enabled ? '$(circle-slash) Disable suggestions' : '$(check) Enable suggestions',
        command: 'codegen.toggle',
      },
      { label: '$(symbol-misc) Select model…', command: 'codegen.selectModel' },
      { label: '$(graph) Show acceptance statistics', command: 'codegen.showStats' },
      { label: '$(debug-restart) Restart server', command: 'codegen.restartServer' },
      { label: '$(output) Show log', command: 'codegen.showLog' },
    ];
    const picked = await vscode.window.showQuickPick(items, { title: render(this.status.current).tooltip });
    if (picked) await vscode.commands.executeCommand(picked.command);
  }

  dispose(): void {
    void this.stop();
    for (const d of this.disposables) d.dispose();
    this.item.dispose();
    this.output.dispose();
  }
}

let instance: Codegen | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<Codegen> {
  const codegen = new Codegen();
  instance = codegen;
  context.subscriptions.push(
    codegen,
    vscode.commands.registerCommand('codegen.toggle', () => codegen.toggle()),
    vscode.commands.registerCommand('codegen.selectModel', () => codegen.selectModel()),
    vscode.commands.registerCommand('codegen.showStats', () => codegen.showStats()),
    vscode.commands.registerCommand('codegen.restartServer', () => codegen.restart()),
    vscode.commands.registerCommand('codegen.showLog', () => codegen.output.show(true)),
    vscode.commands.registerCommand('codegen.showMenu', () => codegen.showMenu()),
    vscode.workspace.onDidChangeConfiguration((e) => codegen.onConfigurationChanged(e)),
  );
  await codegen.start();
  return codegen;
}

export async function deactivate(): Promise<void> {
  await instance?.stop();
  instance = undefined;
}
