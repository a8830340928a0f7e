//! `POST /v1/exchange/events`: the exchange's push channel.

use actix_web::{web, HttpRequest, HttpResponse};
use tracing::Instrument;

use super::error::AppError;
use super::extract::raw_body;
use crate::app::AppState;
use crate::db::now_micros;
use crate::engine::pushes::PushOutcome;
use crate::exchange::signature;
use crate::exchange::wire::{self, PushEvent};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/exchange/events").post(receive));
}

/// Verifies the signature over the raw body, then records the event once. Every valid event is
/// acknowledged with 200, duplicates and unknown orders included, so the exchange never retries
/// forever.
#[utoipa::path(post, path = "/v1/exchange/events", tag = "exchange",
    params(("X-Signature" = String, Header, pattern = "^sha256=[0-9a-f]{64}$", description = "sha256=<hex HMAC-SHA256(secret, raw body)>")),
    request_body = PushEvent,
    responses((status = 200, description = "Accepted, duplicates included", body = PushAnswer), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 422, description = "stale_event: a fill older than the replay window", body = crate::error::ErrorBody)))]
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
    refuse_if_stale(&event, state.push_replay_window_micros, now_micros())?;
    let raw = String::from_utf8_lossy(&body).into_owned();
    let span = tracing::info_span!(
        "push_event",
        event_id = %event.event_id,
        client_order_id = %event.client_order_id,
    );
    let report = event.into_report();
    let outcome = state.engine.take_push(report, raw).instrument(span).await?;
    Ok(HttpResponse::Ok().json(PushAnswer { status: outcome }))
}

/// What the engine made of a push.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct PushAnswer {
    status: PushOutcome,
}

/// A signed push can be captured and sent again; a fill whose own time is older than the replay
/// window is such a copy, not news, and is refused (polling records the fill if it is real). A
/// time that does not read as RFC 3339 says nothing either way and is let through.
fn refuse_if_stale(event: &PushEvent, window_micros: i64, now: i64) -> Result<(), AppError> {
    let Some(fill) = &event.fill else {
        return Ok(());
    };
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(&fill.ts) else {
        return Ok(());
    };
    let age = now.saturating_sub(at.timestamp_micros());
    if age > window_micros {
        return Err(AppError::StaleEvent(format!(
            "fill {} is from {}, {} s ago",
            fill.fill_id,
            fill.ts,
            age / 1_000_000
        )));
    }
    Ok(())
}
