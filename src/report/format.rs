//! How numbers are printed in tables: accuracies in percent with 2 decimals and their 95%
//! interval (`86.21 ± 0.35`), p-values to 3 significant digits, seconds with 2 decimals.
//! A missing value prints as `—`.

use super::stats::Estimate;

/// The mark of a missing value.
pub const MISSING: &str = "—";

/// A fraction as percent: `0.86214` → `86.21`.
pub fn pct(v: Option<f64>) -> String {
    fixed(v.map(|v| 100.0 * v), 2)
}

/// `v` with `decimals` decimals, or `—`; a value that rounds to zero prints without a sign.
pub fn fixed(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_finite() => unsigned_zero(format!("{:.*}", decimals, v)),
        _ => MISSING.into(),
    }
}

/// `-0.00` as `0.00`.
fn unsigned_zero(s: String) -> String {
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => s,
    }
}

/// `mean ± half-width` of an estimate scaled by `k` with `decimals` decimals; the mean alone
/// when there is no interval (one seed).
pub fn pm(e: Option<Estimate>, k: f64, decimals: usize) -> String {
    let Some(e) = e.map(|e| e.scaled(k)) else {
        return MISSING.into();
    };
    match e.half_width {
        Some(h) if h.is_finite() => {
            format!(
                "{} ± {}",
                fixed(Some(e.mean), decimals),
                fixed(Some(h), decimals)
            )
        }
        _ => fixed(Some(e.mean), decimals),
    }
}

/// A fraction estimate in percent: `86.21 ± 0.35`.
pub fn pct_pm(e: Option<Estimate>) -> String {
    pm(e, 100.0, 2)
}

/// A signed value: `+1.25`, `-0.40`, and `+0.00` for anything that rounds to zero.
pub fn signed(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_finite() && v >= 0.0 => format!("+{}", fixed(Some(v), decimals)),
        Some(v) if v.is_finite() => {
            let s = fixed(Some(v), decimals);
            if s.starts_with('-') {
                s
            } else {
                format!("+{s}")
            }
        }
        _ => MISSING.into(),
    }
}

/// A p-value to 3 significant digits: `0.0305`, `0.500`, `1.00`; below 1e-4 in
/// scientific notation (`1.23e-5`).
pub fn p_value(p: f64) -> String {
    if !p.is_finite() {
        return MISSING.into();
    }
    if p <= 0.0 {
        return "<1e-300".into();
    }
    if p < 1e-4 {
        return format!("{p:.2e}");
    }
    let magnitude = p.log10().floor() as i32;
    let decimals = (2 - magnitude).max(0) as usize;
    format!("{p:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_keep_three_significant_digits() {
        assert_eq!(p_value(0.030_46), "0.0305");
        assert_eq!(p_value(0.5), "0.500");
        assert_eq!(p_value(1.0), "1.00");
        assert_eq!(p_value(0.000_012_34), "1.23e-5");
    }

    #[test]
    fn accuracies_print_in_percent_with_their_interval() {
        let e = Estimate::of(&[0.8, 0.81, 0.82]);
        assert_eq!(pct_pm(e), "81.00 ± 2.48");
        assert_eq!(pct_pm(Estimate::of(&[0.5])), "50.00");
        assert_eq!(pct_pm(None), "—");
        assert_eq!(signed(Some(-0.0), 1), "+0.0");
        assert_eq!(signed(Some(-0.001), 2), "+0.00");
        assert_eq!(signed(Some(-0.4), 2), "-0.40");
        assert_eq!(fixed(Some(-0.0001), 2), "0.00");
    }
}
