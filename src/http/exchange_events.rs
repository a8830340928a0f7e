//! `POST /v1/exchange/events`: the exchange's push channel.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::extract::raw_body;
use crate::app::AppState;
use crate::error::AppError;
use crate::exchange::signature;
use crate::exchange::wire::{self, PushEvent};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/exchange/events").post(receive));
}

/// Verifies the signature over the raw body, then records the event once. Every valid event is
/// acknowledged with 200, duplicates and unknown orders included, so the exchange never retries
/// forever.
#[utoipa::path(post, path = "/v1/exchange/events", tag = "exchange",
    params(("X-Signature" = String, Header, description = "sha256=<hex HMAC-SHA256(secret, raw body)>")),
    request_body = PushEvent,
    responses((status = 200, description = "Accepted, duplicates included"), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
pub(crate) async fn receive(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let body = raw_body(&req, payload).await?;
    let header = req
        .headers()
        .get(signature::HEADER)
        .and_then(|v| v.to_str().ok());
    if !signature::verify(&state.exchange_secret, &body, header) {
        return Err(AppError::Unauthorized);
    }
    let event: PushEvent = wire::parse_push(&body)
        .map_err(|e| AppError::InvalidRequest(format!("invalid push event: {e}")))?;
    let raw = String::from_utf8_lossy(&body).into_owned();
    let outcome = state.engine.take_push(event, raw).await?;
    Ok(HttpResponse::Ok().json(json!({"status": outcome})))
}
