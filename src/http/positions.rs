//! `GET /v1/positions`: what the account traded, per symbol, with its profit and loss.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::error::AppError;
use super::extract::Authenticated;
use crate::app::AppState;
use crate::db;
use crate::db::positions;
use crate::domain::Cents;

/// A position as the fold of the account's fills (`domain::position`). `last_price` is the
/// venue's, and it and `unrealized_pnl` are null while the venue's prices cannot be read.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Position)]
pub struct PositionPnlView {
    pub symbol: String,
    /// Shares held; below zero, sold short.
    pub qty: i64,
    pub avg_cost: Cents,
    /// Profit (or, below zero, loss) its closing fills realized.
    #[schema(value_type = String, pattern = r"^-?\d+\.\d{2}$", example = "-12.50")]
    pub realized_pnl: Cents,
    pub last_price: Option<Cents>,
    /// What closing it at `last_price` would make (below zero, lose).
    #[schema(value_type = Option<String>, pattern = r"^-?\d+\.\d{2}$", example = "310.00")]
    pub unrealized_pnl: Option<Cents>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/positions").get(get_positions));
}

#[utoipa::path(get, path = "/v1/positions", tag = "accounts", security(("account" = [])),
    responses((status = 200, body = Vec<PositionPnlView>), (status = 401, body = crate::error::ErrorBody)))]
pub(crate) async fn get_positions(
    state: web::Data<AppState>,
    Authenticated(account): Authenticated,
) -> Result<HttpResponse, AppError> {
    let rows = db::run(&state.pool, move |conn| {
        positions::of_account(conn, account)
    })
    .await?;
    // Positions are the account's own record: they are answered even when the venue is not.
    let prices = state.prices.all().await.unwrap_or_default();
    let view: Vec<PositionPnlView> = rows
        .into_iter()
        .map(|row| {
            let position = row.position();
            let last_price = prices.get(&row.symbol).copied();
            PositionPnlView {
                unrealized_pnl: last_price.and_then(|last| position.unrealized(last)),
                last_price,
                symbol: row.symbol,
                qty: position.qty,
                avg_cost: position.avg_cost,
                realized_pnl: position.realized,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(view))
}
