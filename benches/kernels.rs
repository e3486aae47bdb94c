//! Kernel benchmarks on the real Qwen2.5-Coder shapes (plain timing loop,
//! medians). Run:
//!
//! ```text
//! CARGO_TARGET_DIR=target-kernels cargo bench -p codegen-kernels --bench kernels -- [FILTER] [--quick]
//! ```
//!
//! Prints, per (shape, SIMD level, threads, n_tokens): median time per call,
//! GFLOP/s and effective weight bandwidth (weight bytes / time), then the
//! machine's memory bandwidth (sum over a 1 GiB buffer, and memcpy), then a
//! whole-model decode/prefill estimate (all matmuls of one token of the 0.5B
//! and 1.5B models, fused Q/K/V and gate/up calls). Flags: `--quick` (shorter
//! timing budget), `--decode-only`, `--best-only` (best SIMD level only, in
//! the model estimate), `--levels=avx512,amx` (only these levels);
//! `BENCH_HUGEPAGES=1` backs the weights with transparent huge pages.
//!
//! Figures on the 2-core dev machine (2026-11-28, AVX-512 level, quiet
//! moment; the machine is shared, so 2-thread figures are only meaningful
//! when both cores are free):
//!
//! - memory read ~10-12 GB/s per thread, ~20 GB/s for 2 threads (>= 128 MiB).
//! - 0.5B decode, all matmuls of a token: 20.8 ms at 2 threads (18.8 GB/s,
//!   i.e. at the memory bandwidth), 40 ms at 1 thread.
//! - 0.5B prefill, 64 tokens: 239 ms at 2 threads (268 tok/s), 461 ms at 1.
//! - 1.5B decode: 50.5 ms at 2 threads (19.4 GB/s); prefill 64: 786 ms.
//!
//! AMX level (AMX-INT8 tiles for calls of >= 8 tokens), same machine,
//! 2026-11-28, `-- model --quick --levels=avx512,amx` (kernel-only whole-model
//! prefill; the 2-thread 1.5B runs overlapped another build, so they are
//! noisy):
//!
//! | model, tokens | AVX-512 1 thr | AMX 1 thr | AVX-512 2 thr | AMX 2 thr |
//! |---|---|---|---|---|
//! | 0.5B, 64  | 150 tok/s (427 ms)  | 423 tok/s (151 ms) | 278 tok/s (230 ms) | 756 tok/s (85 ms) |
//! | 0.5B, 256 | 145 tok/s (1.77 s)  | 529 tok/s (484 ms) | 274 tok/s (933 ms) | 509 tok/s* (503 ms) |
//! | 1.5B, 64  | 36 tok/s* (1.76 s)  | 164 tok/s (391 ms) | 44 tok/s* (1.47 s) | 150 tok/s* (428 ms) |
//! | 1.5B, 256 | 44 tok/s (5.81 s)   | 168 tok/s (1.52 s) | 44 tok/s* (5.84 s) | 185 tok/s* (1.38 s) |
//!
//! (* = the other core was busy). Per shape at 1 thread, AMX vs AVX-512 at
//! 64 tokens is 3.5-5x (e.g. 1.5B ffn_gate Q4_K 8960x1536: 3.1 ms vs
//! 16.0 ms; ffn_down Q6_K 1536x8960: 3.5 ms vs 12.0 ms at 2 threads).
//!
//! Four-row kernels for Q4_0/Q5_0/Q8_0 (`x86_rows4`), 2026-12-02, an AMD
//! EPYC 2-core VM with AVX-512 VNNI and no AMX, `-- model --quick
//! --best-only` (2 threads, matmuls of one step of the 0.5B, lm_head for
//! every token), the bench binaries before and after run alternately three
//! times, medians: 1 token 10.8 -> 10.2 ms, 64 tokens 145.6 -> 120.9 ms,
//! 256 tokens 549.6 -> 445.0 ms. With `--tokens=1,2,4,8,16` (one run each,
//! so noisier): 8 tokens 23.5 -> 20.0 ms, 16 tokens 47.8 -> 34.5 ms.
//! Per shape (`-- 0.5B --quick --levels=avx512`, 1 thread, one run each):
//! ffn_gate/up Q5_0 4864x896 at 64 tokens 111 -> 147 GFLOP/s; lm_head Q8_0
//! at 64 tokens 174 -> 240 GFLOP/s.

use codegen_kernels::{
    available_simd_levels, matmul, matmul_multi, set_num_threads, set_simd_level, QMatrix, QType,
    Scratch, SimdLevel,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
}

/// Random blocks with sane f16 scales (so no NaN/Inf slows anything).
fn random_matrix(qtype: QType, rows: usize, cols: usize, rng: &mut Rng) -> QMatrix {
    let bb = qtype.block_bytes();
    let n_blocks = rows * cols / qtype.block_size();
    let mut bytes = vec![0u8; n_blocks * bb];
    if std::env::var_os("BENCH_HUGEPAGES").is_some() {
        advise_huge_pages(&mut bytes);
    }
    for c in bytes.chunks_exact_mut(8) {
        c.copy_from_slice(&rng.next().to_le_bytes());
    }
    let scale = half::f16::from_f32(0.01).to_bits().to_le_bytes();
    for b in bytes.chunks_exact_mut(bb) {
        match qtype {
            QType::F32 => b.copy_from_slice(&0.01f32.to_le_bytes()),
            QType::F16 => b.copy_from_slice(&scale),
            QType::Q6_K => b[208..210].copy_from_slice(&scale),
            QType::Q4_K | QType::Q5_K => {
                b[0..2].copy_from_slice(&scale);
                b[2..4].copy_from_slice(&scale);
            }
            _ => b[0..2].copy_from_slice(&scale),
        }
    }
    QMatrix::new(qtype, rows, cols, bytes).expect("bench matrix")
}

/// Median time of `f` (and, via `LAST_MIN`, the fastest run: on this shared
/// 2-core machine other processes inflate the median).
/// Asks the kernel for transparent huge pages (THP is `madvise`-only on this
/// machine) over the 2 MiB-aligned interior of a fresh, untouched buffer.
#[cfg(target_os = "linux")]
fn advise_huge_pages(buf: &mut [u8]) {
    const HUGE: usize = 2 << 20;
    let start = (buf.as_ptr() as usize).next_multiple_of(HUGE);
    let end = (buf.as_ptr() as usize + buf.len()) / HUGE * HUGE;
    if end > start {
        // SAFETY: the range lies inside `buf`; MADV_HUGEPAGE only changes how
        // the kernel backs the pages, never their contents.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_buf: &mut [u8]) {}

fn median_time(f: impl FnMut(), budget: Duration) -> Duration {
    let (median, min) = median_min_time(f, budget);
    LAST_MIN.with(|m| m.set(min));
    median
}

thread_local! {
    static LAST_MIN: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

fn last_min() -> Duration {
    LAST_MIN.with(|m| m.get())
}

fn median_min_time(mut f: impl FnMut(), budget: Duration) -> (Duration, Duration) {
    f(); // warm-up
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 5 || (start.elapsed() < budget && times.len() < 10_000) {
        let t = Instant::now();
        f();
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], times[0])
}

fn fmt_time(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:8.1} us")
    } else {
        format!("{:8.2} ms", us / 1000.0)
    }
}

fn memory_bandwidth(budget: Duration) {
    // Read bandwidth by working-set size: L2 (4 MiB/core here), the large
    // shared L3, and DRAM. Decode streams ~400 MB (0.5B) or ~1 GB (1.5B).
    let n_max = 1usize << 27; // 1 GiB of u64
    let buf: Vec<u64> = (0..n_max as u64).collect();
    for mib in [2usize, 32, 128, 384, 1024] {
        let n = mib << 17;
        for threads in [1, 2] {
            let chunk = n / threads;
            let t = median_time(
                || {
                    std::thread::scope(|s| {
                        for part in buf[..n].chunks(chunk) {
                            s.spawn(move || {
                                // 8 independent lanes so the add chain does not bound it.
                                let mut acc = [0u64; 8];
                                for c in part.chunks_exact(8) {
                                    for k in 0..8 {
                                        acc[k] = acc[k].wrapping_add(c[k]);
                                    }
                                }
                                black_box(acc);
                            });
                        }
                    });
                },
                budget,
            );
            println!(
                "memory read, {mib:5} MiB working set, {threads} thread(s): {:6.1} GB/s",
                (n * 8) as f64 / t.as_secs_f64() / 1e9
            );
        }
    }
    let n = n_max;
    let mut dst = vec![0u64; n / 2];
    let t = median_time(
        || {
            dst.copy_from_slice(black_box(&buf[..n / 2]));
            black_box(&mut dst);
        },
        budget,
    );
    println!(
        "memcpy 512 MiB (1 thread): {:6.1} GB/s (read+write)",
        (n * 8) as f64 / t.as_secs_f64() / 1e9
    );
}

/// Dispatch cost of an (almost) empty 8-task job: this crate's pool vs rayon.
fn pool_overhead(budget: Duration) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = AtomicUsize::new(0);
    let task = |i: usize| {
        hits.fetch_add(i, Ordering::Relaxed);
    };
    for threads in [1, 2] {
        let pool = codegen_kernels::ThreadPool::new(threads);
        let t = median_time(
            || {
                for _ in 0..100 {
                    pool.run(8, &task);
                }
            },
            budget,
        );
        println!(
            "dispatch, codegen pool, {threads} thread(s): {:6.2} us per 8-task job",
            t.as_secs_f64() * 1e4
        );
        let rp = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("rayon pool");
        let t = median_time(
            || {
                for _ in 0..100 {
                    rp.install(|| {
                        use rayon::prelude::*;
                        (0..8usize).into_par_iter().for_each(task)
                    });
                }
            },
            budget,
        );
        println!(
            "dispatch, rayon install+par_iter, {threads} thread(s): {:6.2} us per 8-task job",
            t.as_secs_f64() * 1e4
        );
    }
}

struct Case {
    name: &'static str,
    qtype: QType,
    rows: usize,
    cols: usize,
}

const fn case(name: &'static str, qtype: QType, rows: usize, cols: usize) -> Case {
    Case {
        name,
        qtype,
        rows,
        cols,
    }
}

const CASES: &[Case] = &[
    // 0.5B (hidden 896, ffn 4864); (rows, cols) = (out, in).
    case("0.5B attn_q/o Q5_0", QType::Q5_0, 896, 896),
    case("0.5B attn_k Q5_0", QType::Q5_0, 128, 896),
    case("0.5B attn_v Q8_0", QType::Q8_0, 128, 896),
    case("0.5B ffn_gate/up Q5_0", QType::Q5_0, 4864, 896),
    case("0.5B ffn_down Q6_K", QType::Q6_K, 896, 4864),
    case("0.5B ffn_down Q4_K", QType::Q4_K, 896, 4864),
    case("0.5B lm_head Q8_0", QType::Q8_0, 151936, 896),
    // 1.5B (hidden 1536, ffn 8960).
    case("1.5B attn_q Q4_K", QType::Q4_K, 1536, 1536),
    case("1.5B ffn_gate Q4_K", QType::Q4_K, 8960, 1536),
    case("1.5B ffn_down Q6_K", QType::Q6_K, 1536, 8960),
    case("1.5B ffn_gate Q5_K", QType::Q5_K, 8960, 1536),
    case("1.5B ffn_gate Q8_0", QType::Q8_0, 8960, 1536),
    case("1.5B ffn_gate Q4_0", QType::Q4_0, 8960, 1536),
    case("1.5B lm_head Q6_K", QType::Q6_K, 151936, 1536),
];

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let quick = args.iter().any(|a| a == "--quick");
    let filter: Option<&String> = args.iter().find(|a| !a.starts_with("--"));
    let budget = Duration::from_millis(if quick { 150 } else { 600 });
    let mut rng = Rng(0x1234_5678_9abc_def1);
    // --levels=avx512,amx: only these SIMD levels (default: all supported).
    let levels: Vec<SimdLevel> = match args.iter().find_map(|a| a.strip_prefix("--levels=")) {
        Some(list) => list
            .split(',')
            .filter_map(SimdLevel::parse)
            .filter(|l| l.is_supported())
            .collect(),
        None => available_simd_levels(),
    };
    println!("levels: {levels:?}");

    if filter.is_none_or(|f| "membw".contains(f.as_str())) {
        memory_bandwidth(budget);
    }
    if filter.is_none_or(|f| "quant".contains(f.as_str())) {
        let n = 64 * 4864;
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let mut qs = vec![0i8; n];
        let mut d = vec![0f32; n / 32];
        let mut bs = vec![0i16; n / 16];
        let t = median_time(
            || codegen_kernels::quantize_row_q8_0(&x, &mut qs, &mut d),
            budget,
        );
        println!("quantize_row_q8_0 (scalar) 64x4864: {}", fmt_time(t));
        let t = median_time(
            || codegen_kernels::quantize_row_q8_k(&x, &mut qs, &mut d[..n / 256], &mut bs),
            budget,
        );
        println!("quantize_row_q8_k (scalar) 64x4864: {}", fmt_time(t));
    }
    if filter.is_none_or(|f| "pool".contains(f.as_str())) {
        pool_overhead(budget);
    }

    println!(
        "{:<24} {:>7} {:>3} {:>4} {:>11} {:>11} {:>9} {:>9}",
        "shape (rows x cols)", "level", "thr", "tok", "median", "min", "GFLOP/s", "GB/s(w)"
    );
    for c in CASES {
        if filter.is_some_and(|f| !c.name.contains(f.as_str())) {
            continue;
        }
        let w = random_matrix(c.qtype, c.rows, c.cols, &mut rng);
        let wbytes = w.bytes().len() as f64;
        let mut scratch = Scratch::new();
        for &level in &levels {
            set_simd_level(level).expect("supported level");
            for threads in [1, 2] {
                set_num_threads(threads);
                for &n_tokens in shape_tokens(level) {
                    // The scalar path is only a reference: keep it short.
                    if level == SimdLevel::Scalar
                        && (n_tokens > 1 || threads > 1 || c.rows > 10_000)
                    {
                        continue;
                    }
                    if n_tokens > 64 && c.rows > 10_000 {
                        continue;
                    }
                    let x: Vec<f32> = (0..n_tokens * c.cols)
                        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                        .collect();
                    let mut out = vec![0f32; n_tokens * c.rows];
                    let budget = if c.rows > 10_000 && n_tokens > 1 {
                        budget / 2
                    } else {
                        budget
                    };
                    let t = median_time(
                        || matmul(&w, &x, n_tokens, &mut out, &mut scratch).expect("matmul"),
                        budget,
                    );
                    let s = t.as_secs_f64();
                    println!(
                        "{:<24} {:>7} {:>3} {:>4} {:>11} {:>11} {:>9.1} {:>9.1}   [{}x{}]",
                        c.name,
                        format!("{level:?}"),
                        threads,
                        n_tokens,
                        fmt_time(t),
                        fmt_time(last_min()),
                        2.0 * (c.rows * c.cols * n_tokens) as f64 / s / 1e9,
                        wbytes / s / 1e9,
                        c.rows,
                        c.cols
                    );
                }
            }
        }
    }

    if filter.is_none_or(|f| "model".contains(f.as_str())) {
        // --decode-only: n_tokens = 1 only; --best-only: the best SIMD level only.
        let decode_only = args.iter().any(|a| a == "--decode-only");
        let best_only = decode_only || args.iter().any(|a| a == "--best-only");
        let levels: Vec<SimdLevel> = if best_only {
            levels.last().copied().into_iter().collect()
        } else {
            levels
        };
        // --tokens=1,2,4,8: the token counts of the whole-model estimate
        // (default 1, 64, 256; small counts = batched decode of that many rows).
        let tokens: Vec<usize> = args
            .iter()
            .find_map(|a| a.strip_prefix("--tokens="))
            .map(|t| {
                t.split(',')
                    .map(|n| n.parse().expect("--tokens=N,N"))
                    .collect()
            })
            .unwrap_or_else(|| vec![1, 64, 256]);
        model_estimate(&mut rng, budget, &levels, decode_only, &tokens);
    }
}

/// Token counts per shape: decode (1) and prefill; AMX only for prefill (at
/// 1 token it runs the AVX-512 kernels), AVX2 only at 1 and 64.
fn shape_tokens(level: SimdLevel) -> &'static [usize] {
    match level {
        SimdLevel::Scalar => &[1],
        SimdLevel::Avx2 => &[1, 64],
        SimdLevel::Amx => &[16, 64, 256],
        _ => &[1, 16, 64, 256],
    }
}

/// One layer's matrices; all matmuls of a token run through them.
struct Layer {
    qkv: [QMatrix; 3],
    o: QMatrix,
    gate_up: [QMatrix; 2],
    down: QMatrix,
}

fn model_estimate(
    rng: &mut Rng,
    budget: Duration,
    levels: &[SimdLevel],
    decode_only: bool,
    tokens: &[usize],
) {
    struct Model {
        name: &'static str,
        hidden: usize,
        kv: usize,
        ffn: usize,
        layers: usize,
        attn: QType,
        v: [QType; 2],
        ffn_t: QType,
        down: [QType; 2],
        head: QType,
    }
    let models = [
        Model {
            name: "0.5B Q4_K_M",
            hidden: 896,
            kv: 128,
            ffn: 4864,
            layers: 24,
            attn: QType::Q5_0,
            v: [QType::Q8_0, QType::Q5_0],
            ffn_t: QType::Q5_0,
            down: [QType::Q6_K, QType::Q4_K],
            head: QType::Q8_0,
        },
        Model {
            name: "1.5B Q4_K_M",
            hidden: 1536,
            kv: 256,
            ffn: 8960,
            layers: 28,
            attn: QType::Q4_K,
            v: [QType::Q6_K, QType::Q4_K],
            ffn_t: QType::Q4_K,
            down: [QType::Q6_K, QType::Q4_K],
            head: QType::Q6_K,
        },
    ];
    for m in models {
        let layers: Vec<Layer> = (0..m.layers)
            .map(|l| Layer {
                qkv: [
                    random_matrix(m.attn, m.hidden, m.hidden, rng),
                    random_matrix(m.attn, m.kv, m.hidden, rng),
                    random_matrix(m.v[l % 2], m.kv, m.hidden, rng),
                ],
                o: random_matrix(m.attn, m.hidden, m.hidden, rng),
                gate_up: [
                    random_matrix(m.ffn_t, m.ffn, m.hidden, rng),
                    random_matrix(m.ffn_t, m.ffn, m.hidden, rng),
                ],
                down: random_matrix(m.down[l % 2], m.hidden, m.ffn, rng),
            })
            .collect();
        let head = random_matrix(m.head, 151936, m.hidden, rng);
        let bytes: usize = layers
            .iter()
            .map(|l| {
                l.qkv
                    .iter()
                    .chain([&l.o, &l.down])
                    .chain(&l.gate_up)
                    .map(|w| w.bytes().len())
                    .sum::<usize>()
            })
            .sum::<usize>()
            + head.bytes().len();
        for &level in levels.iter().filter(|&&l| l != SimdLevel::Scalar) {
            set_simd_level(level).expect("level");
            for threads in [1, 2] {
                set_num_threads(threads);
                for &n_tokens in tokens {
                    if decode_only && n_tokens > 1 {
                        continue;
                    }
                    // AMX = AVX-512 for one token; AVX2 only up to 64.
                    if (level == SimdLevel::Amx && n_tokens == 1)
                        || (level == SimdLevel::Avx2 && n_tokens > 64)
                    {
                        continue;
                    }
                    let mut s = Scratch::new();
                    let x = vec![0.5f32; n_tokens * m.hidden];
                    let xf = vec![0.25f32; n_tokens * m.ffn];
                    let mut q = vec![0f32; n_tokens * m.hidden];
                    let mut k = vec![0f32; n_tokens * m.kv];
                    let mut v = vec![0f32; n_tokens * m.kv];
                    let mut g = vec![0f32; n_tokens * m.ffn];
                    let mut u = vec![0f32; n_tokens * m.ffn];
                    let mut logits = vec![0f32; 151936];
                    let t = median_time(
                        || {
                            for l in &layers {
                                let [wq, wk, wv] = &l.qkv;
                                matmul_multi(
                                    &[wq, wk, wv],
                                    &x,
                                    n_tokens,
                                    &mut [&mut q, &mut k, &mut v],
                                    &mut s,
                                )
                                .unwrap();
                                matmul(&l.o, &x, n_tokens, &mut q, &mut s).unwrap();
                                let [wg, wu] = &l.gate_up;
                                matmul_multi(
                                    &[wg, wu],
                                    &x,
                                    n_tokens,
                                    &mut [&mut g, &mut u],
                                    &mut s,
                                )
                                .unwrap();
                                matmul(&l.down, &xf, n_tokens, &mut q, &mut s).unwrap();
                            }
                            // Logits only for the last token, as in prefill.
                            matmul(&head, &x[..m.hidden], 1, &mut logits, &mut s).unwrap();
                        },
                        budget * 3,
                    );
                    let s_ = t.as_secs_f64();
                    println!(
                        "model {:<22} {:>7} thr {} n_tokens {:>3}: {} per step (min {}) = {:7.1} tok/s (matmuls only; {:.0} MB weights, {:.1} GB/s)",
                        m.name,
                        format!("{level:?}"),
                        threads,
                        n_tokens,
                        fmt_time(t),
                        fmt_time(last_min()),
                        n_tokens as f64 / s_,
                        bytes as f64 / 1e6,
                        bytes as f64 / s_ / 1e9
                    );
                }
            }
        }
    }
}
