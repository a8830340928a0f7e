//! `/v1/orders`: submit, read, list and cancel.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tracing::Instrument;

use super::error::AppError;
use super::extract::{id_in_path, idempotency_key, json_body, Authenticated};
use crate::app::AppState;
use crate::db::idempotency::{self as stored_keys, StoredKey, StoredResponse};
use crate::db::orders::{self as order_rows, StatusFilter};
use crate::db::{self, now_micros, DbError};
use crate::domain::{AccountId, OrderId, Symbol, TimeInForce, CASH};
use crate::engine::EngineError;
use crate::idempotency::{self, IdempotencyKey, Verdict};
use crate::metrics::KeyConflict;
use crate::orders::cancel::CancelAnswer;
use crate::orders::pricing;
use crate::orders::replace::ReplaceRequest;
use crate::orders::request::{
    parse_order_body, parse_replace_body, OrderRequest, ParsedOrder, ParsedReplace, ReplaceBody,
};
use crate::orders::submit::Submission;
use crate::orders::{ActionView, FillView, OrderError, OrderView};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/orders")
            .route(web::post().to(submit_order))
            .route(web::get().to(list_orders))
            .route(web::delete().to(cancel_all_orders)),
    )
    .service(
        web::resource("/v1/orders/{id}")
            .route(web::get().to(get_order))
            .route(web::patch().to(replace_order))
            .route(web::delete().to(cancel_order)),
    )
    .service(web::resource("/v1/orders/{id}/actions").get(order_actions))
    .service(web::resource("/v1/orders/{id}/fills").get(order_fills));
}

fn replay(stored: StoredResponse, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    response.content_type("application/json");
    if let Some(location) = stored.location {
        response.insert_header(("Location", location));
    }
    if replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    response.body(stored.body)
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> HttpResponse {
    HttpResponse::build(status).json(value)
}

#[utoipa::path(post, path = "/v1/orders", tag = "orders", security(("account" = [])),
    params(("Idempotency-Key" = String, Header, pattern = "^[!-~]{1,255}$", min_length = 1, max_length = 255, description = "1 to 255 visible ASCII characters; the same key and request answer the same")),
    request_body = OrderRequest,
    responses(
        (status = 201, description = "Created (or replayed, with Idempotent-Replayed: true)", body = OrderView),
        (status = 400, description = "invalid_request, idempotency_key_missing, invalid_idempotency_key", body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 409, description = "idempotency_key_in_use", body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody),
        (status = 422, description = "insufficient_funds, insufficient_position, risk_limit, unknown_symbol, idempotency_key_reused", body = crate::error::ErrorBody),
        (status = 423, description = "trading_halted: the account, or every account, is halted", body = crate::error::ErrorBody),
        (status = 429, description = "rate_limited or too_many_stored_keys, with Retry-After", body = crate::error::ErrorBody),
        (status = 503, description = "exchange_unavailable: the venue cannot price the order, or this engine stands by while another holds the venue's FIX session; service_unavailable: the database", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn submit_order(
    state: web::Data<AppState>,
    Authenticated(account): Authenticated,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let span = tracing::info_span!(
        "submit_order",
        account_id = %account,
        idempotency_key = tracing::field::Empty,
        order_id = tracing::field::Empty,
        client_order_id = tracing::field::Empty,
    );
    let answer = submit(&state, account, &req, payload)
        .instrument(span)
        .await;
    match &answer {
        Err(AppError::IdempotencyKeyInUse) => {
            state.engine.metrics().key_conflict(KeyConflict::InUse)
        }
        Err(AppError::IdempotencyKeyReused) => {
            state.engine.metrics().key_conflict(KeyConflict::Reused)
        }
        _ => {}
    }
    answer
}

async fn submit(
    state: &AppState,
    account: AccountId,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    // First, so a refused request reads and stores nothing.
    state.order_rate.admit(account)?;
    let key = idempotency_key(req)?;
    tracing::Span::current().record("idempotency_key", key.as_str());
    let ParsedOrder { order, fingerprint } = parse_order_body(&json_body(req, payload).await?)?;
    // A retry of a key this engine answered lately is answered from memory, however busy the
    // writer is.
    let remembered = state.answered.live(account, &key, now_micros());
    if let Some(answer) = answer_stored(state, remembered, &fingerprint) {
        return answer;
    }
    // The submit transaction itself tells a replay from a new request, so the common case reads
    // nothing first. Only when it cannot go ahead (the key is held by a request still running,
    // or the exchange cannot price the order) is the stored key asked directly: a replay of a
    // finished request answers even then.
    let Some(_in_flight) = state.in_flight.claim(account, &key) else {
        return replay_or(
            state,
            account,
            &key,
            &fingerprint,
            AppError::IdempotencyKeyInUse,
        )
        .await;
    };
    if let Some(holder) = state.engine.exchange().held_elsewhere() {
        let refused = AppError::ExchangeUnavailable(format!(
            "this engine stands by: engine {holder} holds the venue's FIX session, send orders there"
        ));
        return replay_or(state, account, &key, &fingerprint, refused).await;
    }
    let price = match pricing::protection_price(&state.prices, &order).await {
        Ok(price) => price,
        Err(refused) => return replay_or(state, account, &key, &fingerprint, refused.into()).await,
    };
    let now = now_micros();
    let expires_at = match order.time_in_force {
        TimeInForce::Day => Some(
            state
                .session_close
                .next_after(now)
                .map_err(AppError::internal)?,
        ),
        _ => None,
    };
    let submitted = state
        .engine
        .submit(Submission {
            account,
            key: key.clone(),
            fingerprint: fingerprint.clone(),
            last_price: state.prices.known(order.symbol.as_str()),
            order,
            price,
            now,
            ttl_micros: state.idempotency_ttl_micros,
            max_stored_keys: state.max_stored_keys,
            expires_at,
        })
        .await;
    let submitted = match submitted {
        // Another engine committed this key while this one worked on it: answer as it did.
        Err(EngineError::Order(OrderError::Db(DbError::KeyInUse))) => {
            return replay_or(
                state,
                account,
                &key,
                &fingerprint,
                AppError::IdempotencyKeyInUse,
            )
            .await
        }
        other => other?,
    };
    if submitted.replayed {
        state.engine.metrics().idempotent_replay();
    }
    state.answered.remember(
        account,
        key,
        StoredKey::of(&submitted.response, fingerprint, submitted.key_expires_at),
    );
    Ok(replay(submitted.response, submitted.replayed))
}

/// The stored answer to this key and request if there is one, else `otherwise`.
async fn replay_or(
    state: &AppState,
    account: AccountId,
    key: &IdempotencyKey,
    fingerprint: &str,
    otherwise: AppError,
) -> Result<HttpResponse, AppError> {
    let wanted = key.clone();
    let stored = db::run(&state.pool, move |conn| {
        stored_keys::find(conn, account, wanted.as_str())
    })
    .await?;
    if let Some(stored) = stored.as_ref().filter(|s| s.expires_at > now_micros()) {
        state
            .answered
            .remember(account, key.clone(), stored.clone());
    }
    answer_stored(state, stored, fingerprint).unwrap_or(Err(otherwise))
}

/// The answer a stored key gives this request: its replay, or a refusal of the key's reuse; None
/// where there is no live key, and the request goes through.
fn answer_stored(
    state: &AppState,
    stored: Option<StoredKey>,
    fingerprint: &str,
) -> Option<Result<HttpResponse, AppError>> {
    match idempotency::check(stored, fingerprint, now_micros()) {
        Verdict::Replay(stored) => {
            state.engine.metrics().idempotent_replay();
            Some(Ok(replay(stored, true)))
        }
        Verdict::Reused => Some(Err(AppError::IdempotencyKeyReused)),
        Verdict::New => None,
    }
}

/// Which orders a list holds.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StatusQuery {
    Open,
    Closed,
    All,
}

impl From<StatusQuery> for StatusFilter {
    fn from(status: StatusQuery) -> Self {
        match status {
            StatusQuery::Open => StatusFilter::Open,
            StatusQuery::Closed => StatusFilter::Closed,
            StatusQuery::All => StatusFilter::All,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    status: Option<StatusQuery>,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/orders", tag = "orders", security(("account" = [])),
    params(("status" = Option<StatusQuery>, Query, description = "open (default), closed or all"),
           ("limit" = Option<i64>, Query, minimum = 1, description = "100 by default; more than 1000 is taken as 1000")),
    responses((status = 200, body = [OrderView]), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
pub(crate) async fn list_orders(
    state: web::Data<AppState>,
    Authenticated(account): Authenticated,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let filter = query.status.map_or(StatusFilter::Open, StatusFilter::from);
    let limit = match query.limit {
        None => 100,
        Some(n) if n < 1 => {
            return Err(AppError::InvalidRequest("limit must be at least 1".into()))
        }
        Some(n) => n.min(1000),
    };
    let rows = db::run(&state.pool, move |conn| {
        order_rows::list(conn, account, filter, limit)
    })
    .await?;
    let views: Vec<OrderView> = rows.iter().map(OrderView::from).collect();
    Ok(json(StatusCode::OK, &views))
}

/// Any path segment that is not an order id names no order: 404, like an id of another account.
/// The `{id}` of an order's paths, described once for each of them. Only a description: the
/// handlers take the segment as text and `id_in_path` parses it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct OrderPath {
    /// The order's id
    #[param(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    id: String,
}

#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders", security(("account" = [])),
    params(OrderPath), responses((status = 200, body = OrderView), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn get_order(
    state: web::Data<AppState>,
    Authenticated(account): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let order = id_in_path::<OrderId>(&path)?;
    let row = db::run(&state.pool, move |conn| {
        order_rows::find_owned(conn, account, order)
    })
    .await?;
    Ok(json(StatusCode::OK, &OrderView::from(&row)))
}

/// Reads something of an order its owner may see.
async fn read_owned<T, R>(
    state: &AppState,
    account: AccountId,
    path: &str,
    read: R,
) -> Result<T, AppError>
where
    T: Send + 'static,
    R: FnOnce(&mut crate::db::DbConnection, OrderId) -> Result<T, crate::db::DbError>
        + Send
        + 'static,
{
    let order = id_in_path::<OrderId>(path)?;
    let read = db::run(&state.pool, move |conn| {
        order_rows::find_owned(conn, account, order)?;
        read(conn, order)
    });
    Ok(read.await?)
}

#[utoipa::path(get, path = "/v1/orders/{id}/actions", tag = "orders", security(("account" = [])),
    params(OrderPath), responses((status = 200, body = [ActionView]), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn order_actions(
    state: web::Data<AppState>,
    Authenticated(account): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let rows = read_owned(&state, account, &path, order_rows::actions).await?;
    let views: Vec<ActionView> = rows.iter().map(ActionView::from).collect();
    Ok(json(StatusCode::OK, &views))
}

#[utoipa::path(get, path = "/v1/orders/{id}/fills", tag = "orders", security(("account" = [])),
    params(OrderPath), responses((status = 200, body = [FillView]), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn order_fills(
    state: web::Data<AppState>,
    Authenticated(account): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let rows = read_owned(&state, account, &path, order_rows::fills).await?;
    let views: Vec<FillView> = rows.iter().map(FillView::from).collect();
    Ok(json(StatusCode::OK, &views))
}

#[utoipa::path(delete, path = "/v1/orders/{id}", tag = "orders", security(("account" = [])),
    params(OrderPath),
    responses((status = 202, description = "Cancel recorded: pending_cancel", body = OrderView),
              (status = 200, description = "Already pending_cancel or canceled", body = OrderView),
              (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 422, description = "order_not_cancelable", body = crate::error::ErrorBody)))]
pub(crate) async fn cancel_order(
    state: web::Data<AppState>,
    Authenticated(account): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let order = id_in_path::<OrderId>(&path)?;
    let span = tracing::info_span!("cancel_order", account_id = %account, order_id = %order);
    let (answer, row) = state.engine.cancel(account, order).instrument(span).await?;
    let status = match answer {
        CancelAnswer::Requested => StatusCode::ACCEPTED,
        CancelAnswer::AlreadyRequested => StatusCode::OK,
    };
    Ok(json(status, &OrderView::from(&row)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct CancelAllQuery {
    symbol: Option<String>,
}

#[utoipa::path(delete, path = "/v1/orders", tag = "orders", security(("account" = [])),
    params(("symbol" = Option<String>, Query, pattern = "^[A-Z0-9&-]{1,32}$", description = "only the orders of this symbol")),
    responses((status = 202, description = "Every open order of the account (of the symbol), now pending_cancel; newest first", body = [OrderView]),
              (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
pub(crate) async fn cancel_all_orders(
    state: web::Data<AppState>,
    Authenticated(account): Authenticated,
    query: web::Query<CancelAllQuery>,
) -> Result<HttpResponse, AppError> {
    let symbol = match query.into_inner().symbol {
        None => None,
        // The cash ledger's name is no symbol an order is of: none to cancel.
        Some(cash) if cash == CASH => {
            return Ok(json(StatusCode::ACCEPTED, &Vec::<OrderView>::new()))
        }
        Some(text) => {
            Some(Symbol::parse(&text).map_err(|why| AppError::InvalidRequest(why.to_owned()))?)
        }
    };
    let span = tracing::info_span!("cancel_all_orders", account_id = %account);
    let answers = state
        .engine
        .cancel_all(account, symbol)
        .instrument(span)
        .await?;
    let views: Vec<OrderView> = answers
        .iter()
        .map(|(_, row)| OrderView::from(row))
        .collect();
    Ok(json(StatusCode::ACCEPTED, &views))
}

#[utoipa::path(patch, path = "/v1/orders/{id}", tag = "orders", security(("account" = [])),
    params(OrderPath, ("Idempotency-Key" = String, Header, pattern = "^[!-~]{1,255}$", min_length = 1, max_length = 255, description = "1 to 255 visible ASCII characters; the same key and request answer the same")),
    request_body = ReplaceBody,
    responses(
        (status = 202, description = "Recorded: pending_replace until the venue answers (or replayed, with Idempotent-Replayed: true)", body = OrderView),
        (status = 400, description = "invalid_request, idempotency_key_missing, invalid_idempotency_key", body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "order_busy (a cancel or replace under way, or not yet acknowledged) or idempotency_key_in_use, with Retry-After", body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody),
        (status = 422, description = "order_not_modifiable, insufficient_funds, insufficient_position, risk_limit, idempotency_key_reused", body = crate::error::ErrorBody),
        (status = 423, description = "trading_halted: the account, or every account, is halted", body = crate::error::ErrorBody),
        (status = 429, description = "rate_limited or too_many_stored_keys, with Retry-After", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn replace_order(
    state: web::Data<AppState>,
    Authenticated(account): Authenticated,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    state.order_rate.admit(account)?;
    let order = id_in_path::<OrderId>(&path)?;
    let key = idempotency_key(&req)?;
    let span = tracing::info_span!("replace_order", account_id = %account, order_id = %order, idempotency_key = key.as_str());
    let body = json_body(&req, payload).await?;
    let ParsedReplace {
        qty,
        limit_price,
        fingerprint,
    } = parse_replace_body(&format!("/v1/orders/{order}"), &body)?;
    let Some(_in_flight) = state.in_flight.claim(account, &key) else {
        return replay_or(
            &state,
            account,
            &key,
            &fingerprint,
            AppError::IdempotencyKeyInUse,
        )
        .await;
    };
    let answer = state
        .engine
        .replace(ReplaceRequest {
            account,
            order,
            key,
            fingerprint,
            qty,
            limit_price,
            last_prices: state.prices.known_all(),
            now: now_micros(),
            ttl_micros: state.idempotency_ttl_micros,
            max_stored_keys: state.max_stored_keys,
        })
        .instrument(span)
        .await?;
    if answer.replayed {
        state.engine.metrics().idempotent_replay();
    }
    Ok(replay(answer.response, answer.replayed))
}
