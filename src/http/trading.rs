//! Pre-trade risk limits and halts: set by the operator (`/v1/admin/…`), read by an account
//! (`GET /v1/trading`). Both take effect in the submit and replace phases, under the account's
//! lock, on every engine of the database.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::error::AppError;
use super::extract::{id_in_path, json_body, parse_json, Admin, Authenticated};
use crate::app::AppState;
use crate::db::{self, accounts, now_micros, orders, trading};
use crate::domain::{AccountId, Cents, RiskLimits};

/// The highest `price_band_percent` taken: a band wider than this limits nothing.
const MAX_BAND_PERCENT: i64 = 10_000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsRequest {
    /// The most one order may be worth (its qty at its limit, a market order at the last price).
    #[schema(
        pattern = r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?$",
        example = "50000.00"
    )]
    max_order_notional: Option<String>,
    /// The most orders open at once.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "crate::domain::whole_number::maybe_one")]
    max_open_orders: Option<i64>,
    /// How far from the last price, in percent, a limit price may be.
    #[schema(minimum = 0, maximum = 10000)]
    #[serde(default, deserialize_with = "crate::domain::whole_number::maybe_one")]
    price_band_percent: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Limits)]
pub struct LimitsView {
    account_id: String,
    max_order_notional: Option<Cents>,
    max_open_orders: Option<i64>,
    price_band_percent: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HaltRequest {
    halted: bool,
    /// Also cancel every open order (of the account, or of every account).
    #[serde(default)]
    cancel_open: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Halt)]
pub struct HaltView {
    /// The account halted or let go on; absent for every account.
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<String>,
    halted: bool,
    /// Orders this request moved to `pending_cancel`.
    canceled: usize,
}

/// Whether the account may trade now, as a submit would find it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Trading)]
pub struct TradingView {
    halted: bool,
    account_halted: bool,
    engine_halted: bool,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/admin/accounts/{id}/limits").put(put_limits))
        .service(web::resource("/v1/admin/accounts/{id}/trading").put(put_account_trading))
        .service(web::resource("/v1/admin/trading").put(put_trading))
        .service(web::resource("/v1/trading").get(get_trading));
}

/// The `{id}` of an account's operator paths. Only a description: the handlers take the segment
/// as text and `id_in_path` parses it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct AccountPath {
    /// The account's id
    #[param(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    id: String,
}

fn limits_of(body: LimitsRequest) -> Result<RiskLimits, AppError> {
    let max_order_notional = body
        .max_order_notional
        .map(|text| Cents::parse_amount(&text))
        .transpose()
        .map_err(AppError::InvalidRequest)?;
    if body.max_open_orders.is_some_and(|n| n < 0) {
        return Err(AppError::InvalidRequest(
            "max_open_orders cannot be negative".into(),
        ));
    }
    if body
        .price_band_percent
        .is_some_and(|p| !(0..=MAX_BAND_PERCENT).contains(&p))
    {
        return Err(AppError::InvalidRequest(format!(
            "price_band_percent is 0 to {MAX_BAND_PERCENT}"
        )));
    }
    Ok(RiskLimits {
        max_order_notional,
        max_open_orders: body.max_open_orders,
        price_band_percent: body.price_band_percent,
    })
}

/// `PUT /v1/admin/accounts/{id}/limits`: the account's limits, each absent one lifted.
#[utoipa::path(put, path = "/v1/admin/accounts/{id}/limits", tag = "accounts", security(("admin" = [])),
    params(AccountPath), request_body = LimitsRequest,
    responses((status = 200, body = LimitsView), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn put_limits(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let account: AccountId = id_in_path(&path)?;
    let limits = limits_of(parse_json(&json_body(&req, payload).await?)?)?;
    let set = state
        .writer
        .run(move |conn| accounts::set_limits(conn, account, &limits))
        .await?;
    if !set {
        return Err(AppError::NotFound);
    }
    Ok(HttpResponse::Ok().json(LimitsView {
        account_id: account.to_string(),
        max_order_notional: limits.max_order_notional,
        max_open_orders: limits.max_open_orders,
        price_band_percent: limits.price_band_percent,
    }))
}

/// `PUT /v1/admin/accounts/{id}/trading`: halts the account (new orders and replaces get 423,
/// cancels go on), or lets it trade again; with `cancel_open`, cancels its open orders too.
#[utoipa::path(put, path = "/v1/admin/accounts/{id}/trading", tag = "accounts", security(("admin" = [])),
    params(AccountPath), request_body = HaltRequest,
    responses((status = 200, body = HaltView), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn put_account_trading(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let account: AccountId = id_in_path(&path)?;
    let body: HaltRequest = parse_json(&json_body(&req, payload).await?)?;
    let halted = body.halted;
    let set = state
        .writer
        .run(move |conn| accounts::set_halted(conn, account, halted))
        .await?;
    if !set {
        return Err(AppError::NotFound);
    }
    let canceled = match body.cancel_open {
        true => cancel_open(&state, account).await?,
        false => 0,
    };
    Ok(HttpResponse::Ok().json(HaltView {
        account_id: Some(account.to_string()),
        halted,
        canceled,
    }))
}

/// `PUT /v1/admin/trading`: halts every account on every engine of the database, or lets them
/// trade again; with `cancel_open`, cancels every open order too.
#[utoipa::path(put, path = "/v1/admin/trading", tag = "accounts", security(("admin" = [])),
    request_body = HaltRequest,
    responses((status = 200, body = HaltView), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody)))]
pub(crate) async fn put_trading(
    state: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let body: HaltRequest = parse_json(&json_body(&req, payload).await?)?;
    let halted = body.halted;
    state
        .writer
        .run(move |conn| trading::set_halted(conn, halted, now_micros()))
        .await?;
    let mut canceled = 0;
    if body.cancel_open {
        let open = db::run(&state.pool, orders::accounts_with_open_orders).await?;
        for account in open {
            canceled += cancel_open(&state, account).await?;
        }
    }
    Ok(HttpResponse::Ok().json(HaltView {
        account_id: None,
        halted,
        canceled,
    }))
}

/// Cancels every open order of the account, as its own cancel-all does; how many it moved.
async fn cancel_open(state: &AppState, account: AccountId) -> Result<usize, AppError> {
    let answers = state.engine.cancel_all(account, None).await?;
    Ok(answers
        .iter()
        .filter(|(answer, _)| *answer == crate::orders::cancel::CancelAnswer::Requested)
        .count())
}

/// `GET /v1/trading`: whether the account may trade, and why not.
#[utoipa::path(get, path = "/v1/trading", tag = "accounts", security(("account" = [])),
    responses((status = 200, body = TradingView), (status = 401, body = crate::error::ErrorBody)))]
pub(crate) async fn get_trading(
    state: web::Data<AppState>,
    Authenticated(account): Authenticated,
) -> Result<HttpResponse, AppError> {
    let (account_halted, engine_halted) = db::run(&state.pool, move |conn| {
        let account_halted = accounts::halted(conn, account)?.unwrap_or(false);
        Ok::<_, db::DbError>((account_halted, trading::halted(conn)?))
    })
    .await?;
    Ok(HttpResponse::Ok().json(TradingView {
        halted: account_halted || engine_halted,
        account_halted,
        engine_halted,
    }))
}
