//! Order submission: one transaction stores the idempotency key with its answer, the order, its
//! first action, its reservation and its first event. Nothing is answered before it commits.

use serde_json::json;

use super::pricing;
use super::view::OrderView;
use crate::db::idempotency::{self as stored_keys, NewKey, StoredResponse};
use crate::db::leases::Fence;
use crate::db::ledger::{self, LedgerEntry};
use crate::db::orders::{self, OrderRow};
use crate::db::outbox;
use crate::domain::{
    AccountId, ActionKind, Cents, ClientOrderId, NewOrder, OrderId, OrderStatus, Side,
};
use crate::error::AppError;
use crate::idempotency::{self, IdempotencyKey, Verdict};

pub struct Submission {
    pub account: AccountId,
    pub key: IdempotencyKey,
    pub fingerprint: String,
    pub order: NewOrder,
    /// What the order reserves at and is sent with: see [`pricing::protection_price`].
    pub price: Option<Cents>,
    pub now: i64,
    pub ttl_micros: i64,
    /// The most keys the account may hold (0 = no cap).
    pub max_stored_keys: i64,
}

pub struct Submitted {
    pub response: StoredResponse,
    pub replayed: bool,
    pub created: Option<OrderId>,
}

/// Runs the whole submission in one immediate (write-locked) transaction.
/// Records the order under `owner`: the engine that took the request carries it on.
pub fn submit(
    conn: &mut crate::db::DbConnection,
    sub: &Submission,
    owner: &Fence,
) -> Result<Submitted, AppError> {
    let stored = stored_keys::find(conn, sub.account, sub.key.as_str())?;
    let expired = stored.is_some();
    if let Verdict::Replay(response) = idempotency::check(stored, &sub.fingerprint, sub.now)? {
        return Ok(Submitted {
            response,
            replayed: true,
            created: None,
        });
    }
    if expired {
        stored_keys::delete(conn, sub.account, sub.key.as_str())?;
    }
    let (response, created) = match record_order(conn, sub, owner) {
        Ok((response, order)) => (response, Some(order)),
        // A business refusal is an answer: it is kept under the key like a success.
        Err(refusal @ (AppError::InsufficientFunds(_) | AppError::InsufficientPosition(_))) => {
            let response = StoredResponse {
                status: 422,
                location: None,
                body: refusal.body(),
            };
            (response, None)
        }
        Err(other) => return Err(other),
    };
    // After the order, so that rows are locked in the order every phase locks them (balances,
    // then the account); refused here, the phase rolls back and leaves nothing behind.
    stored_keys::take_place(conn, sub.account, sub.max_stored_keys)?;
    stored_keys::insert(
        conn,
        &NewKey {
            account: sub.account,
            key: sub.key.as_str(),
            fingerprint: &sub.fingerprint,
            response: &response,
            now: sub.now,
            expires_at: sub.now.saturating_add(sub.ttl_micros),
        },
    )?;
    Ok(Submitted {
        response,
        replayed: false,
        created,
    })
}

/// The order, its `created` action, its reservation and its `order.created` event.
fn record_order(
    conn: &mut crate::db::DbConnection,
    sub: &Submission,
    owner: &Fence,
) -> Result<(StoredResponse, OrderId), AppError> {
    let order = &sub.order;
    let order_id = OrderId::new();
    let (asset, amount) = pricing::reservation(order, sub.price)?;
    let reserve = LedgerEntry {
        key: format!("order:{order_id}:reserve"),
        account: sub.account,
        asset,
        order: Some(order_id),
        available_delta: -amount,
        reserved_delta: amount,
    };
    // Where the reservation would leave the balance, worked out under the balance's lock: enough,
    // or refused.
    let Some(reserved) = ledger::landing(conn, &reserve)? else {
        let available = ledger::balance(conn, sub.account, asset)?.available;
        return Err(match order.side {
            Side::Buy => AppError::InsufficientFunds(format!(
                "the order needs {} and {} is available",
                Cents(amount),
                Cents(available)
            )),
            Side::Sell => AppError::InsufficientPosition(format!(
                "the order sells {amount} {asset} and {available} are available"
            )),
        });
    };
    let row = OrderRow {
        id: order_id,
        account_id: sub.account,
        client_order_id: ClientOrderId::for_order(order_id),
        symbol: order.symbol.clone(),
        side: order.side,
        order_type: order.order_type,
        qty: order.qty,
        limit_price: order.limit_price,
        protection_price: sub.price,
        status: OrderStatus::PendingNew,
        filled_qty: 0,
        filled_notional: Cents::ZERO,
        created_at: sub.now,
        updated_at: sub.now,
        placement_sent: false,
        last_action_seq: 1,
        owner: owner.engine.clone(),
        owner_epoch: owner.epoch,
    };
    orders::insert(conn, &row)?;
    let detail = json!({
        "idempotency_key": sub.key.as_str(),
        "reserved": {"asset": asset, "amount": amount},
        "protection_price": sub.price,
    });
    orders::append_action(
        conn,
        order_id,
        1,
        ActionKind::Created,
        &detail.to_string(),
        sub.now,
    )?;
    ledger::book(conn, &reserve, reserved, sub.now)?;
    let view = OrderView::from(&row);
    outbox::append::<_, ()>(conn, sub.account, "order.created", &view, None, sub.now)?;
    let body = serde_json::to_string(&view).map_err(|e| AppError::Internal(e.to_string()))?;
    let response = StoredResponse {
        status: 201,
        location: Some(format!("/v1/orders/{order_id}")),
        body,
    };
    Ok((response, order_id))
}
