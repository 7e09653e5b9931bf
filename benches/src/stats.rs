//! Order statistics of samples (nearest-rank percentiles).

/// Percentiles of a set of samples, in the samples' unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Smallest sample.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

/// The nearest-rank `q` quantile (0..=1) of sorted samples.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summarises `samples` (sorts them in place).
pub fn summarize(samples: &mut [f64]) -> Summary {
    samples.sort_by(|a, b| a.total_cmp(b));
    let n = samples.len();
    let mean = if n == 0 {
        f64::NAN
    } else {
        samples.iter().sum::<f64>() / n as f64
    };
    Summary {
        n,
        min: samples.first().copied().unwrap_or(f64::NAN),
        p50: quantile(samples, 0.5),
        p99: quantile(samples, 0.99),
        p999: quantile(samples, 0.999),
        mean,
    }
}

/// Median of `samples` (sorts them in place).
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    quantile(samples, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<f64> = (1..=1000).rev().map(f64::from).collect();
        let s = summarize(&mut v);
        assert_eq!(
            (s.n, s.min, s.p50, s.p99, s.p999),
            (1000, 1.0, 500.0, 990.0, 999.0)
        );
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
