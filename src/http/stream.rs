//! `GET /v1/stream`: the live feed over WebSocket. Browsers cannot set headers, so the first
//! message authenticates.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;

use super::error::AppError;
use crate::app::AppState;
use crate::feed::FeedSession;
use crate::metrics::WsSessionGauge;

/// Client frames are tiny (just the auth message); anything bigger is refused.
const MAX_FRAME_BYTES: usize = 4096;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/stream").get(stream));
}

#[utoipa::path(get, path = "/v1/stream", tag = "feed",
    description = "WebSocket. First message: {\"type\":\"auth\",\"token\":…,\"since\":N}. Then every event with seq > since (or {\"type\":\"resync\",\"latest_seq\":N} when events after since were pruned), then live ones. Closes 4401 on bad auth, 4008 when too slow, 4429 when the account has too many sessions open.",
    responses((status = 101, description = "Switching to WebSocket"), (status = 400, body = crate::error::ErrorBody)))]
pub(crate) async fn stream(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let session = FeedSession::new(
        NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
        state.pool.clone(),
        state.auth.clone(),
        state.hub.clone(),
        WsSessionGauge::new(state.engine.shared_metrics()),
        state.stream_sessions.clone(),
    );
    ws::WsResponseBuilder::new(session, &req, payload)
        .frame_size(MAX_FRAME_BYTES)
        .start()
        .map_err(|e| AppError::InvalidRequest(format!("not a WebSocket upgrade: {e}")))
}
