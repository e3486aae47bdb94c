//! `codegen bench speed`: prefill and decode throughput and peak memory, and
//! optionally candle's stock `quantized_qwen2` on the same file in the same
//! run for comparison.

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
    /// Print JSON only: an object for one model, an array for several.
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
}

fn ours(model: &LoadedModel, prompt: &[u32], gen: usize, runs: usize) -> Result<Figures> {
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    for _ in 0..runs {
        let mut session = model.model.new_session()?;
        let start = Instant::now();
        let mut logits = model.model.prefill(&mut session, prompt)?;
        prefill.push(prompt.len() as f64 / start.elapsed().as_secs_f64());
        let start = Instant::now();
        let sampler = codegen_model::Sampler::new(codegen_model::SamplingConfig::default());
        for _ in 0..gen {
            let next = sampler.greedy_token(&logits);
            model
                .model
                .forward_into(&mut session, &[next], &mut logits)?;
        }
        decode.push(gen as f64 / start.elapsed().as_secs_f64());
    }
    Ok(Figures {
        prefill: median(&mut prefill),
        decode: median(&mut decode),
    })
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
    })
}

pub fn run(args: SpeedArgs) -> Result<()> {
    crate::set_threads(args.threads);
    let device = args.device.kind().open()?;
    let store = Store::from_env();
    let specs: Vec<Option<String>> = if args.model.is_empty() {
        vec![None]
    } else {
        args.model.iter().cloned().map(Some).collect()
    };
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let runs = args.runs.max(1);
    let mut results = Vec::new();
    for spec in specs {
        let (name, path) = resolve_model(&store, spec.as_deref())?;
        let model = LoadedModel::load(&name, &path, &device)
            .with_context(|| format!("cannot load {}", path.display()))?;
        let prompt = prompt_tokens(&model, args.prompt_tokens)?;
        // One short warm-up so page faults of the first touch are not timed.
        ours(&model, &prompt[..prompt.len().min(16)], 2, 1)?;
        let figures = ours(&model, &prompt, args.gen_tokens, runs)?;
        let peak = peak_rss_mib();
        let mut result = serde_json::json!({
            "model": name,
            "file_mib": model.model.file_size() as f64 / (1024.0 * 1024.0),
            "device": args.device.as_str(),
            "threads": threads,
            "prompt_tokens": prompt.len(),
            "gen_tokens": args.gen_tokens,
            "runs": runs,
            "prefill_tokens_per_s": figures.prefill,
            "decode_tokens_per_s": figures.decode,
            "peak_rss_mib": peak,
        });
        drop(model);
        if !args.json {
            println!(
                "{name}: prefill {:.1} tok/s ({} tokens), decode {:.1} tok/s ({} tokens), peak RSS {:.0} MiB, {threads} threads, median of {runs}",
                figures.prefill,
                prompt.len(),
                figures.decode,
                args.gen_tokens,
                peak.unwrap_or(0.0)
            );
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
        results.push(result);
    }
    if args.json {
        if results.len() == 1 {
            println!("{}", results[0]);
        } else {
            println!("{}", serde_json::Value::Array(results));
        }
    }
    Ok(())
}
