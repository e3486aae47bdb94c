//! Output capture with a size cap: keeps the head and the last few KiB (where
//! a traceback's last line is), counts everything, drops the middle.

use std::collections::VecDeque;

pub(crate) struct CappedBuffer {
    head: Vec<u8>,
    head_cap: usize,
    tail: VecDeque<u8>,
    tail_cap: usize,
    total: u64,
}

impl CappedBuffer {
    pub(crate) fn new(cap: usize) -> CappedBuffer {
        let tail_cap = (cap / 4).min(4096);
        CappedBuffer {
            head: Vec::new(),
            head_cap: cap - tail_cap,
            tail: VecDeque::new(),
            tail_cap,
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.head.len() < self.head_cap {
            let take = (self.head_cap - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        if data.is_empty() || self.tail_cap == 0 {
            return;
        }
        if data.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.tail_cap..]);
            return;
        }
        self.tail.extend(data);
        let excess = self.tail.len().saturating_sub(self.tail_cap);
        self.tail.drain(..excess);
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The kept bytes as text; when bytes were dropped, a marker line says
    /// how many.
    pub(crate) fn render(&self) -> String {
        let kept = (self.head.len() + self.tail.len()) as u64;
        let mut bytes = self.head.clone();
        if kept < self.total {
            let marker = format!("\n[codegen-sandbox: {} bytes omitted]\n", self.total - kept);
            bytes.extend_from_slice(marker.as_bytes());
        }
        bytes.extend(self.tail.iter());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The last non-empty line of `text`, trimmed.
pub(crate) fn last_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .map(str::to_string)
}
