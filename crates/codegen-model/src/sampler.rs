//! Token sampling: greedy, temperature, top-k, top-p, seeded.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How the next token is chosen. `temperature <= 0` is greedy.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingConfig {
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub top_p: f32,
    pub seed: u64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: 1.0,
            seed: 0,
        }
    }
}

impl SamplingConfig {
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0 || self.top_k == Some(1)
    }
}

/// Candidates kept before the full sort for top-p; if their mass is below
/// `top_p` the sampler falls back to the whole vocabulary.
const NUCLEUS_PRESELECT: usize = 1024;

pub struct Sampler {
    config: SamplingConfig,
    rng: StdRng,
    weights: Vec<f32>,
    order: Vec<u32>,
}

/// Log-probability of `token` under `softmax(logits)` (temperature 1).
pub fn log_prob(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    match logits.get(token as usize) {
        Some(l) => l - max - sum.ln(),
        None => f32::NEG_INFINITY,
    }
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_value = f32::NEG_INFINITY;
    for (idx, value) in logits.iter().enumerate() {
        if *value > best_value {
            best = idx;
            best_value = *value;
        }
    }
    best as u32
}

impl Sampler {
    pub fn new(config: SamplingConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Self {
            config,
            rng,
            weights: Vec::new(),
            order: Vec::new(),
        }
    }

    pub fn config(&self) -> &SamplingConfig {
        &self.config
    }

    /// Picks the next token and returns it with its log-probability under
    /// the model (temperature 1, before any filtering).
    pub fn sample(&mut self, logits: &[f32]) -> (u32, f32) {
        let token = if self.config.is_greedy() {
            argmax(logits)
        } else {
            self.sample_filtered(logits)
        };
        (token, log_prob(logits, token))
    }

    fn sample_filtered(&mut self, logits: &[f32]) -> u32 {
        let inv_t = 1.0 / self.config.temperature;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        self.weights.clear();
        self.weights
            .extend(logits.iter().map(|l| ((l - max) * inv_t).exp()));
        let total: f32 = self.weights.iter().sum();
        let top_p = self.config.top_p.clamp(0.0, 1.0);
        let vocab = self.weights.len();

        if self.config.top_k.is_none() && top_p >= 1.0 {
            return self.draw_from_all(total);
        }
        let keep = self.config.top_k.unwrap_or(vocab).clamp(1, vocab);
        let preselect = if top_p < 1.0 {
            keep.min(NUCLEUS_PRESELECT)
        } else {
            keep
        };
        let weights = &self.weights;
        self.order.clear();
        self.order.extend(0..vocab as u32);
        let by_weight_desc =
            |a: &u32, b: &u32| weights[*b as usize].total_cmp(&weights[*a as usize]);
        if preselect < vocab {
            self.order
                .select_nth_unstable_by(preselect - 1, by_weight_desc);
            self.order.truncate(preselect);
        }
        self.order.sort_unstable_by(by_weight_desc);
        // Mass of what was kept, measured against the whole vocabulary.
        let kept_mass: f32 = self.order.iter().map(|i| weights[*i as usize]).sum();
        if top_p < 1.0 && preselect < keep && kept_mass < top_p * total {
            // Rare: the nucleus is wider than the preselection.
            self.order.clear();
            self.order.extend(0..vocab as u32);
            self.order.sort_unstable_by(by_weight_desc);
            self.order.truncate(keep);
        }
        let keep_total: f32 = self.order.iter().map(|i| weights[*i as usize]).sum();
        let limit = top_p * keep_total;
        let mut cumulative = 0.0;
        let mut n_nucleus = 0;
        for idx in &self.order {
            cumulative += weights[*idx as usize];
            n_nucleus += 1;
            if cumulative >= limit {
                break;
            }
        }
        let nucleus = &self.order[..n_nucleus.max(1)];
        let nucleus_total: f32 = nucleus.iter().map(|i| weights[*i as usize]).sum();
        let mut target = self.rng.gen::<f32>() * nucleus_total;
        for idx in nucleus {
            target -= weights[*idx as usize];
            if target <= 0.0 {
                return *idx;
            }
        }
        nucleus[nucleus.len() - 1]
    }

    fn draw_from_all(&mut self, total: f32) -> u32 {
        let mut target = self.rng.gen::<f32>() * total;
        let mut last_positive = 0;
        for (idx, w) in self.weights.iter().enumerate() {
            if *w > 0.0 {
                last_positive = idx;
            }
            target -= w;
            if target <= 0.0 {
                return idx as u32;
            }
        }
        last_positive as u32
    }
}
