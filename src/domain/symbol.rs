//! A listed symbol: the one rule for what may name a share, wherever a symbol comes in.

use std::fmt;

/// 1 to 32 upper-case letters, digits, `-` or `&` (NSE's own symbols, such as `M&M`). `CASH` is
/// not a symbol: it names the cash asset of every account.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub struct Symbol(String);

/// What [`Symbol::parse`] takes, for the API's description.
pub const SYMBOL_PATTERN: &str = "^[A-Z0-9&-]{1,32}$";

pub const SYMBOL_RULE: &str =
    "a symbol is 1 to 32 upper-case letters, digits, '-' or '&', and not CASH";

impl Symbol {
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let well_formed = !text.is_empty()
            && text.len() <= 32
            && text
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'&');
        if well_formed && text != super::CASH {
            Ok(Self(text.to_owned()))
        } else {
            Err(SYMBOL_RULE)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_symbol() {
        for good in ["INFY", "M&M", "BAJAJ-AUTO", "3MINDIA"] {
            assert!(Symbol::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "infy", "IN FY", "CASH", "\u{406}NFY", &"A".repeat(33)] {
            assert!(Symbol::parse(bad).is_err(), "{bad}");
        }
    }
}
