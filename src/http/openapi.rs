//! `GET /openapi.json`: the engine's API, described from the handlers themselves.

use actix_web::{web, HttpResponse};
use std::collections::HashMap;
use std::sync::OnceLock;

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{
    admin, balances, exchange_events, exchange_faults, ops, orders, positions, prices, stream,
    trading,
};
use crate::audit::{AuditVerdict, Check, Report, Violation};
use crate::domain::{ActionKind, FillSource, OrderStatus, OrderType, Side, TimeInForce};
use crate::engine::pushes::PushOutcome;
use crate::engine::RecoverySummary;
use crate::error::{ErrorBody, ErrorDetail};
use crate::exchange::sim::faults::Faults;
use crate::exchange::wire::{ExchangeFill, PushEvent, PushType};
use crate::orders::request::{OrderRequest, ReplaceBody};
use crate::orders::{ActionView, FillView, OrderView};

#[derive(OpenApi)]
#[openapi(
    info(title = "orderkeeper", description = "An equity order engine that never charges twice and never loses an order."),
    paths(
        orders::submit_order, orders::list_orders, orders::get_order, orders::order_actions,
        orders::order_fills, orders::cancel_order, orders::cancel_all_orders, orders::replace_order, balances::get_balances, positions::get_positions, trading::put_limits, trading::put_account_trading, trading::put_trading, trading::get_trading, admin::create_account, admin::audit,
        exchange_events::receive, prices::prices, exchange_faults::get_faults, exchange_faults::put_faults,
        stream::stream, ops::healthz, ops::readyz, ops::metrics,
    ),
    components(schemas(
        OrderRequest, ReplaceBody, OrderView, FillView, ActionView, Side, OrderType, TimeInForce, OrderStatus, ActionKind,
        FillSource, ErrorBody, ErrorDetail, orders::StatusQuery,
        balances::BalancesView, balances::CashView, balances::PositionView, positions::PositionPnlView, trading::LimitsRequest, trading::LimitsView, trading::HaltRequest, trading::HaltView, trading::TradingView,
        admin::NewAccountRequest, admin::CreatedAccountView, PushEvent, PushType, ExchangeFill,
        Report, Check, Violation, AuditVerdict, Faults, ops::Health, ops::Readiness, RecoverySummary,
        exchange_events::PushAnswer, PushOutcome,
    )),
    modifiers(&BearerAuth, &Conventions),
)]
pub struct ApiDoc;

/// Declares the two `Authorization: Bearer <token>` schemes of the `/v1` routes: an account's
/// token and the operator's admin token are different secrets, and a route takes one of them.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in [
            (
                "account",
                "An account's token, as POST /v1/admin/accounts answered it",
            ),
            ("admin", "The operator's admin token (--admin-token)"),
        ] {
            let scheme = HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description))
                .build();
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
    }
}

/// What every operation may answer besides its own responses, added in one place so that no
/// operation forgets one: 401 where a token is required, and 400, 413 and 415 where a body is
/// read.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                if secured {
                    answers(
                        operation,
                        "401",
                        "unauthorized: a valid bearer token is required",
                    );
                }
                if operation.request_body.is_some() {
                    answers(
                        operation,
                        "400",
                        "invalid_request: the body is not what is described",
                    );
                    answers(
                        operation,
                        "413",
                        "payload_too_large: the body is over 64 KiB",
                    );
                    answers(
                        operation,
                        "415",
                        "unsupported_media_type: the body must be application/json",
                    );
                }
            }
        }
    }
}

fn answers(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| {
            let body = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build();
            ResponseBuilder::new()
                .description(description)
                .content("application/json", body)
                .build()
                .into()
        });
}

/// The methods a path pattern answers (`GET, POST`), for the `Allow` header of a 405: read from
/// this very description, so the two cannot disagree. Pages outside the API answer GET.
pub fn allowed_methods(pattern: &str) -> String {
    static ALLOWED: OnceLock<HashMap<String, String>> = OnceLock::new();
    let allowed = ALLOWED.get_or_init(|| {
        ApiDoc::openapi()
            .paths
            .paths
            .into_iter()
            .map(|(path, item)| {
                let methods: Vec<&str> = [
                    ("GET", item.get.is_some()),
                    ("PUT", item.put.is_some()),
                    ("POST", item.post.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ]
                .into_iter()
                .filter_map(|(method, present)| present.then_some(method))
                .collect();
                (path, methods.join(", "))
            })
            .collect()
    });
    allowed
        .get(pattern)
        .cloned()
        .unwrap_or_else(|| "GET".to_owned())
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/openapi.json").get(openapi_json));
}

async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

/// The description as served: utoipa's, with the keywords its types cannot hold added.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    // An opening position's key is a symbol.
    let positions =
        &mut doc["components"]["schemas"]["NewAccountRequest"]["properties"]["positions"];
    if let Some(positions) = positions.as_object_mut() {
        positions.insert(
            "propertyNames".into(),
            serde_json::json!({"pattern": crate::domain::symbol::SYMBOL_PATTERN}),
        );
    }
    doc
}
