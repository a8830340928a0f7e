//! Operational routes: liveness and readiness.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::error::AppError;
use crate::app::AppState;
use crate::audit::AuditVerdict;
use crate::db::{self, alarms, idempotency, outbox};
use crate::engine::RecoverySummary;
use crate::metrics::Sampled;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").get(healthz))
        .service(web::resource("/metrics").get(metrics))
        .service(web::resource("/readyz").get(readyz));
}

/// `/healthz`: the process is up, with the figures an operator watches first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: &'static str,
    live_order_actors: usize,
    /// How far the feed's relay is behind the newest stored event.
    outbox_lag_ms: i64,
    alarms_raised: u64,
    /// The last money audit's verdict, once one has run.
    audit: Option<AuditVerdict>,
    started_at: String,
    recovery: RecoverySummary,
}

/// `/readyz`: `ready`, or why not (`recovering`, `database_unreachable`, `venue_not_priced`,
/// `standby`, `no_lease`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Readiness {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process is up", body = Health)))]
pub(crate) async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        live_order_actors: state.engine.live_actors(),
        outbox_lag_ms: state.relay.lag_ms(),
        alarms_raised: alarms::raised_in_all(),
        audit: state.last_audit.get(),
        started_at: state.started_at.clone(),
        recovery: state.engine.recovery_summary(),
    })
}

/// Prometheus figures (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "OpenMetrics text")))]
pub(crate) async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let broker = state.broker;
    // A database that cannot be read must not hide every other figure: the last values stay.
    let counted = db::run(&state.pool, move |conn| {
        let keys = idempotency::count(conn)?;
        let pending = if broker {
            outbox::unpublished_count(conn)?
        } else {
            0
        };
        Ok::<_, crate::db::DbError>((keys, pending))
    })
    .await
    .ok();
    let sampled = Sampled {
        open_orders: state.engine.live_actors(),
        outbox_lag_ms: state.relay.lag_ms(),
        idempotency_keys: counted.map(|(keys, _)| keys),
        outbox_pending: counted.map(|(_, pending)| pending),
    };
    let text = state
        .engine
        .metrics()
        .render(sampled)
        .map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text))
}

/// 200 only while this engine can do its work: every open order picked up after a start has
/// finished its first recovery step, the lease is held, and the database answers. Otherwise 503,
/// with the reason.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Recovered, holding the lease, and the database answers", body = Readiness), (status = 503, description = "Still recovering, the lease is lost, or the database cannot be reached; `reason` says which", body = Readiness)))]
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let not_ready = |status: &'static str, reason: String| {
        HttpResponse::ServiceUnavailable().json(Readiness {
            status,
            reason: Some(reason),
        })
    };
    if !state.engine.is_ready() {
        return not_ready("recovering", "open orders are still being picked up".into());
    }
    if let Err(why) = state.db_probe.answers(&state.pool).await {
        return not_ready("database_unreachable", why);
    }
    if let Some(holder) = state.engine.exchange().held_elsewhere() {
        let reason = format!("engine {holder} holds the venue's FIX session; this one stands by");
        return not_ready("standby", reason);
    }
    if !state.prices.listing_known().await {
        let reason = "the venue's symbols and prices are not known yet".to_owned();
        return not_ready("venue_not_priced", reason);
    }
    if !state.engine.lease().is_held() {
        let reason = "the lease was not renewed within its time to live".to_owned();
        return not_ready("no_lease", reason);
    }
    HttpResponse::Ok().json(Readiness {
        status: "ready",
        reason: None,
    })
}
