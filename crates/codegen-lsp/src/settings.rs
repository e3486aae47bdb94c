//! Server settings: from the command line, `initializationOptions` and
//! `workspace/didChangeConfiguration` (`{settings: {codegen: {...}}}`).

use std::time::Duration;

use codegen_context::PromptConfig;
use codegen_engine::{CompletionSettings, ExampleRuns, RankPolicy, RankSettings};
use serde::Serialize;
use serde_json::Value;

/// How candidates are ordered (the engine does it; this only chooses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Rank {
    /// The docstring's examples run in the sandbox (Python, cursor in a
    /// documented function, within `rankBudgetMs`), then syntax (the
    /// insertion adds no parse errors), agreement between samples, mean
    /// log-probability.
    Auto,
    /// Highest mean token log-probability first.
    Logprob,
    /// In sampling order.
    None,
}

/// Temperature of the extra samples when `n > 1` and `temperature` is 0:
/// the first candidate stays greedy.
pub const EXTRA_SAMPLE_TEMPERATURE: f32 = 0.8;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Model name or GGUF path; `None` is the default model.
    pub model: Option<String>,
    /// Draft model for speculative decoding: a name, path or hub reference;
    /// `"none"` turns it off; unset uses the model's manifest default (the
    /// shipped manifests name none).
    pub draft_model: Option<String>,
    pub device: String,
    pub threads: Option<usize>,
    pub max_tokens: usize,
    pub temperature: f32,
    /// Candidates for explicit requests (the user asked, or cycles).
    pub n: usize,
    /// Candidates while typing (automatic triggers), at most `n`.
    pub n_automatic: usize,
    pub rank: Rank,
    /// The longest a reply waits for the docstring's examples (results that
    /// come later are cached for the next request).
    pub rank_budget_ms: u64,
    /// Base debounce of automatic triggers (explicit ones have none).
    pub debounce_ms: u64,
    /// Release the model (weights and KV caches) after this many seconds
    /// without a completion request; the next request loads it again.
    /// 0 keeps it loaded.
    pub idle_unload_secs: u64,
    /// After this long the best partial suggestion is returned (0: none).
    pub time_budget_ms: u64,
    /// Prompt budget before the cursor, in tokens.
    pub max_prefix_tokens: usize,
    /// Prompt budget after the cursor, in tokens. Small by default: with
    /// fill-in-the-middle the suffix follows the prefix in the prompt, so a
    /// keystroke recomputes all of it.
    pub max_suffix_tokens: usize,
    /// A candidate model (name, path or hub reference) that runs in shadow
    /// on a sampled share of requests (`shadowPercent`) and serves a share
    /// of documents (`rolloutPercent`). It loads and is validated beside the
    /// primary; `None`: no candidate.
    pub shadow_model: Option<String>,
    /// Percent of the primary's replies that the candidate also computes,
    /// in the background: only while the engine has nothing else to do, and
    /// cancelled by the next editor request, so it never delays one.
    pub shadow_percent: u32,
    /// Percent of documents (by a stable hash of their URI) served by the
    /// candidate instead of the primary.
    pub rollout_percent: u32,
    /// A remote engine that draws the samples (context, post-processing and
    /// ranking stay local): `[openai+|llama-server+|ollama+]http://HOST:PORT`.
    /// `None`: the local model.
    pub backend: Option<String>,
    /// The model to ask the remote engine for (Ollama needs one).
    pub backend_model: Option<String>,
    /// LSP language ids to complete in; `None` means all.
    pub languages: Option<Vec<String>>,
    pub enabled: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: None,
            draft_model: None,
            device: "cpu".into(),
            threads: None,
            max_tokens: 128,
            temperature: 0.0,
            n: DEFAULT_N,
            n_automatic: DEFAULT_N_AUTOMATIC,
            rank: Rank::Auto,
            rank_budget_ms: 250,
            debounce_ms: 75,
            idle_unload_secs: DEFAULT_IDLE_UNLOAD_SECS,
            time_budget_ms: 2000,
            max_prefix_tokens: 1024,
            max_suffix_tokens: 64,
            shadow_model: None,
            shadow_percent: DEFAULT_SHADOW_PERCENT,
            rollout_percent: 0,
            languages: None,
            backend: None,
            backend_model: None,
            enabled: true,
        }
    }
}

/// Candidates per explicit request by default, and while typing. Measured
/// on the 2-core machine (0.5B; `benches/README.md`): ranking 4 samples
/// lifts single-line infilling from 0.663 to 0.717 pass@1 and multi-line
/// from 0.37 to 0.46, but doubles warm single-line latency (139 -> 297 ms
/// p50). So typing gets one greedy candidate (fast ghost text) and an
/// explicit request (invoke, cycling) gets 4 ranked ones.
pub const DEFAULT_N: usize = 4;
pub const DEFAULT_N_AUTOMATIC: usize = 1;

impl Settings {
    /// The engine's settings for a request: the one place LSP settings are
    /// translated.
    pub fn completion_settings(&self) -> CompletionSettings {
        self.completion_settings_for(false)
    }

    /// [`Settings::completion_settings`] for an automatic trigger (`nAutomatic`
    /// candidates) or an explicit one (`n`).
    pub fn completion_settings_for(&self, automatic: bool) -> CompletionSettings {
        let n = if automatic {
            self.n_automatic.min(self.n).max(1)
        } else {
            self.n.max(1)
        };
        let (temperature, first_greedy) = if n > 1 && self.temperature == 0.0 {
            (EXTRA_SAMPLE_TEMPERATURE, true)
        } else {
            (self.temperature, false)
        };
        CompletionSettings {
            n,
            max_tokens: self.max_tokens,
            temperature,
            first_greedy,
            prompt: PromptConfig {
                max_prefix_tokens: self.max_prefix_tokens,
                max_suffix_tokens: self.max_suffix_tokens,
                ..PromptConfig::default()
            },
            rank: RankSettings {
                policy: match self.rank {
                    Rank::Auto => RankPolicy::Combined,
                    Rank::Logprob => RankPolicy::Logprob,
                    Rank::None => RankPolicy::None,
                },
                examples: if self.rank_budget_ms == 0 {
                    ExampleRuns::Never
                } else {
                    ExampleRuns::WithinBudget(Duration::from_millis(self.rank_budget_ms))
                },
            },
            time_budget: (self.time_budget_ms > 0)
                .then(|| Duration::from_millis(self.time_budget_ms)),
            ..CompletionSettings::default()
        }
    }

    /// Whether a setting that needs a model reload differs.
    pub fn model_differs(&self, other: &Settings) -> bool {
        self.model != other.model
            || self.draft_model != other.draft_model
            || self.device != other.device
            || self.threads != other.threads
            || self.backend != other.backend
            || self.backend_model != other.backend_model
    }

    /// Whether the candidate model setting differs (it loads again).
    pub fn candidate_differs(&self, other: &Settings) -> bool {
        self.shadow_model != other.shadow_model
            || self.device != other.device
            || self.threads != other.threads
    }

    pub fn language_enabled(&self, language_id: &str) -> bool {
        match &self.languages {
            Some(ids) => ids.iter().any(|id| id == language_id),
            None => true,
        }
    }

    /// Applies the fields present in `value` (an object with camelCase
    /// keys; `{codegen: {...}}` is unwrapped). Fields of the wrong type are
    /// skipped; the returned messages say which.
    pub fn merge_json(&mut self, value: &Value) -> Vec<String> {
        let mut warnings = Vec::new();
        let value = value.get("codegen").unwrap_or(value);
        let Some(object) = value.as_object() else {
            if !value.is_null() {
                warnings.push(format!("codegen settings must be an object, got {value}"));
            }
            return warnings;
        };
        for (key, field) in object {
            let ok = match key.as_str() {
                "model" => match field {
                    Value::Null => {
                        self.model = None;
                        true
                    }
                    Value::String(s) if s.is_empty() => {
                        self.model = None;
                        true
                    }
                    Value::String(s) => {
                        self.model = Some(s.clone());
                        true
                    }
                    _ => false,
                },
                "backend" | "backendModel" => match field {
                    Value::Null | Value::String(_) => {
                        let value = field
                            .as_str()
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string);
                        if key == "backend" {
                            self.backend = value;
                        } else {
                            self.backend_model = value;
                        }
                        true
                    }
                    _ => false,
                },
                "draftModel" => match field {
                    Value::Null => {
                        self.draft_model = None;
                        true
                    }
                    Value::String(s) if s.is_empty() => {
                        self.draft_model = None;
                        true
                    }
                    Value::String(s) => {
                        self.draft_model = Some(s.clone());
                        true
                    }
                    _ => false,
                },
                "shadowModel" => match field {
                    Value::Null => {
                        self.shadow_model = None;
                        true
                    }
                    Value::String(s) if s.trim().is_empty() => {
                        self.shadow_model = None;
                        true
                    }
                    Value::String(s) => {
                        self.shadow_model = Some(s.trim().to_string());
                        true
                    }
                    _ => false,
                },
                "shadowPercent" => set(&mut self.shadow_percent, as_percent(field)),
                "rolloutPercent" => set(&mut self.rollout_percent, as_percent(field)),
                "device" => set(&mut self.device, field.as_str().map(str::to_string)),
                "threads" => match field {
                    Value::Null => {
                        self.threads = None;
                        true
                    }
                    _ => set_some(&mut self.threads, as_usize(field).filter(|n| *n > 0)),
                },
                "maxTokens" => set(&mut self.max_tokens, as_usize(field).filter(|n| *n > 0)),
                "temperature" => set(
                    &mut self.temperature,
                    field
                        .as_f64()
                        .filter(|t| (0.0..=5.0).contains(t))
                        .map(|t| t as f32),
                ),
                "n" => set(
                    &mut self.n,
                    as_usize(field).filter(|n| (1..=16).contains(n)),
                ),
                "rank" => set(
                    &mut self.rank,
                    match field {
                        Value::Bool(true) => Some(Rank::Auto),
                        Value::Bool(false) => Some(Rank::None),
                        Value::String(s) if s == "auto" => Some(Rank::Auto),
                        Value::String(s) if s == "logprob" => Some(Rank::Logprob),
                        Value::String(s) if s == "none" => Some(Rank::None),
                        _ => None,
                    },
                ),
                "rankBudgetMs" => set(&mut self.rank_budget_ms, field.as_u64()),
                "nAutomatic" => set(
                    &mut self.n_automatic,
                    as_usize(field).filter(|n| (1..=16).contains(n)),
                ),
                "debounceMs" => set(&mut self.debounce_ms, field.as_u64()),
                "idleUnloadSecs" => set(&mut self.idle_unload_secs, field.as_u64()),
                "timeBudgetMs" => set(&mut self.time_budget_ms, field.as_u64()),
                "maxPrefixTokens" => set(
                    &mut self.max_prefix_tokens,
                    as_usize(field).filter(|n| *n > 0),
                ),
                "maxSuffixTokens" => set(&mut self.max_suffix_tokens, as_usize(field)),
                "languages" => match field {
                    Value::Null => {
                        self.languages = None;
                        true
                    }
                    Value::Array(items) => {
                        let ids: Option<Vec<String>> = items
                            .iter()
                            .map(|v| v.as_str().map(str::to_string))
                            .collect();
                        set_some(&mut self.languages, ids)
                    }
                    _ => false,
                },
                "enabled" => set(&mut self.enabled, field.as_bool()),
                _ => {
                    warnings.push(format!("unknown codegen setting `{key}` ignored"));
                    true
                }
            };
            if !ok {
                warnings.push(format!(
                    "codegen setting `{key}` has an invalid value {field}; kept the previous one"
                ));
            }
        }
        warnings
    }
}

fn as_percent(value: &Value) -> Option<u32> {
    value
        .as_f64()
        .filter(|p| (0.0..=100.0).contains(p))
        .map(|p| p.round() as u32)
}

/// Default of [`Settings::shadow_percent`] (when a `shadowModel` is set).
pub const DEFAULT_SHADOW_PERCENT: u32 = 25;

fn as_usize(value: &Value) -> Option<usize> {
    value.as_u64().and_then(|n| usize::try_from(n).ok())
}

/// Default of [`Settings::idle_unload_secs`]: an hour away from the editor
/// gives the memory back (the 0.5B holds about 0.5 GiB, the 1.5B 1.1 GiB);
/// reloading a cached model takes well under a second.
pub const DEFAULT_IDLE_UNLOAD_SECS: u64 = 3600;

fn set<T>(slot: &mut T, value: Option<T>) -> bool {
    match value {
        Some(v) => {
            *slot = v;
            true
        }
        None => false,
    }
}

fn set_some<T>(slot: &mut Option<T>, value: Option<T>) -> bool {
    match value {
        Some(v) => {
            *slot = Some(v);
            true
        }
        None => false,
    }
}
