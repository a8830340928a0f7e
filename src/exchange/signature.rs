//! Push signatures: `X-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const HEADER: &str = "X-Signature";

fn mac(secret: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length, so this cannot fail.
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// The header value for `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is a valid signature of `body`, compared in constant time.
pub fn verify(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = mac(secret);
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_and_secret() {
        let signature = sign("s3cret", b"{\"a\":1}");
        assert!(signature.starts_with("sha256="));
        assert!(verify("s3cret", b"{\"a\":1}", Some(&signature)));
        assert!(!verify("s3cret", b"{\"a\":2}", Some(&signature)));
        assert!(!verify("other", b"{\"a\":1}", Some(&signature)));
        assert!(!verify("s3cret", b"{\"a\":1}", None));
        assert!(!verify("s3cret", b"{\"a\":1}", Some("sha256=zz")));
        assert!(!verify(
            "s3cret",
            b"{\"a\":1}",
            Some(signature.trim_start_matches("sha256="))
        ));
    }
}
