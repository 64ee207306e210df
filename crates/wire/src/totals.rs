//! Xero's per-line totals rule, shared by everything of ours that must agree with Xero (the proxy's
//! shift invoices; the client core's live totals). The sandbox keeps its own copy on purpose: it
//! stands in for Xero and depends on nothing of ours.
//!
//! A line amount is quantity × unit amount rounded to 2 decimals; each line's tax is computed from its
//! line amount at its rate (for tax-inclusive lines, the tax contained in it) and rounded half away from
//! zero to 2 decimals; totals are sums of lines.
//!
//! Arithmetic is checked: amounts past what a decimal holds (about 7.9 × 10^28) answer `None`, never
//! a panic, whatever a form or a file holds. Validated documents never come near it.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::documents::TaxMode;

pub fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

pub fn line_amount(quantity: Decimal, unit_amount: Decimal) -> Option<Decimal> {
    quantity.checked_mul(unit_amount).map(round2)
}

/// The tax of one line at `rate_percent`.
pub fn line_tax(amount: Decimal, rate_percent: Decimal, mode: TaxMode) -> Option<Decimal> {
    let taxed = amount.checked_mul(rate_percent)?;
    match mode {
        TaxMode::NoTax => Some(Decimal::ZERO),
        TaxMode::Exclusive => taxed.checked_div(Decimal::ONE_HUNDRED).map(round2),
        TaxMode::Inclusive => taxed
            .checked_div(Decimal::ONE_HUNDRED.checked_add(rate_percent)?)
            .map(round2),
    }
}

/// The sum of `amounts`, or `None` past a decimal's range.
pub fn sum(amounts: impl IntoIterator<Item = Decimal>) -> Option<Decimal> {
    amounts
        .into_iter()
        .try_fold(Decimal::ZERO, |total, a| total.checked_add(a))
}

/// The invoice total of lines given as (line amount, rate percent).
pub fn total(
    lines: impl IntoIterator<Item = (Decimal, Decimal)>,
    mode: TaxMode,
) -> Option<Decimal> {
    let mut out = Decimal::ZERO;
    for (amount, rate) in lines {
        let line = match mode {
            TaxMode::Exclusive => amount.checked_add(line_tax(amount, rate, mode)?)?,
            TaxMode::Inclusive | TaxMode::NoTax => amount,
        };
        out = out.checked_add(line)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn per_line_rounding_is_half_away_from_zero() {
        // Three lines of 0.10 at 15%: 0.015 of tax each rounds to 0.02, so 0.36, where tax on the
        // sum would give 0.35.
        let lines = [(d("0.10"), d("15")); 3];
        assert_eq!(total(lines, TaxMode::Exclusive), Some(d("0.36")));
        assert_eq!(total(lines, TaxMode::Inclusive), Some(d("0.30")));
        assert_eq!(
            line_tax(d("115.00"), d("15"), TaxMode::Inclusive),
            Some(d("15.00"))
        );
        assert_eq!(line_amount(d("3"), d("3.333")), Some(d("10.00")));
    }

    proptest::proptest! {
        /// Whatever the amounts, totals are a number or `None`: never a panic ("Addition
        /// overflowed" was one).
        #[test]
        fn totals_never_panic(
            lines in proptest::collection::vec((proptest::num::i128::ANY, 0u32..=28, proptest::num::i64::ANY, 0u32..=4), 0..20),
            mode in proptest::sample::select(vec![TaxMode::Exclusive, TaxMode::Inclusive, TaxMode::NoTax]),
        ) {
            let decimal = |m: i128, s: u32| Decimal::try_from_i128_with_scale(m % 79_228_162_514_264_337_593_543_950_335, s).unwrap_or_default();
            let priced: Vec<(Decimal, Decimal)> = lines
                .iter()
                .map(|(q, qs, u, us)| {
                    let amount = line_amount(decimal(*q, *qs), Decimal::new(*u, *us)).unwrap_or(Decimal::MAX);
                    (amount, Decimal::new(*u % 10_000, 2))
                })
                .collect();
            let _ = total(priced.clone(), mode);
            let _ = sum(priced.iter().map(|(a, _)| *a));
            for (a, r) in priced {
                let _ = line_tax(a, r, mode);
            }
        }

        /// Within the bounds validation sets, nothing is ever out of range.
        #[test]
        fn validated_amounts_always_total(
            lines in proptest::collection::vec((0i64..=1_000_000_000, -99_999_999_999_999i64..=99_999_999_999_999), 1..200),
        ) {
            let priced: Vec<(Decimal, Decimal)> = lines
                .iter()
                .map(|(q, u)| (line_amount(Decimal::new(*q, 0), Decimal::new(*u, 2)).unwrap(), Decimal::new(15, 0)))
                .collect();
            proptest::prop_assert!(total(priced, TaxMode::Exclusive).is_some());
        }
    }
}
