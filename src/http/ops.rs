//! Operational routes: liveness and readiness.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::db::alarms;
use crate::startup::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").get(healthz))
        .service(web::resource("/readyz").get(readyz));
}

/// The process is up; with the figures an operator watches first.
async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "live_order_actors": state.engine.live_actors(),
        "outbox_lag_ms": state.relay.lag_ms(),
        "alarms_raised": alarms::raised(),
    }))
}

/// 503 until every open order has been picked up again after a start.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.ready.load(Ordering::Acquire) {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "recovering"}))
    }
}
