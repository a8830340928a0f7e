//! Fixed-point money: integer cents, parsed from and printed as decimal strings.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of money in cents. Never a float: parsing and arithmetic are exact.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::BigInt)]
pub struct Cents(pub i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("a price must be a decimal string such as \"1520.50\"")]
    Malformed,
    #[error("a price has at most 2 decimals")]
    TooManyDecimals,
    #[error("the amount is too large")]
    Overflow,
}

impl Cents {
    pub const ZERO: Cents = Cents(0);

    /// Parses a non-negative decimal with at most two decimals: `"1520"`, `"1520.5"`, `"1520.50"`.
    pub fn parse(text: &str) -> Result<Cents, MoneyError> {
        let (whole, frac) = match text.split_once('.') {
            Some((w, f)) => (w, f),
            None => (text, ""),
        };
        let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits_only(whole) || !digits_only(frac) {
            return Err(MoneyError::Malformed);
        }
        if text.contains('.') && frac.is_empty() {
            return Err(MoneyError::Malformed);
        }
        if frac.len() > 2 {
            return Err(MoneyError::TooManyDecimals);
        }
        let whole: i64 = whole.parse().map_err(|_| MoneyError::Overflow)?;
        let frac_cents: i64 = match frac.len() {
            0 => 0,
            1 => i64::from(frac.as_bytes()[0] - b'0') * 10,
            _ => frac.parse().map_err(|_| MoneyError::Malformed)?,
        };
        whole
            .checked_mul(100)
            .and_then(|c| c.checked_add(frac_cents))
            .map(Cents)
            .ok_or(MoneyError::Overflow)
    }

    /// `self × qty`, refusing overflow.
    pub fn times(self, qty: i64) -> Option<Cents> {
        self.0.checked_mul(qty).map(Cents)
    }

    /// `self × percent / 100`, rounded up to the next cent (a protection limit must never fall short).
    pub fn scaled_up_percent(self, percent: i64) -> Option<Cents> {
        let scaled = self.0.checked_mul(percent)?;
        Some(Cents(scaled.checked_add(99)?.div_euclid(100)))
    }

    /// The average price of `notional` spread over `qty` shares, rounded half up to a cent.
    pub fn average(notional: Cents, qty: i64) -> Option<Cents> {
        if qty <= 0 {
            return None;
        }
        let doubled = notional.0.checked_mul(2)?;
        Some(Cents(
            doubled.checked_add(qty)?.div_euclid(qty.checked_mul(2)?),
        ))
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Serialize for Cents {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An order's limit price as the API takes it: 0.01 to 9999999.99, at most two decimals, no
/// leading zeros. Small enough that any quantity up to `MAX_QTY` times it fits in cents.
pub const PRICE_PATTERN: &str = r"^([1-9][0-9]{0,6}(\.[0-9]{1,2})?|0\.([1-9][0-9]?|0[1-9]))$";

/// An amount of cash as the operator's API takes it (an account's opening cash): no leading
/// zeros, at most two decimals, under 10^15.
pub const AMOUNT_PATTERN: &str = r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?$";

impl Cents {
    /// Parses an amount of cash, holding it to exactly what [`AMOUNT_PATTERN`] says.
    pub fn parse_amount(text: &str) -> Result<Cents, String> {
        match Cents::parse_plain(text, 15) {
            Some(amount) => Ok(amount),
            None => Err(format!(
                "an amount is a decimal string under 10^15 with at most two decimals and no \
                 leading zeros, not {text:?}"
            )),
        }
    }

    /// Parses an order's limit price, holding it to exactly what [`PRICE_PATTERN`] says.
    pub fn parse_price(text: &str) -> Result<Cents, String> {
        match Cents::parse_plain(text, 7) {
            Some(price) if price.0 > 0 => Ok(price),
            _ => Err(format!(
                "limit_price must be a decimal string from 0.01 to 9999999.99 with at most two \
                 decimals and no leading zeros, not {text:?}"
            )),
        }
    }

    /// A decimal written plainly: at most `max_whole` whole digits with no leading zero, then
    /// at most two decimals.
    fn parse_plain(text: &str, max_whole: usize) -> Option<Cents> {
        let (whole, frac) = match text.split_once('.') {
            Some((whole, frac)) => (whole, Some(frac)),
            None => (text, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let whole_ok =
            digits(whole) && whole.len() <= max_whole && (whole == "0" || !whole.starts_with('0'));
        let frac_ok = frac.is_none_or(|f| digits(f) && f.len() <= 2);
        (whole_ok && frac_ok)
            .then(|| Cents::parse(text).ok())
            .flatten()
    }
}

impl<'de> Deserialize<'de> for Cents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Cents::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Cents {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "An amount of money: a decimal string with at most 2 decimals",
            ))
            .examples(["1520.50"])
            .pattern(Some(r"^\d+(\.\d{1,2})?$"))
            .into()
    }
}

impl utoipa::ToSchema for Cents {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_price_is_held_to_its_pattern() {
        for ok in [
            "0.01",
            "0.1",
            "0.10",
            "0.5",
            "1",
            "1.5",
            "1520.50",
            "9999999.99",
            "10",
        ] {
            assert!(Cents::parse_price(ok).is_ok(), "{ok}");
        }
        for bad in [
            "0", "0.0", "0.00", "00.50", "01", "1.", ".5", "1.234", "10000000", "-1", "1e3", " 1",
            "1,5", "",
        ] {
            assert!(Cents::parse_price(bad).is_err(), "{bad}");
        }
        assert_eq!(Cents::parse_price("1520.5"), Ok(Cents(152_050)));
    }

    #[test]
    fn an_amount_is_held_to_its_pattern() {
        for ok in ["0", "0.5", "100000.00", "999999999999999.99"] {
            assert!(Cents::parse_amount(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "00",
            "01.00",
            "1.",
            "1.234",
            "1000000000000000",
            "-1",
            " 1",
        ] {
            assert!(Cents::parse_amount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_and_prints_exactly() {
        assert_eq!(Cents::parse("1520.50"), Ok(Cents(152_050)));
        assert_eq!(Cents::parse("1520.5"), Ok(Cents(152_050)));
        assert_eq!(Cents::parse("1520"), Ok(Cents(152_000)));
        assert_eq!(Cents::parse("0.07"), Ok(Cents(7)));
        assert_eq!(Cents(152_050).to_string(), "1520.50");
        assert_eq!(Cents(7).to_string(), "0.07");
        assert_eq!(Cents(-7).to_string(), "-0.07");
    }

    #[test]
    fn refuses_what_is_not_a_plain_decimal() {
        for bad in [
            "", ".5", "5.", "-1", "+1", "1e3", "1.2.3", " 1", "abc", "1,5",
        ] {
            assert_eq!(Cents::parse(bad), Err(MoneyError::Malformed), "{bad:?}");
        }
        assert_eq!(Cents::parse("1.005"), Err(MoneyError::TooManyDecimals));
        assert_eq!(
            Cents::parse("99999999999999999999"),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn protection_rounds_up_and_average_rounds_half_up() {
        assert_eq!(Cents(100).scaled_up_percent(105), Some(Cents(105)));
        assert_eq!(Cents(152_050).scaled_up_percent(105), Some(Cents(159_653)));
        assert_eq!(Cents::average(Cents(301), 2), Some(Cents(151)));
        assert_eq!(Cents::average(Cents(300), 2), Some(Cents(150)));
        assert_eq!(Cents::average(Cents(1000), 3), Some(Cents(333)));
        assert_eq!(Cents::average(Cents(1000), 0), None);
        assert_eq!(Cents(i64::MAX).times(2), None);
        assert_eq!(Cents(i64::MAX / 100).scaled_up_percent(100), None);
        assert_eq!(Cents::average(Cents(i64::MAX / 2), i64::MAX), None);
    }
}
