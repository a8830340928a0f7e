//! One error type for the whole API, mapped to HTTP in one place: `{"error":{"code","message"}}`.
//! Below the edge, each layer has errors of its own (`db::DbError`, `orders::OrderError`,
//! [`Fenced`]); the writer and the batches are generic over them (`db::PhaseError`). They become an
//! `AppError` at the edge, and an internal one keeps its cause for the log.

use std::error::Error as StdError;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use crate::domain::fence::Fenced;

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
    #[error("not enough cash: {0}")]
    InsufficientFunds(String),
    #[error("not enough shares: {0}")]
    InsufficientPosition(String),
    #[error("unknown symbol {0:?}")]
    UnknownSymbol(String),
    #[error("the order is {0} and can no longer be canceled")]
    OrderNotCancelable(String),
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
    /// This engine no longer owns the order (its lease was taken over): it must not act on it.
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

/// The shape of every error answer (for the API description).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code, such as `insufficient_funds`.
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: &str) -> Self {
        Self {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.to_owned(),
            },
        }
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
            AppError::InsufficientFunds(_) => "insufficient_funds",
            AppError::InsufficientPosition(_) => "insufficient_position",
            AppError::UnknownSymbol(_) => "unknown_symbol",
            AppError::OrderNotCancelable(_) => "order_not_cancelable",
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
            AppError::IdempotencyKeyInUse => StatusCode::CONFLICT,
            AppError::IdempotencyKeyReused
            | AppError::InsufficientFunds(_)
            | AppError::InsufficientPosition(_)
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
            AppError::IdempotencyKeyInUse => {
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
