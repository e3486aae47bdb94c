// codegen for VS Code: starts `codegen lsp` and lets vscode-languageclient's inline
// completion feature (a proposed LSP 3.18 feature, hence registerProposedFeatures) turn its
// items into ghost text. Everything testable without VS Code lives in the other modules.
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as vscode from 'vscode';
import {
  CloseAction,
  CloseHandlerResult,
  DidChangeConfigurationNotification,
  ErrorHandler,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
  StaticFeature,
  TransportKind,
  WorkDoneProgress,
  WorkDoneProgressCreateRequest,
} from 'vscode-languageclient/node';
import { ACCEPT_COMMAND, Candidate, ghostText, ShownSuggestions, suggestionId } from './accept';
import {
  clock,
  enabledForLanguage,
  ManualSession,
  nextSession,
  Request,
  shouldRequest,
  Snooze,
  SNOOZE_MINUTES,
  triggerMode,
  withLanguage,
} from './gate';
import { describeModel, parseModelList } from './models';
import { DownloadProgress, ProgressSink } from './progress';
import { writeTarget } from './scope';
import { resolveServerPath } from './serverPath';
import { backendArgs, documentSelector, languages, RESTART_SETTINGS, toServerSettings } from './settings';
import { render, StatusModel } from './status';
import { lspInlineTriggerKind } from './trigger';

const SECTION = 'codegen';

/** `codegen.*`, for a document or folder when given (workspace folder settings apply). */
function config(scope?: vscode.ConfigurationScope): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration(SECTION, scope);
}

/** The active editor's document: the scope commands read and write settings for. */
function activeDocument(): vscode.TextDocument | undefined {
  return vscode.window.activeTextEditor?.document;
}

/** Writes `codegen.KEY` where its effective value is set (see scope.ts), user settings if nowhere. */
async function updateSetting(key: string, value: unknown, scope?: vscode.ConfigurationScope): Promise<void> {
  const cfg = config(scope);
  const target = writeTarget(cfg.inspect(key)) as number as vscode.ConfigurationTarget;
  await cfg.update(key, value, target);
}

/** VS Code's accept commands that the extension wraps to report partial acceptance. */
export const PARTIAL_ACCEPT = {
  'codegen.acceptNextWord': 'editor.action.inlineSuggest.acceptNextWord',
  'codegen.acceptNextLine': 'editor.action.inlineSuggest.acceptNextLine',
} as const;

/** Schemes the language client attaches to (see settings.ts documentSelector). */
const SCHEMES = ['file', 'untitled'];

/** A `vscode.window.withProgress` notification with a progress bar (see progress.ts). */
function openNotification(title: string): ProgressSink {
  let progress: vscode.Progress<{ message?: string; increment?: number }> | undefined;
  let resolve: (() => void) | undefined;
  let finished = false;
  const pending: { message?: string; increment?: number }[] = [];
  void vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title, cancellable: false },
    (p) => {
      progress = p;
      for (const v of pending.splice(0)) p.report(v);
      return new Promise<void>((r) => {
        resolve = r;
        if (finished) r();
      });
    },
  );
  return {
    report: (v) => (progress ? progress.report(v) : void pending.push(v)),
    done: () => {
      finished = true;
      resolve?.();
    },
  };
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
 * Routes `$/progress` of server-created work-done tokens (model loading and downloading) to
 * the status model (the status bar item shows the percentage) and, for a download, to a
 * notification with a progress bar (see progress.ts). Registered after the built-in progress
 * feature, so its `window/workDoneProgress/create` handler is the one in effect: the
 * built-in one would show a window progress without the percentage.
 */
class LoadProgressFeature implements StaticFeature {
  private readonly download = new DownloadProgress(openNotification);
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
        this.download.update(value);
        if (value.kind === 'end') sub.dispose();
      });
    });
  }
  clear(): void {
    this.download.close();
  }
}

export class Codegen implements vscode.Disposable {
  readonly status = new StatusModel();
  readonly output: vscode.OutputChannel;
  private readonly item: vscode.StatusBarItem;
  private readonly snooze = new Snooze();
  private snoozeTimer: ReturnType<typeof setTimeout> | undefined;
  /** The items the server returned last, to match partial accepts against. */
  private readonly shown = new ShownSuggestions();
  /** Manual trigger mode: the line a suggestion was asked for on (see gate.ts). */
  private session: ManualSession | undefined;
  private client: LanguageClient | undefined;
  private serverPath: string | undefined;
  /** Whether the server should run: a document of `codegen.languages` was open. */
  private wanted = false;
  private readonly disposables: vscode.Disposable[] = [];

  constructor() {
    this.output = vscode.window.createOutputChannel('codegen', { log: true });
    this.item = vscode.window.createStatusBarItem('codegen.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'codegen';
    this.item.command = 'codegen.showMenu';
    this.status.onChange(() => this.renderStatus());
    this.status.setEnabled(config().get<boolean>('enabled', true));
    this.updateLanguageOff();
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

  /** The status bar says when `codegen.enable` turns off the active editor's language. */
  updateLanguageOff(): void {
    const doc = activeDocument();
    const off =
      doc !== undefined &&
      this.attachesTo(doc) &&
      !enabledForLanguage(config(doc).get('enable'), doc.languageId);
    this.status.setLanguageOff(off ? doc.languageId : undefined);
  }

  /** Whether the language client attaches to the document (`codegen.languages`). */
  private attachesTo(doc: vscode.TextDocument): boolean {
    return SCHEMES.includes(doc.uri.scheme) && languages((key) => config().get(key)).includes(doc.languageId);
  }

  /**
   * Starts the server once a document of `codegen.languages` is open (activation is
   * `onStartupFinished`, so any language in the setting works without a fixed list).
   */
  async startWhenNeeded(): Promise<void> {
    if (this.wanted || !vscode.workspace.textDocuments.some((d) => this.attachesTo(d))) return;
    this.wanted = true;
    await this.start();
  }

  async onDidOpenTextDocument(doc: vscode.TextDocument): Promise<void> {
    if (!this.wanted && this.attachesTo(doc)) await this.startWhenNeeded();
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

  /** The inline completion middleware: the gate (gate.ts), the trigger kind, and remembering items. */
  private async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
    next: (
      document: vscode.TextDocument,
      position: vscode.Position,
      context: vscode.InlineCompletionContext,
      token: vscode.CancellationToken,
    ) => vscode.ProviderResult<vscode.InlineCompletionItem[] | vscode.InlineCompletionList>,
  ): Promise<vscode.InlineCompletionItem[] | vscode.InlineCompletionList | null | undefined> {
    const cfg = config(document);
    const request: Request = {
      enabled: this.status.current.enabled,
      snoozed: this.snooze.active,
      languageEnabled: enabledForLanguage(cfg.get('enable'), document.languageId),
      mode: triggerMode(cfg.get('triggerMode')),
      // VS Code's InlineCompletionTriggerKind.Invoke (0): the trigger command, Alt+\, cycling.
      explicit: context.triggerKind === 0,
      uri: document.uri.toString(),
      line: position.line,
      session: this.session,
    };
    if (!shouldRequest(request)) {
      this.session = nextSession(request, false, false);
      return null;
    }
    const started = Date.now();
    const lspContext = {
      ...context,
      triggerKind: lspInlineTriggerKind(context.triggerKind) as number as vscode.InlineCompletionTriggerKind,
    };
    const result = await next(document, position, lspContext, token);
    if (token.isCancellationRequested) return result;
    const items = Array.isArray(result) ? result : (result?.items ?? []);
    this.session = nextSession(request, true, items.length > 0);
    if (result) this.status.latency(Date.now() - started);
    this.remember(document, position, items);
    return result;
  }

  /** Keeps what each returned item would insert at the cursor, for partial accepts. */
  private remember(document: vscode.TextDocument, position: vscode.Position, items: vscode.InlineCompletionItem[]): void {
    const candidates: Candidate[] = [];
    for (const item of items) {
      const id = suggestionId(item.command);
      const text = typeof item.insertText === 'string' ? item.insertText : item.insertText?.value;
      if (id === undefined || text === undefined) continue;
      const start = item.range?.start ?? position;
      const ghost = ghostText(text, document.getText(new vscode.Range(start, position)));
      if (ghost !== undefined) candidates.push({ id, ghost });
    }
    this.shown.set(document.uri.toString(), candidates);
  }

  /**
   * Runs VS Code's accept-next-word / accept-next-line command, then reports what it
   * inserted as a partial acceptance of the codegen suggestion it came from (accept.ts).
   */
  async acceptPartially(builtin: string): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    const before = editor && { version: editor.document.version, offset: editor.document.offsetAt(editor.selection.active) };
    const shown = this.shown.copy();
    await vscode.commands.executeCommand(builtin);
    if (!editor || !before) return;
    const doc = editor.document;
    const after = doc.offsetAt(editor.selection.active);
    if (doc.version === before.version || after <= before.offset) return;
    const inserted = doc.getText(new vscode.Range(doc.positionAt(before.offset), doc.positionAt(after)));
    const acceptance = shown.accepted(doc.uri.toString(), inserted);
    this.shown.adopt(shown);
    const client = this.client;
    if (!acceptance || !client || client.state !== State.Running) return;
    try {
      await client.sendRequest(ExecuteCommandRequest.type, { command: ACCEPT_COMMAND, arguments: [acceptance] });
    } catch (err) {
      this.output.appendLine(`cannot report a partial acceptance: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * On a crash, vscode-languageclient's own error handler decides (it restarts the server
   * up to 4 times, and not after a 5th crash within 3 minutes); this only mirrors its
   * decision in the status bar.
   */
  private errorHandler(client: () => LanguageClient): ErrorHandler {
    let defaults: ErrorHandler | undefined;
    const handler = () => (defaults ??= client().createDefaultErrorHandler());
    return {
      error: (error, message, count) => handler().error(error, message, count),
      closed: async (): Promise<CloseHandlerResult> => {
        const result = await handler().closed();
        if (result.action === CloseAction.Restart) {
          this.output.appendLine('codegen lsp exited; restarting it');
          this.status.starting();
        } else {
          this.status.error(result.message ?? 'the server exited; see the log, then restart it');
        }
        return result;
      },
    };
  }

  async start(): Promise<void> {
    this.wanted = true;
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
      args: ['lsp', ...backendArgs((key) => cfg.get(key))],
      transport: TransportKind.stdio,
    };
    let client: LanguageClient | undefined;
    const clientOptions: LanguageClientOptions = {
      documentSelector: documentSelector(languages((key) => cfg.get(key))),
      // A function: a restart after a crash sends the settings of that moment.
      initializationOptions: () => this.settingsObject(),
      outputChannel: this.output,
      errorHandler: this.errorHandler(() => client!),
      middleware: {
        // The server's items come back ranked, best first (`codegen.rank`); they are passed
        // on as they are, so VS Code shows the best one and Alt+] / Alt+[ cycle in rank order.
        // The trigger kind goes out as LSP numbers it (see trigger.ts): typing gets
        // `nAutomatic` candidates, a trigger command or Alt+] / Alt+[ gets `n`.
        provideInlineCompletionItems: (document, position, context, token, next) =>
          this.provideInlineCompletionItems(document, position, context, token, next),
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
    client = new LanguageClient('codegen', 'codegen', serverOptions, clientOptions);
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
    this.shown.clear();
    if (client) {
      try {
        await client.stop(5000);
      } catch (err) {
        this.output.appendLine(`error while stopping the server: ${String(err)}`);
      }
    }
    this.status.stopped();
  }

  /** A new client, so vscode-languageclient's restart count starts again. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async onConfigurationChanged(e: vscode.ConfigurationChangeEvent): Promise<void> {
    if (!e.affectsConfiguration(SECTION)) return;
    this.status.setEnabled(config().get<boolean>('enabled', true));
    this.updateLanguageOff();
    if (!this.wanted) {
      // No document of `codegen.languages` was open; the list may have grown.
      await this.startWhenNeeded();
      return;
    }
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

  /** Turns suggestions on or off, in the settings scope that decides it now (scope.ts). */
  async toggle(): Promise<void> {
    const scope = activeDocument();
    const enabled = config(scope).get<boolean>('enabled', true);
    await updateSetting('enabled', !enabled, scope);
    void vscode.window.setStatusBarMessage(`codegen: suggestions ${enabled ? 'off' : 'on'}`, 2000);
  }

  /** Turns suggestions on or off for the active editor's language (`codegen.enable`). */
  async toggleLanguage(): Promise<void> {
    const doc = activeDocument();
    if (!doc) {
      void vscode.window.showInformationMessage('codegen: open a file to turn suggestions on or off for its language.');
      return;
    }
    const cfg = config(doc);
    const value = cfg.get('enable');
    const enabled = enabledForLanguage(value, doc.languageId);
    await updateSetting('enable', withLanguage(value, doc.languageId, !enabled), doc);
    void vscode.window.setStatusBarMessage(`codegen: suggestions ${enabled ? 'off' : 'on'} for ${doc.languageId}`, 2000);
  }

  /** Pauses suggestions for `minutes` (asked for when not given). */
  async snoozeFor(minutes?: unknown): Promise<void> {
    let m = typeof minutes === 'number' && minutes > 0 ? minutes : undefined;
    if (m === undefined) {
      const picked = await vscode.window.showQuickPick(
        SNOOZE_MINUTES.map((n) => ({ label: n === 60 ? '1 hour' : `${n} minutes`, minutes: n })),
        { title: 'codegen: snooze suggestions for' },
      );
      if (!picked) return;
      m = picked.minutes;
    }
    const until = this.snooze.start(m);
    this.status.setSnoozed(until);
    if (this.snoozeTimer) clearTimeout(this.snoozeTimer);
    this.snoozeTimer = setTimeout(() => this.unsnooze(), until - Date.now());
    this.snoozeTimer.unref?.();
    this.session = undefined;
    void vscode.commands.executeCommand('setContext', 'codegen.snoozed', true);
    void vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
    void vscode.window.setStatusBarMessage(`codegen: snoozed until ${clock(until)}`, 2000);
  }

  unsnooze(): void {
    if (this.snoozeTimer) clearTimeout(this.snoozeTimer);
    this.snoozeTimer = undefined;
    if (!this.snooze.active && this.status.current.snoozedUntil === undefined) return;
    this.snooze.stop();
    this.status.setSnoozed(undefined);
    void vscode.commands.executeCommand('setContext', 'codegen.snoozed', false);
  }

  private binary(): string | undefined {
    if (!this.serverPath) {
      const resolved = resolveServerPath(config().get<string>('serverPath'), {
        pathVar: process.env.PATH,
        pathExt: process.env.PATHEXT,
        platform: process.platform,
        homedir: os.homedir(),
        workspaceFolder: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath,
        isExecutable,
      });
      if ('path' in resolved) return resolved.path;
      void vscode.window.showErrorMessage('codegen: the codegen binary was not found; set "codegen.serverPath".');
    }
    return this.serverPath;
  }

  /** Picks a model from `codegen model list --json` (or a GGUF file) and writes `codegen.model`. */
  async selectModel(): Promise<void> {
    const bin = this.binary();
    if (!bin) return;
    let list;
    try {
      list = parseModelList((await runCodegen(bin, ['model', 'list', '--json'])).stdout);
    } catch (err) {
      void vscode.window.showErrorMessage(`codegen model list failed: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const scope = activeDocument();
    const current = config(scope).get<string>('model', '');
    const browse = '$(file) Browse for a GGUF file…';
    const picked = await vscode.window.showQuickPick(
      [
        ...list.models.map((m) => ({ label: m.name, description: describeModel(m, current), detail: m.description })),
        { label: browse, description: '', detail: 'Any local GGUF of a supported architecture (qwen2)' },
      ],
      { title: 'codegen: select model', placeHolder: current || `default model${list.default ? ` (${list.default})` : ''}` },
    );
    if (!picked) return;
    let model = picked.label;
    if (model === browse) {
      const files = await vscode.window.showOpenDialog({ filters: { GGUF: ['gguf'] }, canSelectMany: false });
      if (!files || files.length === 0) return;
      model = files[0].fsPath;
    }
    await updateSetting('model', model, scope);
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
    const s = this.status.current;
    const doc = activeDocument();
    const items: (vscode.QuickPickItem & { command: string })[] = [
      {
        label: s.enabled ? '$(circle-slash) Disable suggestions' : '$(check) Enable suggestions',
        command: 'codegen.toggle',
      },
    ];
    if (doc) {
      const on = enabledForLanguage(config(doc).get('enable'), doc.languageId);
      items.push({
        label: on ? `$(circle-slash) Disable suggestions for ${doc.languageId}` : `$(check) Enable suggestions for ${doc.languageId}`,
        command: 'codegen.toggleLanguage',
      });
    }
    items.push(
      s.snoozedUntil !== undefined
        ? { label: `$(bell) Resume suggestions (snoozed until ${clock(s.snoozedUntil)})`, command: 'codegen.unsnooze' }
        : { label: '$(clock) Snooze suggestions…', command: 'codegen.snooze' },
      { label: '$(symbol-misc) Select model…', command: 'codegen.selectModel' },
      { label: '$(graph) Show acceptance statistics', command: 'codegen.showStats' },
      { label: '$(debug-restart) Restart server', command: 'codegen.restartServer' },
      { label: '$(output) Show log', command: 'codegen.showLog' },
    );
    const picked = await vscode.window.showQuickPick(items, { title: render(s).tooltip });
    if (picked) await vscode.commands.executeCommand(picked.command);
  }

  dispose(): void {
    void this.stop();
    this.unsnooze();
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
    vscode.commands.registerCommand('codegen.toggleLanguage', () => codegen.toggleLanguage()),
    vscode.commands.registerCommand('codegen.requestSuggestion', () =>
      vscode.commands.executeCommand('editor.action.inlineSuggest.trigger'),
    ),
    vscode.commands.registerCommand('codegen.snooze', (minutes?: unknown) => codegen.snoozeFor(minutes)),
    vscode.commands.registerCommand('codegen.unsnooze', () => codegen.unsnooze()),
    ...Object.entries(PARTIAL_ACCEPT).map(([command, builtin]) =>
      vscode.commands.registerCommand(command, () => codegen.acceptPartially(builtin)),
    ),
    vscode.commands.registerCommand('codegen.selectModel', () => codegen.selectModel()),
    vscode.commands.registerCommand('codegen.showStats', () => codegen.showStats()),
    vscode.commands.registerCommand('codegen.restartServer', () => codegen.restart()),
    vscode.commands.registerCommand('codegen.showLog', () => codegen.output.show(true)),
    vscode.commands.registerCommand('codegen.showMenu', () => codegen.showMenu()),
    vscode.workspace.onDidChangeConfiguration((e) => codegen.onConfigurationChanged(e)),
    vscode.workspace.onDidOpenTextDocument((doc) => codegen.onDidOpenTextDocument(doc)),
    vscode.window.onDidChangeActiveTextEditor(() => codegen.updateLanguageOff()),
  );
  await codegen.startWhenNeeded();
  return codegen;
}

export async function deactivate(): Promise<void> {
  await instance?.stop();
  instance = undefined;
}
