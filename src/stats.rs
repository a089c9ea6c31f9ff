//! Means, confidence intervals and paired t-tests over seeds.
//!
//! A study repeats each setting over a few seeds (often 3 to 10), so the normal
//! approximation is too narrow: intervals and tests use Student's t distribution, whose CDF
//! is computed from the regularized incomplete beta function and inverted by bisection.
//! Nothing here returns NaN: too few values or zero variance give `None` or a
//! [`PairedTest::NotTested`] with its reason.

/// The arithmetic mean, `None` for no values.
pub fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    Some(xs.iter().sum::<f64>() / xs.len() as f64)
}

/// The sample standard deviation `s = sqrt(sum (x - mean)^2 / (n - 1))`, `None` for n < 2.
pub fn sample_std(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let m = mean(xs)?;
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    Some((ss / (xs.len() - 1) as f64).sqrt())
}

/// `ln Γ(x)` for `x > 0` (Lanczos approximation, Numerical Recipes `gammln`; relative error
/// below 2e-10, ample for quantiles printed to 3 decimals).
fn ln_gamma(x: f64) -> f64 {
    const COF: [f64; 6] = [
        76.180_091_729_471_46,
        -86.505_320_329_416_77,
        24.014_098_240_830_91,
        -1.231_739_572_450_155,
        0.120_865_097_386_617_9e-2,
        -0.539_523_938_495_3e-5,
    ];
    let tmp = x + 5.5;
    let tmp = tmp - (x + 0.5) * tmp.ln();
    let mut y = x;
    let mut ser = 1.000_000_000_190_015;
    for c in COF {
        y += 1.0;
        ser += c / y;
    }
    -tmp + (2.506_628_274_631_000_5 * ser / x).ln()
}

/// The continued fraction of the incomplete beta function by the modified Lentz method
/// (Numerical Recipes `betacf`); converges fast for `x < (a + 1) / (a + b + 2)`.
fn betacf(a: f64, b: f64, x: f64) -> f64 {
    const MAX_ITER: usize = 500;
    const EPS: f64 = 1e-15;
    const FPMIN: f64 = 1e-300;
    let guard = |v: f64| if v.abs() < FPMIN { FPMIN } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / guard(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=MAX_ITER {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / guard(1.0 + aa * d);
        c = guard(1.0 + aa / c);
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / guard(1.0 + aa * d);
        c = guard(1.0 + aa / c);
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// The regularized incomplete beta function
/// `I_x(a, b) = B(x; a, b) / B(a, b)`, for `a, b > 0`, `x` clamped to [0, 1].
pub fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * betacf(a, b, x) / a
    } else {
        1.0 - front * betacf(b, a, 1.0 - x) / b
    }
}

/// Student's t CDF with `df` degrees of freedom:
/// `P(T <= t) = 1 - I_x(df/2, 1/2) / 2` for `t >= 0`, with `x = df / (df + t^2)`, and by
/// symmetry for `t < 0`.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The quantile `q` with `P(T <= q) = p` of Student's t with `df` degrees of freedom, by
/// bisection on [`t_cdf`] (the CDF is increasing, so bisection always converges).
/// `p` is clamped to (0, 1) and `df` to at least 1e-3.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    let p = p.clamp(1e-15, 1.0 - 1e-15);
    let df = df.max(1e-3);
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    let mut hi = 1.0;
    while t_cdf(hi, df) < p && hi < 1e15 {
        hi *= 2.0;
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-12 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// A mean over seeds with its 95% confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation; `None` for n < 2.
    pub std: Option<f64>,
    /// `t(0.975, n - 1) * s / sqrt(n)`; `None` for n < 2.
    pub half_width: Option<f64>,
}

impl Estimate {
    /// The estimate of the finite values of `xs`, `None` when there are none.
    pub fn of(xs: &[f64]) -> Option<Estimate> {
        let finite: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        let mean = mean(&finite)?;
        let std = sample_std(&finite);
        let n = finite.len();
        let half_width = std.map(|s| ci_half_width(s, n));
        Some(Estimate {
            n,
            mean,
            std,
            half_width,
        })
    }

    /// The same estimate with mean, std and half-width multiplied by `k` (e.g. 100 for
    /// percent).
    pub fn scaled(self, k: f64) -> Estimate {
        Estimate {
            mean: self.mean * k,
            std: self.std.map(|s| s * k.abs()),
            half_width: self.half_width.map(|h| h * k.abs()),
            ..self
        }
    }
}

/// The 95% half-width `t(0.975, n - 1) * s / sqrt(n)`, for n >= 2.
pub fn ci_half_width(std: f64, n: usize) -> f64 {
    let n = n.max(2) as f64;
    t_quantile(0.975, n - 1.0) * std / n.sqrt()
}

/// The outcome of a two-sided paired t-test.
#[derive(Clone, Debug, PartialEq)]
pub enum PairedTest {
    Tested {
        /// Number of pairs.
        n: usize,
        /// Mean of the differences `a - b`.
        mean_diff: f64,
        /// `t = mean(d) / (s_d / sqrt(n))`.
        t: f64,
        /// `n - 1`.
        df: usize,
        /// `P(|T| >= |t|) = I_x(df/2, 1/2)` with `x = df / (df + t^2)`.
        p: f64,
    },
    /// Why no test was possible (`n<2`, `zero variance`).
    NotTested { n: usize, reason: String },
}

/// The two-sided paired t-test of `a` against `b`, pair `i` being `(a[i], b[i])` (the
/// caller matches pairs by seed). Pairs with a non-finite value are dropped. Fewer than 2
/// pairs, or differences that are all equal (the statistic is undefined), are not tested.
pub fn paired_t_test(a: &[f64], b: &[f64]) -> PairedTest {
    let d: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| x - y)
        .filter(|d| d.is_finite())
        .collect();
    let n = d.len();
    let (Some(mean_diff), Some(s)) = (mean(&d), sample_std(&d)) else {
        return PairedTest::NotTested {
            n,
            reason: "n<2".into(),
        };
    };
    // Differences equal up to rounding (e.g. 0.73 - 0.70 and 0.74 - 0.71) count as equal.
    let scale = a.iter().chain(b).fold(0.0f64, |m, x| m.max(x.abs()));
    if s <= 1e-10 * scale {
        return PairedTest::NotTested {
            n,
            reason: "zero variance".into(),
        };
    }
    let t = mean_diff / (s / (n as f64).sqrt());
    let df = n - 1;
    let p = incomplete_beta(df as f64 / 2.0, 0.5, df as f64 / (df as f64 + t * t));
    PairedTest::Tested {
        n,
        mean_diff,
        t,
        df,
        p: p.clamp(0.0, 1.0),
    }
}

/// Holm's step-down adjustment of `p` for `m = p.len()` tests, which controls the
/// family-wise error rate (the chance of any false rejection) at the level it is compared
/// with, whatever the tests' dependence. With the p-values sorted ascending,
/// `p_adj(i) = max_{j <= i} min(1, (m - j + 1) * p(j))` (1-based ranks); returned in the
/// input's order. Rejecting where `p_adj < alpha` is Holm's procedure.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]).then(a.cmp(&b)));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_multiplies_the_sorted_p_values_by_the_tests_left_and_keeps_them_monotone() {
        // By hand: sorted 0.01, 0.02, 0.04, 0.30 -> 4*0.01 = 0.04, 3*0.02 = 0.06,
        // 2*0.04 = 0.08, max(1*0.30, 0.08) = 0.30.
        let adjusted = holm(&[0.04, 0.30, 0.01, 0.02]);
        let expected = [0.08, 0.30, 0.04, 0.06];
        for (a, e) in adjusted.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{adjusted:?}");
        }
        // Monotone: sorted 0.01, 0.011 -> 2*0.01 = 0.02, then max(0.02, 1*0.011) = 0.02.
        assert_eq!(holm(&[0.011, 0.01]), vec![0.02, 0.02]);
        assert_eq!(holm(&[0.6, 0.5]), vec![1.0, 1.0]);
        assert_eq!(holm(&[0.03]), vec![0.03]);
        assert!(holm(&[]).is_empty());
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn t_quantiles_match_the_printed_tables() {
        for (df, q) in [
            (1.0, 12.706),
            (2.0, 4.303),
            (4.0, 2.776),
            (9.0, 2.262),
            (30.0, 2.042),
        ] {
            let got = t_quantile(0.975, df);
            assert!(close(got, q, 5e-4), "df {df}: {got} vs {q}");
        }
    }

    #[test]
    fn the_t_cdf_is_symmetric_and_a_half_at_zero() {
        assert!(close(t_cdf(0.0, 5.0), 0.5, 1e-12));
        assert!(close(t_cdf(1.3, 7.0) + t_cdf(-1.3, 7.0), 1.0, 1e-12));
        // df = 1 is the Cauchy distribution: P(T <= 1) = 3/4.
        assert!(close(t_cdf(1.0, 1.0), 0.75, 1e-9));
        assert!(close(t_quantile(0.025, 4.0), -2.776, 5e-4));
    }

    #[test]
    fn the_incomplete_beta_matches_closed_forms() {
        // I_x(1, 1) = x; I_x(2, 1) = x^2; I_x(1, 2) = 1 - (1 - x)^2.
        assert!(close(incomplete_beta(1.0, 1.0, 0.3), 0.3, 1e-9));
        assert!(close(incomplete_beta(2.0, 1.0, 0.6), 0.36, 1e-9));
        assert!(close(incomplete_beta(1.0, 2.0, 0.2), 0.36, 1e-9));
    }

    #[test]
    fn differences_one_to_four_give_t_3_873_and_p_0_0305() {
        let PairedTest::Tested {
            n,
            mean_diff,
            t,
            df,
            p,
        } = paired_t_test(&[2.0, 4.0, 6.0, 8.0], &[1.0, 2.0, 3.0, 4.0])
        else {
            panic!("not tested");
        };
        assert_eq!((n, df), (4, 3));
        assert!(close(mean_diff, 2.5, 1e-12));
        assert!(close(t, 3.873, 5e-4), "t = {t}");
        assert!(close(p, 0.0305, 5e-4), "p = {p}");
    }

    #[test]
    fn a_single_pair_or_constant_differences_are_not_tested() {
        assert_eq!(
            paired_t_test(&[1.0], &[0.5]),
            PairedTest::NotTested {
                n: 1,
                reason: "n<2".into()
            }
        );
        assert_eq!(
            paired_t_test(&[1.0, 2.0], &[0.5, 1.5]),
            PairedTest::NotTested {
                n: 2,
                reason: "zero variance".into()
            }
        );
    }

    #[test]
    fn an_estimate_of_three_seeds_uses_t_with_two_degrees_of_freedom() {
        let e = Estimate::of(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(e.n, 3);
        assert!(close(e.mean, 2.0, 1e-12));
        assert!(close(e.std.unwrap(), 1.0, 1e-12));
        assert!(close(e.half_width.unwrap(), 4.303 / 3f64.sqrt(), 1e-3));
        let single = Estimate::of(&[0.5, f64::NAN]).unwrap();
        assert_eq!((single.n, single.std, single.half_width), (1, None, None));
        assert!(Estimate::of(&[]).is_none());
    }
}
