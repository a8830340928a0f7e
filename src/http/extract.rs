//! Request extraction shared by the handlers: bearer auth, the Idempotency-Key and JSON bodies.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::StreamExt;

use super::error::AppError;
use crate::app::AppState;
use crate::db::accounts;
use crate::domain::AccountId;
use crate::idempotency::IdempotencyKey;

/// Bodies above this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::internal("application state is missing"))
}

/// The account whose bearer token the request carries.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub AccountId);

impl FromRequest for Authenticated {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let token = bearer(req);
        let state = app_state(req);
        Box::pin(async move {
            let token = token.ok_or(AppError::Unauthorized)?;
            let state = state?;
            let account = state.auth.account(&token).await?;
            Ok(Authenticated(account))
        })
    }
}

/// A request made with the operator's admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequest for Admin {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let verdict = match (bearer(req), app_state(req)) {
            (Some(token), Ok(state)) if accounts::hash_matches(&token, &state.admin_token_hash) => {
                Ok(Admin)
            }
            (_, Err(e)) => Err(e),
            _ => Err(AppError::Unauthorized),
        };
        std::future::ready(verdict)
    }
}

/// The `Idempotency-Key` header: exactly one, of 1 to 255 visible ASCII characters.
pub fn idempotency_key(req: &HttpRequest) -> Result<IdempotencyKey, AppError> {
    let mut values = req.headers().get_all("Idempotency-Key");
    let value = values.next().ok_or(AppError::IdempotencyKeyMissing)?;
    if values.next().is_some() {
        // Which one the client meant is anyone's guess: refuse rather than pick.
        return Err(AppError::InvalidIdempotencyKey);
    }
    Ok(IdempotencyKey::parse(value.as_bytes())?)
}

/// Reads a JSON body: 415 unless the content type is JSON, 413 past the size limit.
pub async fn json_body(req: &HttpRequest, payload: web::Payload) -> Result<web::Bytes, AppError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(AppError::UnsupportedMediaType);
    }
    raw_body(req, payload).await
}

/// Reads a body of at most [`MAX_BODY_BYTES`], whatever its content type.
pub async fn raw_body(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<web::Bytes, AppError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(AppError::PayloadTooLarge);
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::InvalidRequest(format!("unreadable body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(AppError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses a JSON body into `T`, turning every serde complaint into a 400.
/// The id a path names (an order's, an account's): one that does not parse names nothing there.
pub fn id_in_path<T: std::str::FromStr>(segment: &str) -> Result<T, AppError> {
    segment.parse().map_err(|_| AppError::NotFound)
}

pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(bytes)
        .map_err(|e| AppError::InvalidRequest(format!("invalid JSON body: {e}")))
}
