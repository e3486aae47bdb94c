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
    match logits.get(token as usize) {
        Some(l) => l - crate::vecmath::log_sum_exp(logits),
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

    /// The next token, as [`Sampler::sample`] draws it, without computing
    /// its log-probability (a pass over the vocabulary saved per token).
    pub fn sample_token(&mut self, logits: &[f32]) -> u32 {
        if self.config.is_greedy() {
            argmax(logits)
        } else {
            self.sample_filtered(logits)
        }
    }

    /// The token greedy decoding picks from `logits` (what [`Sampler::sample`]
    /// returns when the configuration is greedy).
    pub fn greedy_token(&self, logits: &[f32]) -> u32 {
        argmax(logits)
    }

    fn sample_filtered(&mut self, logits: &[f32]) -> u32 {
        match self.support(logits) {
            Support::All(total) => self.draw_from_all(total),
            Support::Order(n, mass) => self.draw_from_order(n, mass),
        }
    }

    /// Weighs `logits` at the temperature into `self.weights` and finds the
    /// tokens top-k and top-p keep: all of them, or `self.order[..n]`.
    fn support(&mut self, logits: &[f32]) -> Support {
        let inv_t = 1.0 / self.config.temperature;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let total = crate::vecmath::exp_scaled_into(logits, max, inv_t, &mut self.weights);
        let top_p = self.config.top_p.clamp(0.0, 1.0);
        let vocab = self.weights.len();

        if self.config.top_k.is_none() && top_p >= 1.0 {
            return Support::All(total);
        }
        if self.config.top_k.is_none() && top_p > 0.0 {
            // Only tokens of weight >= eps can be in the nucleus: all the
            // others together weigh less than vocab * eps < (1 - top_p) *
            // total, so the tokens at or above eps already hold more than
            // top_p of the mass and the nucleus ends among them.
            let eps = 0.99 * (1.0 - top_p) * total / vocab as f32;
            self.order.clear();
            self.order.extend(
                self.weights
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| **w >= eps)
                    .map(|(i, _)| i as u32),
            );
            let weights = &self.weights;
            self.order
                .sort_unstable_by(|a, b| weights[*b as usize].total_cmp(&weights[*a as usize]));
            return self.nucleus(top_p, total);
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
        self.nucleus(top_p, keep_total)
    }

    /// The smallest prefix of `self.order` (sorted by weight, descending)
    /// whose weight reaches `top_p * mass`, and its weight.
    fn nucleus(&self, top_p: f32, mass: f32) -> Support {
        let weights = &self.weights;
        let limit = top_p * mass;
        let mut cumulative = 0.0;
        let mut n_nucleus = 0;
        for idx in &self.order {
            cumulative += weights[*idx as usize];
            n_nucleus += 1;
            if cumulative >= limit {
                break;
            }
        }
        let n = n_nucleus.max(1).min(self.order.len());
        let nucleus_total: f32 = self.order[..n].iter().map(|i| weights[*i as usize]).sum();
        Support::Order(n, nucleus_total)
    }

    fn draw_from_order(&mut self, n: usize, mass: f32) -> u32 {
        let weights = &self.weights;
        let nucleus = &self.order[..n];
        let mut target = self.rng.gen::<f32>() * mass;
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

    /// The distribution [`Sampler::sample`] draws from for `logits`, as
    /// probabilities over the whole vocabulary (zero outside what top-k and
    /// top-p keep; one-hot at the argmax when greedy). Speculative sampling
    /// compares the draft's and the target's with it.
    pub fn distribution(&mut self, logits: &[f32]) -> Vec<f32> {
        let mut probs = vec![0.0f32; logits.len()];
        if logits.is_empty() {
            return probs;
        }
        if self.config.is_greedy() {
            probs[argmax(logits) as usize] = 1.0;
            return probs;
        }
        match self.support(logits) {
            Support::All(total) => {
                let inv = 1.0 / total.max(f32::MIN_POSITIVE);
                for (p, w) in probs.iter_mut().zip(&self.weights) {
                    *p = w * inv;
                }
            }
            Support::Order(n, mass) => {
                let inv = 1.0 / mass.max(f32::MIN_POSITIVE);
                for idx in &self.order[..n] {
                    probs[*idx as usize] = self.weights[*idx as usize] * inv;
                }
            }
        }
        probs
    }

    /// Draws a token from `probs` (non-negative weights; they need not sum
    /// to one) with this sampler's random state.
    pub fn draw_from(&mut self, probs: &[f32]) -> u32 {
        let total: f32 = probs.iter().sum();
        let mut target = self.rng.gen::<f32>() * total;
        let mut last_positive = 0;
        for (idx, w) in probs.iter().enumerate() {
            if *w > 0.0 {
                last_positive = idx;
                target -= w;
                if target <= 0.0 {
                    return idx as u32;
                }
            }
        }
        last_positive as u32
    }

    /// A uniform draw in `[0, 1)` from this sampler's random state.
    pub fn uniform(&mut self) -> f32 {
        self.rng.gen::<f32>()
    }
}

/// What top-k and top-p keep of the weighed vocabulary.
enum Support {
    /// Every token; the total weight.
    All(f32),
    /// `order[..n]`; their weight.
    Order(usize, f32),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sample_token` draws what `sample` draws, from the same random
    /// stream, greedy or not.
    #[test]
    fn sample_token_draws_what_sample_draws() {
        let logits: Vec<f32> = (0..400).map(|i| ((i * 37) % 101) as f32 * 0.05).collect();
        for config in [
            SamplingConfig::default(),
            SamplingConfig {
                temperature: 0.8,
                top_p: 0.95,
                seed: 7,
                ..SamplingConfig::default()
            },
        ] {
            let mut a = Sampler::new(config.clone());
            let mut b = Sampler::new(config);
            for _ in 0..50 {
                let (token, logprob) = a.sample(&logits);
                assert_eq!(b.sample_token(&logits), token);
                assert!((logprob - log_prob(&logits, token)).abs() < 1e-6);
            }
        }
    }

    /// Top-p draws only from the smallest set of most likely tokens whose
    /// probability reaches p (computed here by brute force), and from all
    /// of them.
    #[test]
    fn top_p_draws_exactly_from_the_nucleus() {
        // Distinct logits: a few likely tokens, a long tail, and the rest
        // practically impossible (ties at the nucleus edge would make the
        // nucleus ambiguous).
        let mut logits = vec![-40f32; 5000];
        for (i, v) in [6.0, 5.5, 5.0, 4.0, 3.0].iter().enumerate() {
            logits[i * 7] = *v;
        }
        for i in 0..300 {
            logits[1000 + i * 13] = 2.0 - i as f32 * 0.01;
        }
        for top_p in [0.3f32, 0.5, 0.8] {
            let max = 6.0f32;
            let w: Vec<f64> = logits.iter().map(|l| ((l - max) as f64).exp()).collect();
            let total: f64 = w.iter().sum();
            let mut order: Vec<usize> = (0..w.len()).collect();
            order.sort_by(|a, b| w[*b].total_cmp(&w[*a]));
            let mut cum = 0.0;
            let mut nucleus = Vec::new();
            for i in order {
                cum += w[i];
                nucleus.push(i as u32);
                if cum >= top_p as f64 * total {
                    break;
                }
            }
            let mut seen = std::collections::HashSet::new();
            for seed in 0..8000 {
                let mut s = Sampler::new(SamplingConfig {
                    temperature: 1.0,
                    top_k: None,
                    top_p,
                    seed,
                });
                let (t, lp) = s.sample(&logits);
                assert!(nucleus.contains(&t), "p={top_p}: {t} not in the nucleus");
                assert!(lp < 0.0);
                seen.insert(t);
            }
            assert_eq!(seen.len(), nucleus.len(), "p={top_p}");
        }
    }
}
