//! Medians, spreads and ratios of repeated measurements.

/// What a list of samples of one figure says: how many, the median, the
/// smallest and the largest.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// The median (the mean of the two middle samples for an even count).
    pub median: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
}

impl Summary {
    /// Summarises `samples`, ignoring NaNs; `None` when no sample is left.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Summary {
            n,
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    /// The spread as a fraction of the median: (max − min) / median
    /// (0 for a single sample; infinite for a zero median with a spread).
    pub fn spread(&self) -> f64 {
        let width = self.max - self.min;
        if width == 0.0 {
            0.0
        } else {
            width / self.median.abs()
        }
    }
}

/// The median of `a[i] / b[i]` over the rounds where both were measured
/// (pairs with a NaN or a zero divisor are skipped): the ratio of two
/// interleaved series, robust to a machine that slows down between rounds.
pub fn paired_ratio(a: &[f64], b: &[f64]) -> Option<Summary> {
    let ratios: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| !x.is_nan() && !y.is_nan() && **y != 0.0)
        .map(|(x, y)| x / y)
        .collect();
    Summary::of(&ratios)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = Summary::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.n, s.median, s.min, s.max), (3, 3.0, 1.0, 5.0));
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median, 2.5);
    }

    #[test]
    fn nans_are_ignored_and_nothing_gives_none() {
        let s = Summary::of(&[f64::NAN, 2.0, f64::NAN]).unwrap();
        assert_eq!((s.n, s.median), (1, 2.0));
        assert_eq!(s.spread(), 0.0);
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[f64::NAN]).is_none());
    }

    #[test]
    fn spread_is_relative_to_the_median() {
        let s = Summary::of(&[9.0, 10.0, 11.0]).unwrap();
        assert!((s.spread() - 0.2).abs() < 1e-12);
    }

    #[test]
    fn paired_ratio_uses_only_rounds_with_both_values() {
        let sion = [1.0, 2.0, f64::NAN, 0.0];
        let linux = [2.0, 2.0, 5.0, 8.0];
        // Pairs: 2/1 = 2 and 2/2 = 1 (round 2 lacks SiON, round 3 divides by 0).
        let r = paired_ratio(&linux, &sion).unwrap();
        assert_eq!(r.n, 2);
        assert_eq!(r.median, 1.5);
        assert!(paired_ratio(&[1.0], &[f64::NAN]).is_none());
    }
}
