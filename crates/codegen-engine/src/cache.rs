//! Cached model sessions (KV caches), one per key (a document), kept within
//! a memory cap: the least recently used go first.

use codegen_model::Session;

/// Limits of a [`SessionCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCacheConfig {
    /// Bytes of KV cache kept across all sessions.
    pub max_bytes: usize,
    pub max_sessions: usize,
}

impl Default for SessionCacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: 512 << 20,
            max_sessions: 4,
        }
    }
}

struct Entry {
    key: String,
    session: Session,
    last_used: u64,
}

/// Sessions by key. A session is taken out while a request uses it and put
/// back after, so the cache never holds a session being written.
pub struct SessionCache {
    config: SessionCacheConfig,
    entries: Vec<Entry>,
    clock: u64,
}

impl SessionCache {
    pub fn new(config: SessionCacheConfig) -> Self {
        Self {
            config,
            entries: Vec::new(),
            clock: 0,
        }
    }

    /// Takes the session cached for `key`, if any.
    pub fn take(&mut self, key: &str) -> Option<Session> {
        let idx = self.entries.iter().position(|e| e.key == key)?;
        Some(self.entries.swap_remove(idx).session)
    }

    /// Caches `session` under `key` (replacing any other), then evicts the
    /// least recently used sessions beyond the limits. The session just put
    /// is kept even when it alone exceeds the memory cap.
    pub fn put(&mut self, key: &str, session: Session) {
        self.entries.retain(|e| e.key != key);
        self.clock += 1;
        self.entries.push(Entry {
            key: key.to_string(),
            session,
            last_used: self.clock,
        });
        while self.entries.len() > 1
            && (self.entries.len() > self.config.max_sessions.max(1)
                || self.memory_bytes() > self.config.max_bytes)
        {
            let oldest = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(idx, _)| idx);
            match oldest {
                Some(idx) => {
                    self.entries.swap_remove(idx);
                }
                None => break,
            }
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.entries.retain(|e| e.key != key);
    }

    /// Drops every session whose key matches.
    pub fn remove_matching(&mut self, mut matches: impl FnMut(&str) -> bool) {
        self.entries.retain(|e| !matches(&e.key));
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys, most recently used last.
    pub fn keys(&self) -> Vec<String> {
        let mut entries: Vec<&Entry> = self.entries.iter().collect();
        entries.sort_by_key(|e| e.last_used);
        entries.iter().map(|e| e.key.clone()).collect()
    }

    pub fn memory_bytes(&self) -> usize {
        self.entries.iter().map(|e| e.session.memory_bytes()).sum()
    }
}
