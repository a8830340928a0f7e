//! Modifying a resting order: the customer's new quantity and/or limit, recorded at once as
//! `replace_requested` under its Idempotency-Key, with what the new terms may need held back
//! before anything is sent. The venue's answer is the order actor's to record (`orders::status`):
//! `replaced` trims the hold to the new terms, `replace_rejected` to the old ones.

use std::collections::BTreeSet;

use super::phase::{self, KeyAnswer, Move, Planned};
use super::pricing::{hold, limit_while_replacing};
use super::view::OrderView;
use super::{one_more_key, OrderError, Refusal};
use crate::db::idempotency::{self as stored_keys, StoredResponse};
use crate::db::ledger::{self, LedgerEntry};
use crate::db::orders::{self, OrderRow};
use crate::db::DbConnection;
use crate::db::{accounts, trading};
use crate::domain::risk::OrderToCheck;
use crate::domain::{
    AccountId, Action, Cents, ClientOrderId, OrderEvent, OrderId, OrderStatus, OrderType, Side,
    Terms,
};
use crate::idempotency::{self, IdempotencyKey, Verdict};

/// A customer's replace, as the edge parsed it.
#[derive(Debug, Clone)]
pub struct ReplaceRequest {
    pub account: AccountId,
    pub order: OrderId,
    pub key: IdempotencyKey,
    pub fingerprint: String,
    pub qty: Option<i64>,
    pub limit_price: Option<Cents>,
    /// The venue's last prices as the engine last saw them, for the risk limits.
    pub last_prices: std::collections::BTreeMap<String, Cents>,
    pub now: i64,
    pub ttl_micros: i64,
    pub max_stored_keys: i64,
}

/// The answer to a replace: stored under its key, and whether this phase moved the order.
#[derive(Debug, Clone)]
pub struct ReplaceAnswer {
    pub response: StoredResponse,
    pub replayed: bool,
    /// The order as this phase left it `pending_replace`.
    pub moved: Option<OrderRow>,
}

/// Records a replace of an order of the account, or its refusal, in one phase with its key.
pub fn request(conn: &mut DbConnection, req: &ReplaceRequest) -> Result<ReplaceAnswer, OrderError> {
    let stored = stored_keys::find(conn, req.account, req.key.as_str())?;
    let expired = stored.is_some();
    match idempotency::check(stored, &req.fingerprint, req.now) {
        Verdict::New => {}
        Verdict::Replay(response) => {
            return Ok(ReplaceAnswer {
                response,
                replayed: true,
                moved: None,
            })
        }
        Verdict::Reused => return Err(OrderError::KeyReused),
    }
    let row = match orders::find_for_update(conn, req.order)? {
        Some(row) if row.account_id == req.account => row,
        _ => return Err(OrderError::NotFound),
    };
    if matches!(
        row.status,
        OrderStatus::PendingNew | OrderStatus::PendingCancel | OrderStatus::PendingReplace
    ) {
        return Err(OrderError::Busy(row.status));
    }
    let asset = row.reserved_asset().to_owned();
    let pair = BTreeSet::from([(req.account, asset.clone())]);
    let mut books = ledger::lock_balances(conn, &pair)?;
    let gates = accounts::gates_locked(conn, &BTreeSet::from([req.account]))?;
    let gate = gates.get(&req.account).copied().unwrap_or_default();
    one_more_key(gate.stored_keys, expired, req.max_stored_keys)?;
    let halted_all = trading::halted_for_phase(conn)?;
    let held = ledger::reserved_for_orders(conn, &[(row.id, asset.as_str())])?
        .get(&row.id)
        .copied()
        .unwrap_or_default();
    // The new terms' hold, booked before anything is sent, or why there is none.
    let terms = OrderToCheck {
        qty: req.qty.unwrap_or(row.qty),
        limit_price: req.limit_price.or(row.limit_price),
        stop_price: row.stop_price,
        last_price: req.last_prices.get(row.symbol.as_str()).copied(),
    };
    let gated = Refusal::of_gate(&gate, halted_all, terms, None).map_or(Ok(()), Err);
    let decided = gated
        .and_then(|()| plan(&row, req, held))
        .and_then(|(moved, raise)| {
            let booking = match raise {
                Some(entry) => {
                    let more = entry.reserved_delta;
                    Some(phase::book(&mut books, entry).ok_or_else(|| short(&row, &books, more))?)
                }
                None => None,
            };
            Ok((moved, booking))
        });
    let (mut planned, response, moved) = match decided {
        Err(refusal) => (Planned::default(), refusal.stored(), None),
        Ok((moved, booking)) => {
            let row = moved.row.clone();
            let response = StoredResponse {
                status: 202,
                location: None,
                body: serde_json::to_string(&OrderView::from(&row))?,
            };
            let planned = Planned {
                bookings: booking.into_iter().collect(),
                ..Planned::moves(moved)
            };
            (planned, response, Some(row))
        }
    };
    planned.key = Some(KeyAnswer {
        account: req.account,
        key: req.key.as_str().to_owned(),
        fingerprint: req.fingerprint.clone(),
        response: response.clone(),
        now: req.now,
        expires_at: req.now.saturating_add(req.ttl_micros),
        replaces_expired: expired,
    });
    phase::write(conn, &[planned], &[], req.now)?;
    Ok(ReplaceAnswer {
        response,
        replayed: false,
        moved,
    })
}

/// The order moved to `pending_replace` with the new terms, and what must be held back for them
/// first (nothing when the order already holds enough for either version); or why it cannot be.
fn plan(
    row: &OrderRow,
    req: &ReplaceRequest,
    held: i64,
) -> Result<(Move, Option<LedgerEntry<'static>>), Refusal> {
    let not = |why: &str| Refusal::NotModifiable(why.to_owned());
    if row.order_type == OrderType::Market {
        return Err(not("a market order has no terms to change"));
    }
    if row.order_type.is_stop() {
        return Err(not(
            "a stop order's terms are not changed: cancel it and place another",
        ));
    }
    if row.status.is_terminal() {
        return Err(not(&format!("it is {}", row.status)));
    }
    let qty = req.qty.unwrap_or(row.qty);
    let limit_price = req.limit_price.or(row.limit_price);
    let next = row
        .state()
        .apply(Action::ReplaceRequested { qty })
        .map_err(|_| {
            not(&format!(
                "the new qty {qty} must be above the {} already filled",
                row.filled_qty
            ))
        })?;
    let limit = limit_while_replacing(row.side, row.limit_price, limit_price);
    let left = row.qty.max(qty) - row.filled_qty;
    let needed = hold(row.side, limit, left).ok_or_else(|| not("the new value is too large"))?;
    let raise = needed - held;
    let version = row.version + 1;
    let terms = Terms {
        client_order_id: ClientOrderId::for_version(row.id, version).to_string(),
        version,
        qty,
        limit_price,
    };
    let event = OrderEvent::ReplaceRequested {
        terms,
        reserved_more: raise.max(0),
    };
    let mut pending = row.clone();
    pending.replacing_limit_price = limit_price;
    pending.protection_price = limit;
    let moved = Move::retermed(pending, next, &event, req.now);
    let entry = (raise > 0).then(|| LedgerEntry {
        key: format!("order:{}:v{version}:hold", row.id),
        account: row.account_id,
        asset: row.reserved_asset().to_owned().into(),
        order: Some(row.id),
        available_delta: -raise,
        reserved_delta: raise,
    });
    Ok((moved, entry))
}

/// The refusal of a replace whose hold the account cannot cover.
fn short(row: &OrderRow, books: &phase::Books, entry_more: i64) -> Refusal {
    let asset = row.reserved_asset();
    let available = books
        .get(&(row.account_id, asset.to_owned()))
        .map_or(0, |b| b.available);
    match row.side {
        Side::Buy => Refusal::InsufficientFunds(format!(
            "until the venue answers, the order must hold {} more (enough for either version) and {} is available",
            Cents(entry_more),
            Cents(available)
        )),
        Side::Sell => Refusal::InsufficientPosition(format!(
            "until the venue answers, the order must hold {entry_more} more {asset} and {available} are available"
        )),
    }
}
