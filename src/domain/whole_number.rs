//! Whole numbers as JSON carries them: `97` or `97.0` (JSON does not tell the two apart, and
//! some clients write every number with a point); `97.5` is refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// Within ±2^53 every whole f64 is exact.
const EXACT: f64 = 9_007_199_254_740_992.0;

fn whole<E: serde::de::Error>(number: serde_json::Number) -> Result<i64, E> {
    if let Some(n) = number.as_i64() {
        return Ok(n);
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < EXACT => Ok(f as i64),
        _ => Err(E::custom(format!("{number} is not a whole number"))),
    }
}

/// For a field: `#[serde(deserialize_with = "whole_number::one")]`.
pub fn one<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    whole(serde_json::Number::deserialize(deserializer)?)
}

/// For a field that may be left out or null: `#[serde(default, deserialize_with =
/// "whole_number::maybe_one")]`.
pub fn maybe_one<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    Option::<serde_json::Number>::deserialize(deserializer)?
        .map(whole)
        .transpose()
}

/// For a map of whole numbers: `#[serde(deserialize_with = "whole_number::by_key")]`.
pub fn by_key<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, i64>, D::Error> {
    BTreeMap::<String, serde_json::Number>::deserialize(deserializer)?
        .into_iter()
        .map(|(key, number)| Ok((key, whole(number)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::one")]
        qty: i64,
        #[serde(default, deserialize_with = "super::by_key")]
        held: std::collections::BTreeMap<String, i64>,
    }

    #[test]
    fn a_point_zero_is_whole_and_a_half_is_not() {
        let body: Body =
            serde_json::from_str(r#"{"qty": 97.0, "held": {"A": 3.0, "B": 4}}"#).unwrap();
        assert_eq!((body.qty, body.held["A"], body.held["B"]), (97, 3, 4));
        assert!(serde_json::from_str::<Body>(r#"{"qty": 97.5}"#).is_err());
        assert!(serde_json::from_str::<Body>(r#"{"qty": 1, "held": {"A": 0.5}}"#).is_err());
        assert!(serde_json::from_str::<Body>(r#"{"qty": "1"}"#).is_err());
    }
}
