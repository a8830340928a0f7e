//! `GET /v1/balances`: cash and positions, available and reserved.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::extract::Authenticated;
use crate::db;
use crate::domain::Cents;
use crate::error::AppError;
use crate::ledger::{self, CASH};
use crate::startup::AppState;

#[derive(Debug, Serialize)]
struct CashView {
    available: Cents,
    reserved: Cents,
}

#[derive(Debug, Serialize)]
struct PositionView {
    available: i64,
    reserved: i64,
}

#[derive(Debug, Serialize)]
struct BalancesView {
    cash: CashView,
    positions: BTreeMap<String, PositionView>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/balances").get(get_balances));
}

async fn get_balances(
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
