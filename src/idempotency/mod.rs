//! Idempotency keys: the key a client sends, the claim on it while its first request runs, and the
//! one check that tells a new request from a replay or a misuse of its key.

mod answered;
mod in_flight;

use sha2::{Digest, Sha256};

pub use answered::Answered;
pub use in_flight::InFlight;

use crate::db::idempotency::{StoredKey, StoredResponse};

/// A header value that is no `Idempotency-Key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the Idempotency-Key must be 1 to 255 visible ASCII characters")]
pub struct InvalidKey;

/// An `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(bytes: &[u8]) -> Result<Self, InvalidKey> {
        if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x21..=0x7e).contains(b))
        {
            return Err(InvalidKey);
        }
        String::from_utf8(bytes.to_vec())
            .map(Self)
            .map_err(|_| InvalidKey)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 over the method, the path and the body's canonical JSON (keys sorted, no white space).
pub fn fingerprint(method: &str, path: &str, body: &serde_json::Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b" ");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    // serde_json keeps object keys in a BTreeMap, so this prints them sorted.
    hasher.update(body.to_string().as_bytes());
    hex::encode(hasher.finalize())
}

/// What the stored key says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No live key: the request is carried out (an expired key is replaced).
    New,
    /// The same request again: its stored answer, byte for byte.
    Replay(StoredResponse),
    /// A live key sent with another request: refused, and nothing is done.
    Reused,
}

/// The one check: a live key with the same fingerprint replays its answer; with another
/// fingerprint it is refused; an absent or expired key lets the request through.
pub fn check(stored: Option<StoredKey>, fingerprint: &str, now: i64) -> Verdict {
    match stored {
        Some(stored) if stored.expires_at > now => {
            if stored.fingerprint == fingerprint {
                Verdict::Replay(stored.response())
            } else {
                Verdict::Reused
            }
        }
        _ => Verdict::New,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_key_order_and_white_space() {
        let a: serde_json::Value = serde_json::from_str(r#"{"qty":1,"symbol":"INFY"}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str("{ \"symbol\" : \"INFY\",\n \"qty\": 1 }").unwrap();
        let c: serde_json::Value = serde_json::from_str(r#"{"qty":2,"symbol":"INFY"}"#).unwrap();
        assert_eq!(
            fingerprint("POST", "/v1/orders", &a),
            fingerprint("POST", "/v1/orders", &b)
        );
        assert_ne!(
            fingerprint("POST", "/v1/orders", &a),
            fingerprint("POST", "/v1/orders", &c)
        );
        assert_ne!(
            fingerprint("POST", "/v1/orders", &a),
            fingerprint("POST", "/v1/other", &a)
        );
    }

    #[test]
    fn keys_are_visible_ascii_of_1_to_255() {
        assert!(IdempotencyKey::parse(b"order-1").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
        for bad in [&b""[..], &[b'k'; 256], b"a b", b"tab\t", "é".as_bytes()] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_live_key_replays_or_refuses_and_an_expired_one_lets_through() {
        let stored = |fingerprint: &str, expires_at| StoredKey {
            fingerprint: fingerprint.into(),
            status_code: 201,
            location: None,
            response_body: "{}".into(),
            expires_at,
        };
        assert!(matches!(
            check(Some(stored("f", 10)), "f", 5),
            Verdict::Replay(_)
        ));
        assert_eq!(check(Some(stored("f", 10)), "g", 5), Verdict::Reused);
        assert_eq!(check(Some(stored("f", 10)), "g", 10), Verdict::New);
        assert_eq!(check(None, "f", 5), Verdict::New);
    }
}
