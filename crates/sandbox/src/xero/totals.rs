//! Xero's per-line totals rule, in exact decimal arithmetic.
//!
//! A line amount is quantity × unit amount (less any discount) rounded to 2 decimals; each line's tax is
//! computed from its line amount at its tax rate (for tax-inclusive lines, the tax contained in the
//! amount) and rounded half away from zero to 2 decimals; totals are sums of lines.

use rust_decimal::{Decimal, RoundingStrategy};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TaxMode {
    Exclusive,
    Inclusive,
    NoTax,
}

impl TaxMode {
    /// Xero's `LineAmountTypes`, matched case-insensitively.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "exclusive" => Some(Self::Exclusive),
            "inclusive" => Some(Self::Inclusive),
            "notax" => Some(Self::NoTax),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exclusive => "Exclusive",
            Self::Inclusive => "Inclusive",
            Self::NoTax => "NoTax",
        }
    }
}

pub fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// quantity × unit amount, less `discount_rate` percent, rounded to cents.
pub fn line_amount(
    quantity: Decimal,
    unit_amount: Decimal,
    discount_rate: Option<Decimal>,
) -> Decimal {
    let gross = quantity * unit_amount;
    let net = match discount_rate {
        Some(rate) => gross * (Decimal::ONE_HUNDRED - rate) / Decimal::ONE_HUNDRED,
        None => gross,
    };
    round2(net)
}

/// The tax of one line at `rate_percent`.
pub fn line_tax(line_amount: Decimal, rate_percent: Decimal, mode: TaxMode) -> Decimal {
    match mode {
        TaxMode::NoTax => Decimal::ZERO,
        TaxMode::Exclusive => round2(line_amount * rate_percent / Decimal::ONE_HUNDRED),
        TaxMode::Inclusive => {
            round2(line_amount * rate_percent / (Decimal::ONE_HUNDRED + rate_percent))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub sub_total: Decimal,
    pub total_tax: Decimal,
    pub total: Decimal,
}

/// Totals of lines given as (line amount, tax).
pub fn totals(lines: impl IntoIterator<Item = (Decimal, Decimal)>, mode: TaxMode) -> Totals {
    let (amounts, tax) = lines
        .into_iter()
        .fold((Decimal::ZERO, Decimal::ZERO), |(a, t), (la, lt)| {
            (a + la, t + lt)
        });
    match mode {
        TaxMode::Inclusive => Totals {
            sub_total: amounts - tax,
            total_tax: tax,
            total: amounts,
        },
        TaxMode::Exclusive | TaxMode::NoTax => Totals {
            sub_total: amounts,
            total_tax: tax,
            total: amounts + tax,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn exclusive_tax_is_added_per_line_and_rounded_half_away() {
        // 0.30 at 15% is 0.045 of tax: rounds away from zero to 0.05 (banker's rounding would give 0.04).
        let la = line_amount(d("1"), d("0.30"), None);
        let tax = line_tax(la, d("15"), TaxMode::Exclusive);
        assert_eq!(tax, d("0.05"));
        let t = totals([(la, tax), (d("100.00"), d("15.00"))], TaxMode::Exclusive);
        assert_eq!(
            (t.sub_total, t.total_tax, t.total),
            (d("100.30"), d("15.05"), d("115.35"))
        );
    }

    #[test]
    fn inclusive_tax_is_contained_in_the_amount() {
        let la = line_amount(d("2"), d("57.50"), None);
        let tax = line_tax(la, d("15"), TaxMode::Inclusive);
        assert_eq!(tax, d("15.00"));
        let t = totals([(la, tax)], TaxMode::Inclusive);
        assert_eq!(
            (t.sub_total, t.total_tax, t.total),
            (d("100.00"), d("15.00"), d("115.00"))
        );
    }

    #[test]
    fn no_tax_has_none() {
        let la = line_amount(d("3"), d("3.333"), None);
        assert_eq!(la, d("10.00"));
        assert_eq!(line_tax(la, d("20"), TaxMode::NoTax), Decimal::ZERO);
    }

    #[test]
    fn discount_applies_before_rounding() {
        assert_eq!(line_amount(d("1"), d("99.99"), Some(d("10"))), d("89.99"));
    }
}
