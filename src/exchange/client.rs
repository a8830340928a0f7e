//! The engine's side of the exchange's REST API.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;

use crate::domain::Cents;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The exchange answered and said no: repeating the call will not change that.
    #[error("the exchange refused: {0}")]
    Refused(String),
    /// No trustworthy answer (timeout, dropped connection, 5xx): the call may or may not have taken
    /// effect, and only asking the exchange again can tell.
    #[error("the outcome is unknown: {0}")]
    Unknown(String),
}

/// What the engine needs of a venue. Futures are local: the HTTP client lives on the caller's
/// actix thread.
pub trait ExchangeClient: Send + Sync {
    /// The last traded price of every listed symbol.
    fn prices(&self) -> LocalBoxFuture<'_, Result<BTreeMap<String, Cents>, ExchangeError>>;
}

/// An exchange spoken to over HTTP.
#[derive(Debug, Clone)]
pub struct HttpExchange {
    base_url: String,
    timeout: Duration,
}

thread_local! {
    // awc clients are per thread; one per thread keeps its connection pool warm.
    static CLIENT: awc::Client = awc::Client::builder().disable_redirects().finish();
}

impl HttpExchange {
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            timeout,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn client() -> awc::Client {
        CLIENT.with(Clone::clone)
    }
}

impl ExchangeClient for HttpExchange {
    fn prices(&self) -> LocalBoxFuture<'_, Result<BTreeMap<String, Cents>, ExchangeError>> {
        Box::pin(async move {
            let mut response = Self::client()
                .get(format!("{}/prices", self.base_url))
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|e| ExchangeError::Unknown(e.to_string()))?;
            if !response.status().is_success() {
                return Err(ExchangeError::Unknown(format!(
                    "GET /prices answered {}",
                    response.status()
                )));
            }
            response
                .json::<BTreeMap<String, Cents>>()
                .await
                .map_err(|e| ExchangeError::Unknown(format!("unreadable prices: {e}")))
        })
    }
}
