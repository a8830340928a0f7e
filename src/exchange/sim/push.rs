//! Push delivery: each event is signed and POSTed on its own task, so a slow or absent receiver
//! never stalls the market. Failed deliveries are retried with backoff, then given up.

use std::time::Duration;

use backon::Retryable;

use crate::exchange::retry::{backoff, full_jitter};
use crate::exchange::signature;
use crate::exchange::wire::PushEvent;

#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: String,
    pub secret: String,
}

#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("delivery failed: {0}")]
    Retryable(String),
    #[error("the receiver refused: {0}")]
    Refused(String),
}

/// Sends `copies` copies of `event` after `delay`, each retried on failure.
pub fn spawn_delivery(webhook: Webhook, event: PushEvent, copies: u32, delay: Duration) {
    let body = match serde_json::to_string(&event) {
        Ok(body) => body,
        Err(e) => return tracing::error!(error = %e, "unserialisable push event"),
    };
    for _ in 0..copies {
        let webhook = webhook.clone();
        let body = body.clone();
        actix_web::rt::spawn(async move {
            if !delay.is_zero() {
                actix_web::rt::time::sleep(delay).await;
            }
            let attempt = || post(&webhook, &body);
            let outcome = attempt
                .retry(backoff(
                    Duration::from_millis(100),
                    Duration::from_secs(2),
                    6,
                ))
                .adjust(|_, d| full_jitter(d))
                .when(|e| matches!(e, DeliveryError::Retryable(_)))
                .await;
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "push delivery given up");
            }
        });
    }
}

async fn post(webhook: &Webhook, body: &str) -> Result<(), DeliveryError> {
    let mut response = crate::exchange::http_client()
        .post(&webhook.url)
        .timeout(Duration::from_secs(2))
        .insert_header(("Content-Type", "application/json"))
        .insert_header((
            signature::HEADER,
            signature::sign(&webhook.secret, body.as_bytes()),
        ))
        .send_body(body.to_owned())
        .await
        .map_err(|e| DeliveryError::Retryable(e.to_string()))?;
    let status = response.status();
    // Read to its end, the answer gives its connection back to the pool for the next push;
    // left unread, the connection is closed, and every push would open a new one.
    let _ = response.body().limit(64 * 1024).await;
    if status.is_success() {
        Ok(())
    } else if status.is_server_error() || status.as_u16() == 429 {
        Err(DeliveryError::Retryable(status.to_string()))
    } else {
        Err(DeliveryError::Refused(status.to_string()))
    }
}
