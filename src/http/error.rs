//! One error type for the whole API, mapped to HTTP in one place: `{"error":{"code","message"}}`.
//! Below the edge, each layer has errors of its own (`db::DbError`, `orders::OrderError`,
//! `engine::EngineError`, …); they become an `AppError` here and nowhere else, and an internal one
//! keeps its cause for the log.

use std::error::Error as StdError;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use crate::auth::AuthError;
use crate::db::{DbError, PhaseError};
use crate::domain::fence::Fenced;
use crate::engine::EngineError;
use crate::error::ErrorBody;
use crate::exchange::ExchangeError;
use crate::idempotency::InvalidKey;
use crate::limits::RateLimited;
use crate::orders::pricing::PricingError;
use crate::orders::request::BadOrder;
use crate::orders::{OrderError, Refusal};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the Idempotency-Key header is required")]
    IdempotencyKeyMissing,
    #[error("the Idempotency-Key must be 1 to 255 visible ASCII characters")]
    InvalidIdempotencyKey,
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("a request with this Idempotency-Key is still being processed")]
    IdempotencyKeyInUse,
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    /// Not enough cash or shares: an answer kept under the key.
    #[error(transparent)]
    Refused(Refusal),
    #[error("unknown symbol {0:?}")]
    UnknownSymbol(String),
    #[error("the order is {0} and can no longer be canceled")]
    OrderNotCancelable(String),
    #[error("the order is {0}: a cancel or a replace is under way; try again once it is answered")]
    OrderBusy(String),
    #[error("the body is over the size limit (64 KiB)")]
    PayloadTooLarge,
    #[error("the body must be application/json")]
    UnsupportedMediaType,
    /// Over the account's order rate; `retry_after` seconds until the next one is let in.
    #[error("too many orders: at most {per_second} per second per account")]
    RateLimited { per_second: u32, retry_after: u64 },
    #[error("the account holds {0} stored Idempotency-Keys, the most it may; they expire after the key TTL")]
    TooManyStoredKeys(i64),
    /// A push older than the replay window: a copy of an old message, not news.
    #[error("the event is older than the replay window: {0}")]
    StaleEvent(String),
    #[error("the exchange is unavailable: {0}")]
    ExchangeUnavailable(String),
    #[error("the service is temporarily unavailable: {0}")]
    Unavailable(String),
    /// Another engine holds the order's lease: this one must not act on it.
    #[error(transparent)]
    Fenced(#[from] Fenced),
    /// What nobody expected. The cause is logged, never answered.
    #[error("internal error")]
    Internal(#[source] Box<dyn StdError + Send + Sync>),
}

impl AppError {
    /// An internal error, from its cause or from a sentence saying what went wrong.
    pub fn internal(cause: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        AppError::Internal(cause.into())
    }
}

impl AppError {
    pub fn code(&self) -> &'static str {
        match self {
            AppError::InvalidRequest(_) => "invalid_request",
            AppError::IdempotencyKeyMissing => "idempotency_key_missing",
            AppError::InvalidIdempotencyKey => "invalid_idempotency_key",
            AppError::Unauthorized => "unauthorized",
            AppError::NotFound => "not_found",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::IdempotencyKeyInUse => "idempotency_key_in_use",
            AppError::IdempotencyKeyReused => "idempotency_key_reused",
            AppError::Refused(refusal) => refusal.code(),
            AppError::UnknownSymbol(_) => "unknown_symbol",
            AppError::OrderNotCancelable(_) => "order_not_cancelable",
            AppError::OrderBusy(_) => "order_busy",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::TooManyStoredKeys(_) => "too_many_stored_keys",
            AppError::StaleEvent(_) => "stale_event",
            AppError::ExchangeUnavailable(_) => "exchange_unavailable",
            AppError::Unavailable(_) => "service_unavailable",
            AppError::Fenced(_) => "fenced",
            AppError::Internal(_) => "internal_error",
        }
    }

    /// The JSON body every error answer carries.
    pub fn body(&self) -> String {
        let body = ErrorBody::new(self.code(), &self.to_string());
        serde_json::to_string(&body).unwrap_or_default()
    }

    /// The error that an answer made outside the handlers stands for (actix's own 404, 405,
    /// 413…), so that it too carries the one error body; None for a status no error here has.
    pub fn from_status(status: StatusCode) -> Option<AppError> {
        let reason = status.canonical_reason().unwrap_or("error").to_owned();
        let error = match status {
            StatusCode::BAD_REQUEST => AppError::InvalidRequest(reason),
            StatusCode::UNAUTHORIZED => AppError::Unauthorized,
            StatusCode::NOT_FOUND => AppError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => AppError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::UnsupportedMediaType,
            StatusCode::SERVICE_UNAVAILABLE => AppError::Unavailable(reason),
            s if s.is_server_error() => AppError::internal(reason),
            _ => return None,
        };
        Some(error)
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::InvalidRequest(_)
            | AppError::IdempotencyKeyMissing
            | AppError::InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::IdempotencyKeyInUse | AppError::OrderBusy(_) => StatusCode::CONFLICT,
            AppError::Refused(refusal) => {
                StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
            }
            AppError::IdempotencyKeyReused
            | AppError::UnknownSymbol(_)
            | AppError::OrderNotCancelable(_)
            | AppError::StaleEvent(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::RateLimited { .. } | AppError::TooManyStoredKeys(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::ExchangeUnavailable(_) | AppError::Unavailable(_) | AppError::Fenced(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let AppError::Internal(cause) = self {
            let mut detail = cause.to_string();
            let mut source = cause.source();
            while let Some(next) = source {
                detail.push_str(": ");
                detail.push_str(&next.to_string());
                source = next.source();
            }
            tracing::error!(%detail, "internal error");
        }
        let mut response = HttpResponse::build(self.status_code());
        response.content_type("application/json");
        match self {
            AppError::IdempotencyKeyInUse | AppError::OrderBusy(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            AppError::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            AppError::RateLimited { retry_after, .. } => {
                response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            // Keys free up only as they expire: an hour is a fair first wait.
            AppError::TooManyStoredKeys(_) => {
                response.insert_header((header::RETRY_AFTER, "3600"));
            }
            AppError::Unavailable(_) | AppError::ExchangeUnavailable(_) | AppError::Fenced(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            _ => {}
        }
        response.body(self.body())
    }
}

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(error: diesel::r2d2::PoolError) -> Self {
        AppError::Unavailable(format!("no database connection: {error}"))
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(_: actix_web::error::BlockingError) -> Self {
        AppError::Unavailable("the worker pool is shut down".into())
    }
}

impl From<DbError> for AppError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(why) => AppError::Unavailable(format!("the database: {why}")),
            DbError::NotFound => AppError::NotFound,
            DbError::KeyInUse => AppError::IdempotencyKeyInUse,
            other => AppError::internal(other),
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(error: diesel::result::Error) -> Self {
        DbError::from(error).into()
    }
}

/// For the edge's own reads and writes.
impl PhaseError for AppError {
    /// Unavailability and errors nobody expected, never a refusal.
    fn may_mean_a_lost_connection(&self) -> bool {
        matches!(self, AppError::Unavailable(_) | AppError::Internal(_))
    }
}

impl From<OrderError> for AppError {
    fn from(error: OrderError) -> Self {
        match error {
            OrderError::Db(e) => e.into(),
            OrderError::Fenced(why) => AppError::Fenced(why),
            OrderError::NotFound => AppError::NotFound,
            OrderError::NotCancelable(status) => AppError::OrderNotCancelable(status.to_string()),
            OrderError::Busy(status) => AppError::OrderBusy(status.to_string()),
            OrderError::KeyReused => AppError::IdempotencyKeyReused,
            OrderError::TooManyStoredKeys(most) => AppError::TooManyStoredKeys(most),
            too_large @ OrderError::ValueTooLarge => {
                AppError::InvalidRequest(too_large.to_string())
            }
            OrderError::Broken(what) => AppError::internal(what),
        }
    }
}

impl From<EngineError> for AppError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Order(e) => e.into(),
            EngineError::Unavailable(why) => AppError::Unavailable(why),
        }
    }
}

impl From<Refusal> for AppError {
    fn from(refusal: Refusal) -> Self {
        AppError::Refused(refusal)
    }
}

impl From<BadOrder> for AppError {
    fn from(error: BadOrder) -> Self {
        match error {
            BadOrder::Invalid(why) => AppError::InvalidRequest(why),
            BadOrder::UnknownSymbol(symbol) => AppError::UnknownSymbol(symbol),
        }
    }
}

impl From<PricingError> for AppError {
    fn from(error: PricingError) -> Self {
        match error {
            PricingError::UnknownSymbol(symbol) => AppError::UnknownSymbol(symbol),
            too_large @ PricingError::ValueTooLarge => {
                AppError::InvalidRequest(too_large.to_string())
            }
            PricingError::Exchange(e) => e.into(),
        }
    }
}

impl From<ExchangeError> for AppError {
    fn from(error: ExchangeError) -> Self {
        AppError::ExchangeUnavailable(error.to_string())
    }
}

impl From<InvalidKey> for AppError {
    fn from(_: InvalidKey) -> Self {
        AppError::InvalidIdempotencyKey
    }
}

impl From<RateLimited> for AppError {
    fn from(limited: RateLimited) -> Self {
        AppError::RateLimited {
            per_second: limited.per_second,
            retry_after: limited.retry_after,
        }
    }
}

impl From<AuthError> for AppError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Unauthorized => AppError::Unauthorized,
            AuthError::Db(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal stored under a key reads as the API would answer it.
    #[test]
    fn a_stored_refusal_is_the_answer_the_api_gives() {
        for refusal in [
            Refusal::InsufficientFunds("the order needs 10.00 and 5.00 is available".into()),
            Refusal::InsufficientPosition("the order sells 3 INFY and 1 are available".into()),
            Refusal::RiskLimit(crate::domain::Breach::OpenOrders { open: 3 }),
            Refusal::TradingHalted("for this account"),
        ] {
            let answered = AppError::from(refusal.clone());
            let stored = refusal.stored();
            assert_eq!(answered.status_code().as_u16(), stored.status);
            assert_eq!(answered.body(), stored.body);
        }
        let halted = AppError::from(Refusal::TradingHalted("for every account"));
        assert_eq!(halted.status_code(), StatusCode::LOCKED);
        assert_eq!(halted.code(), "trading_halted");
    }

    #[test]
    fn an_engine_that_cannot_go_on_answers_503() {
        let lost = AppError::from(EngineError::from(DbError::Unavailable("down".into())));
        assert_eq!(lost.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(lost.code(), "service_unavailable");
        let stopping = AppError::from(EngineError::Unavailable("stopping".into()));
        assert_eq!(stopping.status_code(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
