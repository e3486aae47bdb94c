//! One runtime configuration for the whole process: the kernels' thread
//! pool, the SIMD level, the forward path, the matmul backend and
//! prompt-lookup drafting. It is built once from the environment
//! (`CODEGEN_THREADS`, `CODEGEN_SIMD`, `CODEGEN_FORWARD`, `CODEGEN_KERNELS`,
//! `CODEGEN_DRAFT_TOKENS`), overridden by flags or editor
//! settings, and applied; nothing else reads those variables. `bench speed`
//! and `codegen/engineStats` report [`RuntimeConfig::current`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use codegen_kernels::SimdLevel;

/// Which forward pass CPU models use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardPath {
    /// The fused host forward over our kernels (the default).
    Fused,
    /// The candle-tensor forward (for comparisons).
    Candle,
}

impl ForwardPath {
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardPath::Fused => "fused",
            ForwardPath::Candle => "candle",
        }
    }
}

/// Default tokens guessed by prompt lookup per check during greedy decoding.
pub const DEFAULT_LOOKUP_DRAFT_TOKENS: usize = 6;

/// What the process runs with. `None` fields keep the detected default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Threads of the kernels' pool (the caller counts as one); also sizes
    /// the pool candle's tensor ops use, when applied before its first use.
    pub threads: Option<usize>,
    /// Cap on the SIMD level (a level the CPU lacks falls back to the best
    /// it has, with a warning from [`RuntimeConfig::apply`]).
    pub simd: Option<SimdLevel>,
    pub forward: ForwardPath,
    /// CPU models use candle's stock quantized matmuls instead of our
    /// kernels (`CODEGEN_KERNELS=candle`; for comparisons).
    pub candle_kernels: bool,
    /// Prompt-lookup draft tokens (0 turns prompt lookup off).
    pub lookup_draft_tokens: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            threads: None,
            simd: None,
            forward: ForwardPath::Fused,
            candle_kernels: false,
            lookup_draft_tokens: DEFAULT_LOOKUP_DRAFT_TOKENS,
        }
    }
}

static FORWARD_CANDLE: AtomicBool = AtomicBool::new(false);
static CANDLE_KERNELS: AtomicBool = AtomicBool::new(false);
static LOOKUP_DRAFT_TOKENS: AtomicUsize = AtomicUsize::new(DEFAULT_LOOKUP_DRAFT_TOKENS);

/// What [`RuntimeConfig::current`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeReport {
    pub threads: usize,
    pub simd: String,
    pub forward: String,
    pub kernels: String,
    pub lookup_draft_tokens: usize,
}

impl RuntimeConfig {
    /// The configuration the environment asks for; unparsable values are
    /// returned as warnings and ignored.
    pub fn from_env() -> (RuntimeConfig, Vec<String>) {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`RuntimeConfig::from_env`] over any variable lookup (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> (RuntimeConfig, Vec<String>) {
        let mut cfg = RuntimeConfig::default();
        let mut warnings = Vec::new();
        if let Some(v) = var("CODEGEN_THREADS") {
            match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => cfg.threads = Some(n),
                _ => warnings.push(format!(
                    "CODEGEN_THREADS={v:?} is not a positive number; ignored"
                )),
            }
        }
        if let Some(v) = var("CODEGEN_SIMD") {
            match SimdLevel::parse(&v) {
                Some(level) => cfg.simd = Some(level),
                None => warnings.push(format!(
                    "CODEGEN_SIMD={v:?} is not one of scalar, avx2, avx512, amx; ignored"
                )),
            }
        }
        if let Some(v) = var("CODEGEN_FORWARD") {
            match v.trim() {
                "candle" => cfg.forward = ForwardPath::Candle,
                "fused" | "" => cfg.forward = ForwardPath::Fused,
                _ => warnings.push(format!(
                    "CODEGEN_FORWARD={v:?} is not fused or candle; ignored"
                )),
            }
        }
        if let Some(v) = var("CODEGEN_KERNELS") {
            match v.trim() {
                "candle" => cfg.candle_kernels = true,
                "ours" | "" => cfg.candle_kernels = false,
                _ => warnings.push(format!(
                    "CODEGEN_KERNELS={v:?} is not ours or candle; ignored"
                )),
            }
        }
        if let Some(v) = var("CODEGEN_DRAFT_TOKENS") {
            match v.trim().parse::<usize>() {
                Ok(n) => cfg.lookup_draft_tokens = n,
                _ => warnings.push(format!(
                    "CODEGEN_DRAFT_TOKENS={v:?} is not a number; ignored"
                )),
            }
        }
        (cfg, warnings)
    }

    /// `threads` from a flag or setting wins over the environment's.
    pub fn with_threads(mut self, threads: Option<usize>) -> Self {
        if let Some(n) = threads.filter(|n| *n > 0) {
            self.threads = Some(n);
        }
        self
    }

    /// Applies the configuration to the process: resizes the kernels' pool,
    /// caps the SIMD level, picks the forward path for models loaded from now
    /// on. Returns warnings (an unsupported SIMD level).
    pub fn apply(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(n) = self.threads {
            codegen_kernels::set_num_threads(n);
            // candle's CPU ops run on rayon's global pool, which reads this
            // when it starts (before the first model is loaded).
            if std::env::var_os("RAYON_NUM_THREADS").is_none() {
                std::env::set_var("RAYON_NUM_THREADS", n.to_string());
            }
        }
        if let Some(level) = self.simd {
            if codegen_kernels::set_simd_level(level).is_err() {
                warnings.push(format!(
                    "this CPU cannot run SIMD level {level:?}; using {:?}",
                    codegen_kernels::simd_level()
                ));
            }
        }
        FORWARD_CANDLE.store(self.forward == ForwardPath::Candle, Ordering::Relaxed);
        CANDLE_KERNELS.store(self.candle_kernels, Ordering::Relaxed);
        LOOKUP_DRAFT_TOKENS.store(self.lookup_draft_tokens, Ordering::Relaxed);
        warnings
    }

    /// What the process runs with now.
    pub fn current() -> RuntimeReport {
        RuntimeReport {
            threads: codegen_kernels::num_threads(),
            simd: format!("{:?}", codegen_kernels::simd_level()).to_ascii_lowercase(),
            forward: forward_path().as_str().to_string(),
            kernels: if candle_kernels() { "candle" } else { "ours" }.to_string(),
            lookup_draft_tokens: lookup_draft_tokens(),
        }
    }
}

/// The forward path models are loaded with.
pub fn forward_path() -> ForwardPath {
    if FORWARD_CANDLE.load(Ordering::Relaxed) {
        ForwardPath::Candle
    } else {
        ForwardPath::Fused
    }
}

/// Whether CPU models use candle's stock matmuls.
pub fn candle_kernels() -> bool {
    CANDLE_KERNELS.load(Ordering::Relaxed)
}

/// Prompt-lookup draft tokens for greedy decoding.
pub fn lookup_draft_tokens() -> usize {
    LOOKUP_DRAFT_TOKENS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_is_read_in_one_place_and_flags_win() {
        let vars = |name: &str| match name {
            "CODEGEN_THREADS" => Some("3".to_string()),
            "CODEGEN_SIMD" => Some("scalar".to_string()),
            "CODEGEN_FORWARD" => Some("candle".to_string()),
            "CODEGEN_DRAFT_TOKENS" => Some("nope".to_string()),
            _ => None,
        };
        let (cfg, warnings) = RuntimeConfig::from_vars(vars);
        assert_eq!(cfg.threads, Some(3));
        assert_eq!(cfg.simd, Some(SimdLevel::Scalar));
        assert_eq!(cfg.forward, ForwardPath::Candle);
        assert_eq!(cfg.lookup_draft_tokens, DEFAULT_LOOKUP_DRAFT_TOKENS);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(cfg.clone().with_threads(Some(1)).threads, Some(1));
        assert_eq!(cfg.with_threads(None).threads, Some(3));
    }

    #[test]
    fn threads_reach_the_kernel_pool() {
        let before = codegen_kernels::num_threads();
        RuntimeConfig {
            threads: Some(1),
            ..RuntimeConfig::default()
        }
        .apply();
        assert_eq!(RuntimeConfig::current().threads, 1);
        RuntimeConfig {
            threads: Some(before),
            ..RuntimeConfig::default()
        }
        .apply();
        assert_eq!(codegen_kernels::num_threads(), before);
    }
}
