//! `GET /v1/prices`: the exchange's last prices, for the dashboard's charts and ticket.

use actix_web::{web, HttpResponse};

use super::error::AppError;
use super::extract::Authenticated;
use crate::app::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/prices").get(prices));
}

/// `GET /v1/prices`: the exchange's last prices, as cached by the engine.
#[utoipa::path(get, path = "/v1/prices", tag = "market", security(("account" = [])),
    responses((status = 200, description = "Last price per symbol", body = std::collections::BTreeMap<String, crate::domain::Cents>), (status = 401, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn prices(
    state: web::Data<AppState>,
    _: Authenticated,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(state.prices.all().await?))
}
