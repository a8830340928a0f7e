//! The engine's side of the exchange's REST API. Every call is classified as a definitive answer or
//! an unknown outcome, and unknown outcomes are retried: every call names the order by its client
//! order id, so repeating one is harmless.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use awc::http::StatusCode;
use backon::Retryable;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::retry::{backoff, full_jitter};
use super::wire::{ExchangeOrder, PlaceAck, PlaceOrder, ReplaceOrder};
use crate::domain::{Cents, OrderRef, OrderToPlace, PlacedAck, ReplaceTerms, VenueOrder};
use crate::fault_points::crash_point;
use crate::metrics::Metrics;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The exchange answered and said no: repeating the call will not change that.
    #[error("the exchange refused: {0}")]
    Refused(String),
    /// No trustworthy answer (timeout, dropped connection, 5xx): the call may or may not have taken
    /// effect, and only asking the exchange again can tell.
    #[error("the outcome is unknown: {0}")]
    Unknown(String),
    /// A refusal that came after an attempt whose outcome is unknown: that attempt may have taken
    /// effect, so this is no answer either. Repeating the call would only be refused again.
    #[error("a refusal after an attempt with an unknown outcome: {0}")]
    AmbiguousRefusal(String),
}

impl ExchangeError {
    /// Whether the call may or may not have taken effect: only the exchange's copy can tell.
    pub fn is_unknown(&self) -> bool {
        matches!(
            self,
            ExchangeError::Unknown(_) | ExchangeError::AmbiguousRefusal(_)
        )
    }

    fn is_worth_repeating(&self) -> bool {
        matches!(self, ExchangeError::Unknown(_))
    }
}

/// What the engine needs of a venue. Futures are local: the HTTP client lives on the caller's
/// actix thread.
pub trait ExchangeClient: Send + Sync {
    /// The last traded price of every listed symbol.
    fn prices(&self) -> LocalBoxFuture<'_, Result<BTreeMap<String, Cents>, ExchangeError>>;
    /// Places an order; the same client order id again returns the same order.
    fn place<'a>(
        &'a self,
        order: &'a OrderToPlace,
    ) -> LocalBoxFuture<'a, Result<PlacedAck, ExchangeError>>;
    /// The exchange's copy of an order, or None when it has never heard of it.
    fn order<'a>(
        &'a self,
        order: OrderRef<'a>,
    ) -> LocalBoxFuture<'a, Result<Option<VenueOrder>, ExchangeError>>;
    /// Cancels what is left of an order (tombstoning an id never placed, where the venue can);
    /// returns the order after.
    fn cancel<'a>(
        &'a self,
        order: OrderRef<'a>,
    ) -> LocalBoxFuture<'a, Result<VenueOrder, ExchangeError>>;
    /// The orders the exchange holds that `listing` asks for, in one answer (for recovery and
    /// audits).
    fn orders_listed<'a>(
        &'a self,
        listing: &'a Listing,
    ) -> LocalBoxFuture<'a, Result<Vec<VenueOrder>, ExchangeError>>;

    /// Every order the exchange holds, in one answer.
    fn all_orders(&self) -> LocalBoxFuture<'_, Result<Vec<VenueOrder>, ExchangeError>> {
        Box::pin(async move { self.orders_listed(&Listing::default()).await })
    }
    /// The engine that holds this venue's line while this one stands by (a FIX session has one
    /// line, held by one engine of a fleet at a time); None when this engine may use it.
    fn held_elsewhere(&self) -> Option<String> {
        None
    }
    /// Gives a resting order new terms under a new client order id (the same new id again is
    /// answered the same); returns the order after. Too late (filled, ended) is a refusal.
    fn replace<'a>(
        &'a self,
        order: OrderRef<'a>,
        terms: &'a ReplaceTerms,
    ) -> LocalBoxFuture<'a, Result<VenueOrder, ExchangeError>>;
}

/// Which of the exchange's orders a listing asks for: all of them by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Only those still open.
    pub open_only: bool,
    /// Only those changed at or after this time (microseconds since the epoch, by the
    /// exchange's clock).
    pub updated_since: Option<i64>,
}

impl Listing {
    /// The query string of `GET /orders`.
    fn query(&self) -> String {
        let mut parts = Vec::new();
        if self.open_only {
            parts.push("status=open".to_owned());
        }
        if let Some(since) = self
            .updated_since
            .and_then(chrono::DateTime::from_timestamp_micros)
        {
            let at = since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            parts.push(format!("updated_since={at}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

/// The largest answer read from the exchange.
const MAX_ANSWER_BYTES: usize = 512 * 1024 * 1024;

/// How hard to try before handing an unknown outcome back to the caller.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub max_retries: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            max_retries: 8,
        }
    }
}

/// An exchange spoken to over HTTP.
#[derive(Debug, Clone)]
pub struct HttpExchange {
    base_url: String,
    timeout: Duration,
    retry: RetryPolicy,
    counts: RequestCounts,
}

/// Counts a venue's requests by operation and outcome, when the engine keeps metrics.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestCounts(Option<Arc<Metrics>>);

impl RequestCounts {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        RequestCounts(Some(metrics))
    }

    pub(crate) fn request(&self, op: &'static str, outcome: &'static str) {
        if let Some(metrics) = &self.0 {
            metrics.exchange_request(op, outcome);
        }
    }

    fn retry(&self) {
        if let Some(metrics) = &self.0 {
            metrics.exchange_retry();
        }
    }
}

impl HttpExchange {
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            timeout,
            retry: RetryPolicy::default(),
            counts: RequestCounts::default(),
        }
    }

    /// Counts every request and retry in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.counts = RequestCounts::new(metrics);
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sends one request and reads the whole answer. Anything short of a complete answer is an
    /// unknown outcome: the request may have been carried out.
    async fn call(
        &self,
        method: awc::http::Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<(StatusCode, Bytes), ExchangeError> {
        let request = super::http_client()
            .request(method, format!("{}{path}", self.base_url))
            .timeout(self.timeout);
        let sent = match body {
            Some(body) => {
                request
                    .content_type("application/json")
                    .send_body(body.to_vec())
                    .await
            }
            None => request.send().await,
        };
        let response = sent.map_err(|e| ExchangeError::Unknown(format!("{path}: {e}")))?;
        // A list of every order the exchange holds runs to megabytes and takes longer to read;
        // one order's answer is small. An answer that stalls is cut off all the same.
        let mut response = response.timeout(self.timeout * 10);
        let bytes = response
            .body()
            .limit(MAX_ANSWER_BYTES)
            .await
            .map_err(|e| ExchangeError::Unknown(format!("{path}: answer cut short: {e}")))?;
        Ok((response.status(), bytes))
    }

    /// Sends with retries until a definitive answer, or gives back the last unknown outcome.
    ///
    /// After an attempt whose outcome is unknown, a refusal (4xx) is no answer either: the lost
    /// attempt may have taken effect, and many venues refuse its repeat ("duplicate client order
    /// id", "already canceled"). Such a refusal comes back as [`ExchangeError::AmbiguousRefusal`],
    /// so the caller asks the exchange what it holds instead of acting on it.
    async fn call_retrying(
        &self,
        op: &'static str,
        method: awc::http::Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<(StatusCode, Bytes), ExchangeError> {
        // A read takes no effect, so its refusal (a 404) is an answer whatever came before.
        let changes_something = method != awc::http::Method::GET;
        let unknown_before = Cell::new(false);
        let attempt = || async {
            let answer = self.call(method.clone(), path, body).await;
            let answer = match answer {
                Ok((status, _))
                    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS =>
                {
                    Err(ExchangeError::Unknown(format!("{path}: answered {status}")))
                }
                other => other,
            };
            self.counts.request(
                op,
                match &answer {
                    Ok((status, _)) if status.is_success() => "ok",
                    Ok(_) => "refused",
                    Err(_) => "unknown",
                },
            );
            match answer {
                Err(e) => {
                    unknown_before.set(true);
                    Err(e)
                }
                Ok((status, bytes))
                    if changes_something && status.is_client_error() && unknown_before.get() =>
                {
                    Err(ExchangeError::AmbiguousRefusal(format!(
                        "{path}: {status}: {}",
                        String::from_utf8_lossy(&bytes)
                    )))
                }
                ok => ok,
            }
        };
        attempt
            .retry(backoff(
                self.retry.min_delay,
                self.retry.max_delay,
                self.retry.max_retries,
            ))
            .adjust(|_, d| full_jitter(d))
            .when(ExchangeError::is_worth_repeating)
            .notify(|e, wait| {
                self.counts.retry();
                tracing::debug!(error = %e, ?wait, "retrying exchange call")
            })
            .await
    }
}

fn decode<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T, ExchangeError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ExchangeError::Unknown(format!("{path}: unreadable answer: {e}")))
}

fn refusal(path: &str, status: StatusCode, bytes: &[u8]) -> ExchangeError {
    ExchangeError::Refused(format!(
        "{path}: {status}: {}",
        String::from_utf8_lossy(bytes)
    ))
}

impl ExchangeClient for HttpExchange {
    fn orders_listed<'a>(
        &'a self,
        listing: &'a Listing,
    ) -> LocalBoxFuture<'a, Result<Vec<VenueOrder>, ExchangeError>> {
        Box::pin(async move {
            let path = format!("/orders{}", listing.query());
            let (status, bytes) = self
                .call_retrying("list", awc::http::Method::GET, &path, None)
                .await?;
            if status.is_success() {
                let orders: Vec<ExchangeOrder> = decode("/orders", &bytes)?;
                Ok(orders.into_iter().map(Into::into).collect())
            } else {
                Err(refusal("/orders", status, &bytes))
            }
        })
    }

    fn prices(&self) -> LocalBoxFuture<'_, Result<BTreeMap<String, Cents>, ExchangeError>> {
        Box::pin(async move {
            // Prices are only a cache fill: one try, no retries.
            let answer = self.call(awc::http::Method::GET, "/prices", None).await;
            let (status, bytes) =
                answer.inspect_err(|_| self.counts.request("prices", "unknown"))?;
            if !status.is_success() {
                self.counts.request("prices", "unknown");
                return Err(ExchangeError::Unknown(format!("/prices answered {status}")));
            }
            self.counts.request("prices", "ok");
            decode("/prices", &bytes)
        })
    }

    fn place<'a>(
        &'a self,
        order: &'a OrderToPlace,
    ) -> LocalBoxFuture<'a, Result<PlacedAck, ExchangeError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(&PlaceOrder::from(order))
                .map_err(|e| ExchangeError::Refused(e.to_string()))?;
            crash_point("exchange.before_place");
            let answer = self
                .call_retrying("place", awc::http::Method::POST, "/orders", Some(&body))
                .await;
            crash_point("exchange.after_place");
            let (status, bytes) = answer?;
            if status.is_success() {
                decode::<PlaceAck>("/orders", &bytes).map(Into::into)
            } else {
                Err(refusal("/orders", status, &bytes))
            }
        })
    }

    fn order<'a>(
        &'a self,
        order: OrderRef<'a>,
    ) -> LocalBoxFuture<'a, Result<Option<VenueOrder>, ExchangeError>> {
        Box::pin(async move {
            let path = format!("/orders/{}", order.client_order_id);
            crash_point("exchange.before_lookup");
            let answer = self
                .call_retrying("lookup", awc::http::Method::GET, &path, None)
                .await;
            crash_point("exchange.after_lookup");
            let (status, bytes) = answer?;
            match status {
                StatusCode::NOT_FOUND => Ok(None),
                s if s.is_success() => {
                    decode::<ExchangeOrder>(&path, &bytes).map(|o| Some(o.into()))
                }
                s => Err(refusal(&path, s, &bytes)),
            }
        })
    }

    fn replace<'a>(
        &'a self,
        order: OrderRef<'a>,
        terms: &'a ReplaceTerms,
    ) -> LocalBoxFuture<'a, Result<VenueOrder, ExchangeError>> {
        Box::pin(async move {
            let path = format!("/orders/{}/replace", order.client_order_id);
            let body = serde_json::to_vec(&ReplaceOrder::from(terms))
                .map_err(|e| ExchangeError::Refused(e.to_string()))?;
            crash_point("exchange.before_replace");
            let answer = self
                .call_retrying("replace", awc::http::Method::POST, &path, Some(&body))
                .await;
            crash_point("exchange.after_replace");
            let (status, bytes) = answer?;
            if status.is_success() {
                decode::<ExchangeOrder>(&path, &bytes).map(Into::into)
            } else {
                Err(refusal(&path, status, &bytes))
            }
        })
    }

    fn cancel<'a>(
        &'a self,
        order: OrderRef<'a>,
    ) -> LocalBoxFuture<'a, Result<VenueOrder, ExchangeError>> {
        Box::pin(async move {
            let path = format!("/orders/{}", order.client_order_id);
            crash_point("exchange.before_cancel");
            let answer = self
                .call_retrying("cancel", awc::http::Method::DELETE, &path, None)
                .await;
            crash_point("exchange.after_cancel");
            let (status, bytes) = answer?;
            if status.is_success() {
                decode::<ExchangeOrder>(&path, &bytes).map(Into::into)
            } else {
                Err(refusal(&path, status, &bytes))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_a_query_string() {
        assert_eq!(Listing::default().query(), "");
        let open = Listing {
            open_only: true,
            updated_since: None,
        };
        assert_eq!(open.query(), "?status=open");
        let since = Listing {
            open_only: false,
            updated_since: Some(1_780_000_000_123_456),
        };
        assert_eq!(since.query(), "?updated_since=2026-05-28T20:26:40.123456Z");
    }
}
