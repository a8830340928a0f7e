//! The engine's API as an outside client calls it: through a process that may be dead at any
//! moment, retrying under the same Idempotency-Key what may be retried.

use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one request may take before it counts as unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client keeps asking before it gives up on a request.
const PATIENCE: Duration = Duration::from_secs(90);

/// A status and its JSON body.
pub type Reply = (u16, Value);

/// An answer after retries: the reply, and whether the request was sent more than once.
pub struct Answered {
    pub reply: Reply,
    pub retried: bool,
}

#[derive(Clone)]
pub struct Api {
    base: String,
    client: awc::Client,
}

/// One request: method, path, bearer token, and what goes with it.
pub struct Call<'a> {
    pub method: awc::http::Method,
    pub path: &'a str,
    pub token: &'a str,
    pub key: Option<&'a str>,
    pub body: Option<&'a Value>,
}

impl<'a> Call<'a> {
    pub fn get(path: &'a str, token: &'a str) -> Self {
        Call {
            method: awc::http::Method::GET,
            path,
            token,
            key: None,
            body: None,
        }
    }

    pub fn delete(path: &'a str, token: &'a str) -> Self {
        Call {
            method: awc::http::Method::DELETE,
            ..Call::get(path, token)
        }
    }

    pub fn post(path: &'a str, token: &'a str, body: &'a Value) -> Self {
        Call {
            method: awc::http::Method::POST,
            body: Some(body),
            ..Call::get(path, token)
        }
    }

    /// `POST /v1/orders` under an Idempotency-Key.
    pub fn submit(token: &'a str, key: &'a str, order: &'a Value) -> Self {
        Call {
            key: Some(key),
            ..Call::post("/v1/orders", token, order)
        }
    }
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: crate::exchange::http_client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One attempt: the reply and any Retry-After, or `None` when there was no answer.
    pub async fn send(&self, call: &Call<'_>) -> Option<(Reply, Option<Duration>)> {
        let mut request = self
            .client
            .request(call.method.clone(), self.url(call.path))
            .timeout(REQUEST_TIMEOUT)
            .insert_header(("Authorization", format!("Bearer {}", call.token)));
        if let Some(key) = call.key {
            request = request.insert_header(("Idempotency-Key", key));
        }
        let sent = match call.body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        };
        let mut response = sent.ok()?;
        let retry_after = response
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .map(Duration::from_secs);
        let bytes = response.body().limit(16 * 1024 * 1024).await.ok()?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Some(((response.status().as_u16(), body), retry_after))
    }

    /// Sends until the answer is final: no answer, 5xx, 429 and 409 "key in use" are asked again,
    /// under the same key. `None` when the engine gave no final answer in time.
    pub async fn until_answered(&self, call: &Call<'_>) -> Option<Answered> {
        let deadline = Instant::now() + PATIENCE;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let wait = match self.send(call).await {
                Some(((status, body), _)) if !must_retry(status, &body) => {
                    return Some(Answered {
                        reply: (status, body),
                        retried: attempts > 1,
                    });
                }
                Some((_, retry_after)) => retry_after.unwrap_or(Duration::from_millis(200)),
                None => Duration::from_millis(200),
            };
            if Instant::now() + wait > deadline {
                return None;
            }
            actix_web::rt::time::sleep(wait).await;
        }
    }
}

fn must_retry(status: u16, body: &Value) -> bool {
    status >= 500
        || status == 429
        || (status == 409 && body["error"]["code"] == "idempotency_key_in_use")
}
