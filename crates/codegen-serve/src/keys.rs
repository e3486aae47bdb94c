//! API keys: stored as sha256 hashes in a TOML file that is read again when
//! it changes, each with its own rate and size limits.
//!
//! ```toml
//! [[keys]]
//! name = "alice"
//! sha256 = "…"                 # printf %s "$KEY" | sha256sum
//! requests_per_minute = 120    # optional (default: the server's)
//! max_request_bytes = 262144   # optional
//! max_tokens = 256             # optional: most tokens per sample
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the key file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// One key's entry in the file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub name: String,
    /// sha256 of the key, in hex.
    pub sha256: String,
    pub requests_per_minute: Option<f64>,
    pub max_request_bytes: Option<usize>,
    pub max_tokens: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

/// The hash stored for `key`.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses a key file's text.
pub fn parse_keys(path: &Path, text: &str) -> Result<Vec<KeyEntry>, KeyError> {
    let invalid = |reason: String| KeyError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let file: KeyFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let mut keys = file.keys;
    for key in &mut keys {
        key.sha256 = key.sha256.trim().to_ascii_lowercase();
        if key.sha256.len() != 64 || !key.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(format!(
                "key {:?}: sha256 must be 64 hex digits (the hash of the key, not the key)",
                key.name
            )));
        }
        if key
            .requests_per_minute
            .is_some_and(|r| r.is_nan() || r <= 0.0)
        {
            return Err(invalid(format!(
                "key {:?}: requests_per_minute must be positive",
                key.name
            )));
        }
    }
    Ok(keys)
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    MissingKey,
    WrongKey,
    /// Over the key's rate: retry after this many seconds.
    RateLimited {
        retry_after_secs: u64,
    },
}

/// What a key may do.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub name: String,
    pub max_request_bytes: Option<usize>,
    pub max_tokens: Option<usize>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Loaded {
    stamp: Option<(SystemTime, u64)>,
    keys: Vec<KeyEntry>,
}

/// The keys of a file, read again when its modification time or size changes.
pub struct KeyStore {
    path: PathBuf,
    default_rpm: Option<f64>,
    loaded: Mutex<Loaded>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl KeyStore {
    /// Reads the file (it must be valid now; later bad edits are logged and
    /// the previous keys stay in force). `default_rpm` applies to keys
    /// without their own rate.
    pub fn open(path: &Path, default_rpm: Option<f64>) -> Result<KeyStore, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let keys = parse_keys(path, &text)?;
        Ok(KeyStore {
            path: path.to_path_buf(),
            default_rpm,
            loaded: Mutex::new(Loaded {
                stamp: stamp(path),
                keys,
            }),
            buckets: Mutex::default(),
        })
    }

    pub fn len(&self) -> usize {
        self.refresh().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn refresh(&self) -> Vec<KeyEntry> {
        let mut loaded = lock(&self.loaded);
        let now = stamp(&self.path);
        if now != loaded.stamp {
            match std::fs::read_to_string(&self.path)
                .map_err(|source| KeyError::Read {
                    path: self.path.clone(),
                    source,
                })
                .and_then(|text| parse_keys(&self.path, &text))
            {
                Ok(keys) => {
                    tracing::info!(n_keys = keys.len(), "key file reloaded");
                    loaded.keys = keys;
                    loaded.stamp = now;
                }
                Err(e) => {
                    tracing::warn!("{e}; keeping the previous keys");
                    loaded.stamp = now;
                }
            }
        }
        loaded.keys.clone()
    }

    /// Checks the bearer token of a request and takes one request from its
    /// key's rate.
    pub fn check(&self, token: Option<&str>) -> Result<Grant, Refusal> {
        let token = token.filter(|t| !t.is_empty()).ok_or(Refusal::MissingKey)?;
        let hash = hash_key(token);
        let keys = self.refresh();
        let entry = keys
            .iter()
            .find(|k| same(k.sha256.as_bytes(), hash.as_bytes()))
            .ok_or(Refusal::WrongKey)?;
        if let Some(rpm) = entry.requests_per_minute.or(self.default_rpm) {
            let per_sec = rpm / 60.0;
            let capacity = rpm.max(1.0);
            let mut buckets = lock(&self.buckets);
            let now = Instant::now();
            let bucket = buckets.entry(entry.sha256.clone()).or_insert(Bucket {
                tokens: capacity,
                at: now,
            });
            bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_sec)
                .min(capacity);
            bucket.at = now;
            if bucket.tokens < 1.0 {
                let wait = (1.0 - bucket.tokens) / per_sec;
                return Err(Refusal::RateLimited {
                    retry_after_secs: wait.ceil().max(1.0) as u64,
                });
            }
            bucket.tokens -= 1.0;
        }
        Ok(Grant {
            name: entry.name.clone(),
            max_request_bytes: entry.max_request_bytes,
            max_tokens: entry.max_tokens,
        })
    }
}
