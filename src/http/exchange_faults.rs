//! `GET`/`PUT /v1/exchange/faults`: the embedded simulator's fault switches, passed through to it
//! for the dashboard's fault panel. Changing them takes the admin token.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::AppError;
use super::extract::{json_body, parse_json, Admin, Authenticated};
use crate::app::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/exchange/faults")
            .get(get_faults)
            .put(put_faults),
    );
}

/// The embedded simulator's base URL; fault switches exist only for it.
fn simulator(state: &AppState) -> Result<&str, AppError> {
    state.embedded_exchange.as_deref().ok_or(AppError::NotFound)
}

async fn forward(
    request: awc::ClientRequest,
    body: Option<serde_json::Value>,
) -> Result<HttpResponse, AppError> {
    let request = request.timeout(Duration::from_secs(3));
    let sent = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    };
    let mut response = sent.map_err(|e| AppError::ExchangeUnavailable(e.to_string()))?;
    let answer: serde_json::Value = response
        .json()
        .await
        .map_err(|e| AppError::ExchangeUnavailable(e.to_string()))?;
    if response.status().is_success() {
        Ok(HttpResponse::Ok().json(answer))
    } else {
        Err(AppError::InvalidRequest(
            answer["error"]["message"]
                .as_str()
                .unwrap_or("refused")
                .to_owned(),
        ))
    }
}

/// `GET /v1/exchange/faults` (embedded simulator only).
#[utoipa::path(get, path = "/v1/exchange/faults", tag = "exchange", security(("account" = [])),
    responses((status = 200, description = "The embedded simulator's fault rates", body = crate::exchange::sim::faults::Faults), (status = 404, description = "External exchange", body = crate::error::ErrorBody)))]
pub(crate) async fn get_faults(
    state: web::Data<AppState>,
    _: Authenticated,
) -> Result<HttpResponse, AppError> {
    let url = format!("{}/admin/faults", simulator(&state)?);
    forward(crate::exchange::http_client().get(url), None).await
}

/// `PUT /v1/exchange/faults` (embedded simulator only, admin token): the same body as the
/// simulator's own.
#[utoipa::path(put, path = "/v1/exchange/faults", tag = "exchange", security(("admin" = [])),
    request_body = crate::exchange::sim::faults::FaultsUpdate,
    responses((status = 200, description = "The fault rates after the change", body = crate::exchange::sim::faults::Faults), (status = 400, body = crate::error::ErrorBody), (status = 401, description = "Not the admin token", body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn put_faults(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let body: serde_json::Value = parse_json(&json_body(&req, payload).await?)?;
    let url = format!("{}/admin/faults", simulator(&state)?);
    forward(crate::exchange::http_client().put(url), Some(body)).await
}
