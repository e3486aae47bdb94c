// The inline completion trigger kind as LSP 3.18 numbers it. No `vscode` import: unit-tested
// in plain Node.
//
// VS Code numbers `InlineCompletionTriggerKind` Invoke = 0, Automatic = 1; LSP 3.18 (and the
// server) numbers it Invoked = 1, Automatic = 2. vscode-languageclient 9.0.1 sends VS Code's
// number unchanged, so typing would arrive as Invoked (the server's `n` ranked candidates)
// and Alt+] / Alt+[ or `editor.action.inlineSuggest.trigger` as an unknown 0 (treated as
// automatic: `nAutomatic`). The middleware sends the LSP number instead.

/** LSP `InlineCompletionTriggerKind.Invoked`: the user asked (trigger command, cycling). */
export const LSP_INVOKED = 1;
/** LSP `InlineCompletionTriggerKind.Automatic`: while typing. */
export const LSP_AUTOMATIC = 2;

/** VS Code's `InlineCompletionTriggerKind.Invoke`. */
const VSCODE_INVOKE = 0;

/** VS Code's trigger kind -> the LSP one: Invoke -> Invoked (1), anything else -> Automatic (2). */
export function lspInlineTriggerKind(vscodeKind: unknown): 1 | 2 {
  return vscodeKind === VSCODE_INVOKE ? LSP_INVOKED : LSP_AUTOMATIC;
}
