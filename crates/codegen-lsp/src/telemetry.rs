//! Local acceptance telemetry: one JSON object per line, appended to a file
//! in the cache directory, and the statistics `codegen stats` prints.
//! Nothing here touches the network.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What happened to a suggestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Returned to the editor.
    Shown,
    /// The client said it displayed it.
    Displayed,
    Accepted,
    Partial,
    /// The engine answered with no suggestion.
    Empty,
    /// A candidate model computed a reply in shadow (never shown).
    Shadow,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryEvent {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    pub event: EventKind,
    pub id: String,
    pub model: String,
    pub language: String,
    /// Time from request to reply (shown events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Length of the suggestion, in bytes.
    pub length: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_length: Option<usize>,
    /// How the shown suggestion was chosen (shown events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<RankRecord>,
    /// Prompt tokens of the request (shown, empty and shadow events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<usize>,
    /// What context the prompt had: `fim` or `continuation`, then the
    /// completion mode (`fim/single-line`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// A candidate's reply beside the primary's (shadow events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowRecord>,
}

/// A shadow run: the candidate's best suggestion next to the primary's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ShadowRecord {
    /// The model whose reply was shown.
    pub primary: String,
    /// The candidate's best suggestion equals the primary's.
    pub agree_exact: bool,
    /// Their first lines are equal.
    pub agree_first_line: bool,
    /// The candidate's suggestion adds no syntax errors (`None`: not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syntax_ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_logprob: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_mean_logprob: Option<f32>,
    /// The candidate's compute time (queue excluded), and the primary's.
    pub latency_ms: f64,
    pub primary_latency_ms: f64,
    /// The candidate had no suggestion.
    #[serde(default)]
    pub empty: bool,
}

/// The ranking behind a shown suggestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RankRecord {
    /// Policy (`combined`, `logprob`, `none`).
    pub policy: String,
    pub ms: f64,
    /// Distinct candidates ranked.
    pub candidates: usize,
    /// The docstring's examples ran for this reply.
    pub ran_examples: bool,
    /// The chosen suggestion's features.
    pub examples_passed: usize,
    pub examples_total: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syntax_delta: Option<i64>,
    pub mean_logprob: f32,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Appends events to a JSONL file; failures are reported once, never fatal.
pub struct TelemetryLog {
    path: Option<PathBuf>,
    file: Mutex<Option<std::fs::File>>,
}

impl TelemetryLog {
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn append(&self, event: &TelemetryEvent) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if file.is_none() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut opened = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(path)?;
            // A line cut short (a crash mid-write) must not swallow the
            // next one: start on a fresh line.
            if ends_without_newline(&mut opened)? {
                opened.write_all(b"\n")?;
            }
            *file = Some(opened);
        }
        let mut line = serde_json::to_string(event).map_err(std::io::Error::other)?;
        line.push('\n');
        match file.as_mut() {
            Some(f) => f.write_all(line.as_bytes()),
            None => Ok(()),
        }
    }
}

fn ends_without_newline(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// Events of a JSONL file; unreadable lines are skipped and counted.
pub fn read_events(path: &Path) -> std::io::Result<(Vec<TelemetryEvent>, usize)> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut events = Vec::new();
    let mut n_bad = 0;
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(event) => events.push(event),
            Err(_) => n_bad += 1,
        }
    }
    Ok((events, n_bad))
}

/// Acceptance and latency of one model in one language.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStats {
    pub model: String,
    pub language: String,
    pub shown: usize,
    pub accepted: usize,
    pub partially_accepted: usize,
    /// (accepted + partially accepted) / shown.
    pub acceptance_rate: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub accepted_bytes: usize,
    /// Ranking time of shown suggestions.
    pub rank_p50_ms: Option<f64>,
    pub rank_p95_ms: Option<f64>,
    /// Shown suggestions whose examples ran, and of those, the ones whose
    /// chosen candidate passed them all.
    pub ranked_by_examples: usize,
    pub passed_examples: usize,
}

/// The `p`-th percentile (0..=100) of `values`, nearest rank.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Statistics per (model, language) of the events at or after `since_ms`.
pub fn summarize(events: &[TelemetryEvent], since_ms: Option<u64>) -> Vec<GroupStats> {
    #[derive(Default)]
    struct Acc {
        shown: usize,
        accepted: usize,
        partial: usize,
        latencies: Vec<f64>,
        accepted_bytes: usize,
        rank_ms: Vec<f64>,
        by_examples: usize,
        passed_examples: usize,
        /// Suggestions with a partial acceptance, and with a full one: a
        /// suggestion taken word by word counts once, and not at all as
        /// partial when it was also accepted whole.
        partial_ids: std::collections::BTreeSet<String>,
        accepted_ids: std::collections::BTreeSet<String>,
    }
    let mut groups: BTreeMap<(String, String), Acc> = BTreeMap::new();
    for event in events {
        if since_ms.is_some_and(|since| event.ts_ms < since) {
            continue;
        }
        let acc = groups
            .entry((event.model.clone(), event.language.clone()))
            .or_default();
        match event.event {
            EventKind::Shown => {
                acc.shown += 1;
                if let Some(ms) = event.latency_ms {
                    acc.latencies.push(ms);
                }
                if let Some(rank) = &event.rank {
                    acc.rank_ms.push(rank.ms);
                    if rank.ran_examples && rank.examples_total > 0 {
                        acc.by_examples += 1;
                        if rank.examples_passed == rank.examples_total {
                            acc.passed_examples += 1;
                        }
                    }
                }
            }
            EventKind::Displayed | EventKind::Empty | EventKind::Shadow => {}
            EventKind::Accepted => {
                if acc.accepted_ids.insert(event.id.clone()) || event.id.is_empty() {
                    acc.accepted += 1;
                }
                acc.accepted_bytes += event.accepted_length.unwrap_or(event.length);
            }
            EventKind::Partial => {
                if event.id.is_empty() {
                    acc.partial += 1;
                } else {
                    acc.partial_ids.insert(event.id.clone());
                }
                acc.accepted_bytes += event.accepted_length.unwrap_or(0);
            }
        }
    }
    for acc in groups.values_mut() {
        acc.partial += acc
            .partial_ids
            .iter()
            .filter(|id| !acc.accepted_ids.contains(*id))
            .count();
    }
    groups
        .into_iter()
        .map(|((model, language), acc)| GroupStats {
            model,
            language,
            shown: acc.shown,
            accepted: acc.accepted,
            partially_accepted: acc.partial,
            acceptance_rate: if acc.shown == 0 {
                0.0
            } else {
                (acc.accepted + acc.partial) as f64 / acc.shown as f64
            },
            latency_p50_ms: percentile(&acc.latencies, 50.0),
            latency_p95_ms: percentile(&acc.latencies, 95.0),
            accepted_bytes: acc.accepted_bytes,
            rank_p50_ms: percentile(&acc.rank_ms, 50.0),
            rank_p95_ms: percentile(&acc.rank_ms, 95.0),
            ranked_by_examples: acc.by_examples,
            passed_examples: acc.passed_examples,
        })
        .collect()
}
