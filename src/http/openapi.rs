//! `GET /openapi.json`: the engine's API, described from the handlers themselves.

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, balances, exchange_events, exchange_faults, ops, orders, prices, stream};
use crate::domain::{OrderType, Side};
use crate::error::{ErrorBody, ErrorDetail};
use crate::exchange::wire::{ExchangeFill, PushEvent, PushType};
use crate::orders::request::OrderRequest;
use crate::orders::{ActionView, FillView, OrderView};

#[derive(OpenApi)]
#[openapi(
    info(title = "orderkeeper", description = "An equity order engine that never charges twice and never loses an order."),
    paths(
        orders::submit_order, orders::list_orders, orders::get_order, orders::order_actions,
        orders::order_fills, orders::cancel_order, balances::get_balances, admin::create_account,
        exchange_events::receive, prices::prices, exchange_faults::get_faults, exchange_faults::put_faults,
        stream::stream, ops::healthz, ops::readyz, ops::metrics,
    ),
    components(schemas(
        OrderRequest, OrderView, FillView, ActionView, Side, OrderType, ErrorBody, ErrorDetail,
        balances::BalancesView, balances::CashView, balances::PositionView,
        admin::NewAccountRequest, admin::CreatedAccountView, PushEvent, PushType, ExchangeFill,
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

/// Declares the `Authorization: Bearer <token>` scheme the `/v1` routes use.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/openapi.json").get(openapi_json));
}

async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
