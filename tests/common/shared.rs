//! What every test binary needs: an HTTP client, and money text read back as cents.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;

/// A client whose requests give up after 30 s, so that a hung server fails a test instead of
/// stalling it.
pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

/// A money string of the API (`"1520.50"`) in cents; panics on anything else.
pub fn cents(text: &Value) -> i64 {
    let text = text
        .as_str()
        .unwrap_or_else(|| panic!("not a money string: {text}"));
    let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
    let frac = format!("{frac:0<2}");
    assert_eq!(frac.len(), 2, "at most two decimals: {text}");
    whole.parse::<i64>().expect("whole units") * 100 + frac.parse::<i64>().expect("cents")
}
