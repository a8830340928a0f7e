//! `GET /v1/balances`: cash and positions, available and reserved.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::error::AppError;
use super::extract::Authenticated;
use crate::app::AppState;
use crate::db;
use crate::db::ledger::{self, CASH};
use crate::domain::Cents;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CashView {
    pub available: Cents,
    pub reserved: Cents,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PositionView {
    pub available: i64,
    pub reserved: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Balances)]
pub struct BalancesView {
    pub cash: CashView,
    pub positions: BTreeMap<String, PositionView>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/balances").get(get_balances));
}

#[utoipa::path(get, path = "/v1/balances", tag = "accounts", security(("account" = [])),
    responses((status = 200, body = BalancesView), (status = 401, body = crate::error::ErrorBody)))]
pub(crate) async fn get_balances(
    state: web::Data<AppState>,
    Authenticated(account): Authenticated,
) -> Result<HttpResponse, AppError> {
    let rows = db::run(&state.pool, move |conn| ledger::balances(conn, account)).await?;
    let mut view = BalancesView {
        cash: CashView {
            available: Cents::ZERO,
            reserved: Cents::ZERO,
        },
        positions: BTreeMap::new(),
    };
    for (asset, balance) in rows {
        if asset == CASH {
            view.cash = CashView {
                available: Cents(balance.available),
                reserved: Cents(balance.reserved),
            };
        } else {
            view.positions.insert(
                asset,
                PositionView {
                    available: balance.available,
                    reserved: balance.reserved,
                },
            );
        }
    }
    Ok(HttpResponse::Ok().json(view))
}
