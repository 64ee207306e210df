//! Xero's per-line totals rule, shared by everything of ours that must agree with Xero (the proxy's
//! shift invoices; the client core's live totals). The sandbox keeps its own copy on purpose: it
//! stands in for Xero and depends on nothing of ours.
//!
//! A line amount is quantity × unit amount rounded to 2 decimals; each line's tax is computed from its
//! line amount at its rate (for tax-inclusive lines, the tax contained in it) and rounded half away from
//! zero to 2 decimals; totals are sums of lines.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::documents::TaxMode;

pub fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

pub fn line_amount(quantity: Decimal, unit_amount: Decimal) -> Decimal {
    round2(quantity * unit_amount)
}

/// The tax of one line at `rate_percent`.
pub fn line_tax(amount: Decimal, rate_percent: Decimal, mode: TaxMode) -> Decimal {
    match mode {
        TaxMode::NoTax => Decimal::ZERO,
        TaxMode::Exclusive => round2(amount * rate_percent / Decimal::ONE_HUNDRED),
        TaxMode::Inclusive => round2(amount * rate_percent / (Decimal::ONE_HUNDRED + rate_percent)),
    }
}

/// The invoice total of lines given as (line amount, rate percent).
pub fn total(lines: impl IntoIterator<Item = (Decimal, Decimal)>, mode: TaxMode) -> Decimal {
    lines
        .into_iter()
        .map(|(amount, rate)| match mode {
            TaxMode::Exclusive => amount + line_tax(amount, rate, mode),
            TaxMode::Inclusive | TaxMode::NoTax => amount,
        })
        .sum()
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
        assert_eq!(total(lines, TaxMode::Exclusive), d("0.36"));
        assert_eq!(total(lines, TaxMode::Inclusive), d("0.30"));
        assert_eq!(
            line_tax(d("115.00"), d("15"), TaxMode::Inclusive),
            d("15.00")
        );
        assert_eq!(line_amount(d("3"), d("3.333")), d("10.00"));
    }
}
