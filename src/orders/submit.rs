//! Order submission: one transaction stores the idempotency key with its answer, the order, its
//! first action, its reservation and its first event. Nothing is answered before it commits.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::json;

use super::pricing;
use super::view::OrderView;
use crate::db::idempotency::{self as stored_keys, NewKey, StoredResponse};
use crate::db::leases::{self, Fence};
use crate::db::ledger::{self, LedgerEntry};
use crate::db::orders::{self, NewAction, OrderRow};
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
    /// The new order's row as this phase committed it.
    pub created: Option<OrderRow>,
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
        Ok((response, row)) => (response, Some(row)),
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
) -> Result<(StoredResponse, OrderRow), AppError> {
    let owner = leases::owner_now(conn, owner)?;
    let new = prepare(sub, &owner)?;
    // Where the reservation would leave the balance, worked out under the balance's lock: enough,
    // or refused.
    let Some(reserved) = ledger::landing(conn, &new.reserve)? else {
        let available = ledger::balance(conn, sub.account, new.reserve.asset)?.available;
        return Err(refusal(sub, &new.reserve, available));
    };
    orders::insert(conn, std::slice::from_ref(&new.row))?;
    orders::append_action(
        conn,
        new.row.id,
        1,
        ActionKind::Created,
        &new.detail,
        sub.now,
    )?;
    ledger::book(conn, &new.reserve, reserved, sub.now)?;
    outbox::append::<_, ()>(conn, sub.account, "order.created", &new.view, None, sub.now)?;
    Ok((new.response, new.row))
}

fn refusal(sub: &Submission, reserve: &LedgerEntry<'_>, available: i64) -> AppError {
    let (asset, amount) = (reserve.asset, reserve.reserved_delta);
    match sub.order.side {
        Side::Buy => AppError::InsufficientFunds(format!(
            "the order needs {} and {} is available",
            Cents(amount),
            Cents(available)
        )),
        Side::Sell => AppError::InsufficientPosition(format!(
            "the order sells {amount} {asset} and {available} are available"
        )),
    }
}

/// A new order worked out before anything is written: its row, its reservation, its first
/// action, its view, and the answer the customer gets once it commits.
struct NewOrderRows<'a> {
    sub: &'a Submission,
    row: OrderRow,
    reserve: LedgerEntry<'a>,
    detail: String,
    view: OrderView,
    response: StoredResponse,
}

fn prepare<'a>(sub: &'a Submission, owner: &Fence) -> Result<NewOrderRows<'a>, AppError> {
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
    let detail = json!({
        "idempotency_key": sub.key.as_str(),
        "reserved": {"asset": asset, "amount": amount},
        "protection_price": sub.price,
    })
    .to_string();
    let view = OrderView::from(&row);
    let body = serde_json::to_string(&view).map_err(|e| AppError::Internal(e.to_string()))?;
    let response = StoredResponse {
        status: 201,
        location: Some(format!("/v1/orders/{order_id}")),
        body,
    };
    Ok(NewOrderRows {
        sub,
        row,
        reserve,
        detail,
        view,
        response,
    })
}

/// A submission, with the engine that records it.
pub struct SubmitItem {
    pub submission: Submission,
    pub owner: Fence,
}

/// Many submissions in one phase: every new order's rows are written with the others', one
/// statement per table. Only plain new orders are taken: a submission whose key was stored
/// before (or comes twice here), or whose reservation does not land, is left out as None, for the
/// caller to run alone through [`submit`], which answers each such case. An error rolls the whole
/// phase back; then every submission runs alone.
pub fn submit_many(
    conn: &mut crate::db::DbConnection,
    items: &[std::sync::Arc<SubmitItem>],
) -> Result<Vec<Option<Submitted>>, AppError> {
    let wanted: Vec<(AccountId, &str)> = items
        .iter()
        .map(|i| (i.submission.account, i.submission.key.as_str()))
        .collect();
    let Some(first) = items.first() else {
        return Ok(Vec::new());
    };
    // Every submission of a batch was taken by this engine: one read of its epoch serves all.
    let owner = leases::owner_now(conn, &first.owner)?;
    let stored = stored_keys::stored_among(conn, &wanted)?;
    let mut keys_seen = HashSet::new();
    let mut plain: Vec<Option<NewOrderRows<'_>>> = items
        .iter()
        .map(|item| {
            let sub = &item.submission;
            let key = (sub.account, sub.key.as_str());
            let fresh = !stored.contains(&(key.0, key.1.to_owned())) && keys_seen.insert(key);
            fresh.then(|| prepare(sub, &owner).ok()).flatten()
        })
        .collect();
    let pairs: BTreeSet<(AccountId, String)> = plain
        .iter()
        .flatten()
        .map(|new| (new.sub.account, new.reserve.asset.to_owned()))
        .collect();
    let mut balances = ledger::lock_balances(conn, &pairs)?;
    let mut landings = BTreeMap::new();
    for slot in plain.iter_mut() {
        let Some(new) = slot else { continue };
        let pair = (new.sub.account, new.reserve.asset.to_owned());
        match balances.get(&pair).and_then(|b| b.after(&new.reserve)) {
            Some(landed) => {
                balances.insert(pair.clone(), landed);
                landings.insert(pair, landed);
            }
            // Refused (or no balance yet): its answer is written alone.
            None => *slot = None,
        }
    }
    let mut counts = BTreeMap::<AccountId, i64>::new();
    for new in plain.iter().flatten() {
        *counts.entry(new.sub.account).or_default() += 1;
    }
    if counts.is_empty() {
        // Nothing to write here: every submission runs alone.
        return Ok(plain.iter().map(|_| None).collect());
    }
    let taken = crate::db::accounts::take_for_new_orders(conn, &counts)?;
    let mut next_seq = BTreeMap::new();
    for (account, took) in &taken {
        next_seq.insert(*account, took.first_seq);
    }
    let (mut rows, mut actions, mut entries, mut events, mut keys) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for new in plain.iter().flatten() {
        let sub = new.sub;
        let took = taken
            .get(&sub.account)
            .ok_or_else(|| AppError::Internal("no seqs taken for an account".into()))?;
        // Past the cap, the whole phase rolls back: each submission alone is then refused or not.
        if sub.max_stored_keys > 0 && took.stored_keys > sub.max_stored_keys {
            return Err(AppError::TooManyStoredKeys(sub.max_stored_keys));
        }
        events.push(outbox::next_event(
            &mut next_seq,
            sub.account,
            "order.created",
            &new.view,
            sub.now,
        )?);
        rows.push(new.row.clone());
        actions.push(NewAction {
            order_id: new.row.id,
            seq: 1,
            kind: ActionKind::Created,
            detail: &new.detail,
            at: sub.now,
        });
        entries.push((new.reserve.clone(), sub.now));
        keys.push(NewKey {
            account: sub.account,
            key: sub.key.as_str(),
            fingerprint: &sub.fingerprint,
            response: &new.response,
            now: sub.now,
            expires_at: sub.now.saturating_add(sub.ttl_micros),
        });
    }
    orders::insert(conn, &rows)?;
    orders::append_actions(conn, &actions)?;
    ledger::book_new(conn, &entries, &landings)?;
    outbox::append_events(conn, &events)?;
    stored_keys::insert_many(conn, &keys)?;
    Ok(plain
        .into_iter()
        .map(|slot| {
            slot.map(|new| Submitted {
                response: new.response,
                replayed: false,
                created: Some(new.row),
            })
        })
        .collect())
}
