//! Order submission: one transaction stores the idempotency key with its answer, the order, its
//! first action, its reservation and its first event. Nothing is answered before it commits.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::phase::{self, Books, KeyAnswer, Move, Planned};
use super::pricing;
use super::view::OrderView;
use super::{one_more_key, OrderError, Refusal};
use crate::db::accounts::{self, Gate};
use crate::db::idempotency::{self as stored_keys, StoredKey, StoredResponse};
use crate::db::leases::{self, Fence};
use crate::db::ledger::{self, LedgerEntry};
use crate::db::orders::{self, OrderRow};
use crate::db::trading;
use crate::domain::risk::OrderToCheck;
use crate::domain::{
    AccountId, Cents, ClientOrderId, NewOrder, OrderEvent, OrderId, OrderStatus, Side,
};
use crate::idempotency::{self, IdempotencyKey, Verdict};

pub struct Submission {
    pub account: AccountId,
    pub key: IdempotencyKey,
    pub fingerprint: String,
    pub order: NewOrder,
    /// What the order reserves at and is sent with: see `pricing::protection_price`.
    pub price: Option<Cents>,
    /// The venue's last price of the symbol as the engine last saw it, for the risk limits.
    pub last_price: Option<Cents>,
    pub now: i64,
    pub ttl_micros: i64,
    /// The most keys the account may hold (0 = no cap).
    pub max_stored_keys: i64,
    /// When a `day` order expires (the session's next close); None for the others.
    pub expires_at: Option<i64>,
}

pub struct Submitted {
    pub response: StoredResponse,
    pub replayed: bool,
    /// When the key this answer is stored under expires.
    pub key_expires_at: i64,
    /// The new order's row as this phase committed it.
    pub created: Option<OrderRow>,
}

/// A submission, with the engine that records it.
pub struct SubmitItem {
    pub submission: Submission,
    pub owner: Fence,
}

/// Records any number of submissions in one phase and answers each, in order: a replay of its
/// stored answer, a new order, a refusal kept under its key (a halt, a risk limit, not enough cash
/// or shares), or an error that wrote nothing for it (a key reused for another request, too many
/// stored keys).
/// Every row is written with the others', one statement per table. An `Err` of the whole phase
/// (a database error) rolls it back; the caller may then run each submission alone.
///
/// Rows are locked in the order every phase locks them: balances, then accounts. Limits and halts
/// are read under the accounts' lock, and the open orders counted after it, so two submissions
/// of one account never both slip under `max_open_orders`.
pub fn submit(
    conn: &mut crate::db::DbConnection,
    items: &[(&Submission, &Fence)],
) -> Result<Vec<Result<Submitted, OrderError>>, OrderError> {
    let wanted: Vec<(AccountId, &str)> = items
        .iter()
        .map(|(sub, _)| (sub.account, sub.key.as_str()))
        .collect();
    let stored = stored_keys::find_among(conn, &wanted)?;
    // Each engine's epoch is read once (every submission of a batch is this engine's).
    let mut owners: BTreeMap<&str, Fence> = BTreeMap::new();
    for (_, fence) in items {
        if !owners.contains_key(fence.engine.as_str()) {
            owners.insert(&fence.engine, leases::owner_now(conn, fence)?);
        }
    }
    let prepared: Vec<Option<Result<NewOrderRows<'_>, OrderError>>> = items
        .iter()
        .map(|(sub, fence)| {
            let key = (sub.account, sub.key.as_str().to_owned());
            let live = stored.get(&key).is_some_and(|k| k.expires_at > sub.now);
            let owner = &owners[fence.engine.as_str()];
            (!live).then(|| prepare(sub, owner))
        })
        .collect();
    let pairs: BTreeSet<(AccountId, String)> = prepared
        .iter()
        .flatten()
        .flatten()
        .map(|new| (new.sub.account, new.reserve.asset.to_string()))
        .collect();
    let books = ledger::lock_balances(conn, &pairs)?;
    let accounts: BTreeSet<AccountId> = items.iter().map(|(sub, _)| sub.account).collect();
    let gates = accounts::gates_locked(conn, &accounts)?;
    let halted_all = trading::halted_for_phase(conn)?;
    let counted: BTreeSet<AccountId> = gates
        .iter()
        .filter(|(_, gate)| gate.limits.max_open_orders.is_some())
        .map(|(account, _)| *account)
        .collect();
    let open = orders::count_open(conn, &counted)?;

    let mut decided = Decided {
        books,
        gates,
        halted_all,
        open,
        ..Decided::default()
    };
    let mut answers = Vec::with_capacity(items.len());
    let mut now = 0;
    for ((sub, _), new) in items.iter().zip(prepared) {
        answers.push(decided.answer(sub, new, &stored));
        now = now.max(sub.now);
    }
    phase::write(conn, &decided.plans, &[], now)?;
    Ok(answers)
}

/// What a phase of submissions decided, item by item, before anything is written.
#[derive(Default)]
struct Decided<'a> {
    plans: Vec<Planned>,
    /// Keys answered in this phase, as they will be stored (live for the whole phase), with when
    /// they expire.
    answered: HashMap<(AccountId, &'a str), (StoredKey, i64)>,
    books: Books,
    /// Each account's gate, its stored keys counting those this phase stores.
    gates: BTreeMap<AccountId, Gate>,
    halted_all: bool,
    /// Each account's open orders (of those with a cap), counting those this phase creates.
    open: HashMap<AccountId, i64>,
}

impl<'a> Decided<'a> {
    fn answer(
        &mut self,
        sub: &'a Submission,
        new: Option<Result<NewOrderRows<'a>, OrderError>>,
        stored: &HashMap<(AccountId, String), StoredKey>,
    ) -> Result<Submitted, OrderError> {
        let key = (sub.account, sub.key.as_str());
        // The same key earlier in this phase, or stored before it.
        let earlier = self.answered.get(&key).cloned().or_else(|| {
            stored
                .get(&(key.0, key.1.to_owned()))
                .map(|k| (k.clone(), k.expires_at))
        });
        let expired = earlier.is_some();
        let key_expires_at = earlier.as_ref().map_or(0, |(_, at)| *at);
        match idempotency::check(earlier.map(|(k, _)| k), &sub.fingerprint, sub.now) {
            Verdict::New => {}
            Verdict::Replay(response) => {
                return Ok(Submitted {
                    response,
                    replayed: true,
                    key_expires_at,
                    created: None,
                })
            }
            Verdict::Reused => return Err(OrderError::KeyReused),
        }
        let new = new.ok_or_else(|| OrderError::broken("a new request was not prepared"))??;
        // One more stored key for the account: refused past its cap (an expired one gives its
        // place back).
        let gate = self.gates.entry(sub.account).or_default();
        gate.stored_keys = one_more_key(gate.stored_keys, expired, sub.max_stored_keys)?;
        let gate = *gate;
        let available = self
            .books
            .get(&(sub.account, new.reserve.asset.to_string()))
            .map_or(0, |b| b.available);
        let reserve = new.reserve.clone();
        let mut planned = Planned::default();
        let open = self.open.get(&sub.account).copied().unwrap_or(0);
        let checked = OrderToCheck {
            qty: sub.order.qty,
            limit_price: sub.order.limit_price,
            stop_price: sub.order.stop_price,
            last_price: sub.last_price,
        };
        let booked = match Refusal::of_gate(&gate, self.halted_all, checked, Some(open)) {
            Some(refusal) => Err(refusal),
            None => phase::book(&mut self.books, reserve)
                .ok_or_else(|| refusal(sub, &new.reserve, available)),
        };
        let (response, created) = match booked {
            Ok(booking) => {
                *self.open.entry(sub.account).or_default() += 1;
                let row = new.row.clone();
                planned = Planned {
                    bookings: vec![booking],
                    ..Planned::moves(Move::created(new.row, &new.event))
                };
                (new.response, Some(row))
            }
            // A business refusal is an answer: it is kept under the key like a success.
            Err(refusal) => (refusal.stored(), None),
        };
        // Answered here, the key replays within this phase as it will once stored.
        let key_expires_at = sub.now.saturating_add(sub.ttl_micros);
        let answer = StoredKey::of(&response, sub.fingerprint.clone(), i64::MAX);
        self.answered.insert(key, (answer, key_expires_at));
        planned.key = Some(KeyAnswer {
            account: sub.account,
            key: sub.key.as_str().to_owned(),
            fingerprint: sub.fingerprint.clone(),
            response: response.clone(),
            now: sub.now,
            expires_at: key_expires_at,
            replaces_expired: expired,
        });
        self.plans.push(planned);
        Ok(Submitted {
            response,
            replayed: false,
            key_expires_at,
            created,
        })
    }
}

fn refusal(sub: &Submission, reserve: &LedgerEntry<'_>, available: i64) -> Refusal {
    let (asset, amount) = (&reserve.asset, reserve.reserved_delta);
    match sub.order.side {
        Side::Buy => Refusal::InsufficientFunds(format!(
            "the order needs {} and {} is available",
            Cents(amount),
            Cents(available)
        )),
        Side::Sell => Refusal::InsufficientPosition(format!(
            "the order sells {amount} {asset} and {available} are available"
        )),
    }
}

/// A new order worked out before anything is written: its row, its reservation, its first
/// event, and the answer the customer gets once it commits.
struct NewOrderRows<'a> {
    sub: &'a Submission,
    row: OrderRow,
    reserve: LedgerEntry<'a>,
    event: OrderEvent,
    response: StoredResponse,
}

fn prepare<'a>(sub: &'a Submission, owner: &Fence) -> Result<NewOrderRows<'a>, OrderError> {
    let order = &sub.order;
    let order_id = OrderId::new();
    let (asset, amount) = pricing::reservation(order, sub.price)?;
    let reserve = LedgerEntry {
        key: format!("order:{order_id}:reserve"),
        account: sub.account,
        asset: asset.into(),
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
        // A stop is held here, reserved, until its trigger: nothing goes to the venue before.
        status: if order.order_type.is_stop() {
            OrderStatus::Held
        } else {
            OrderStatus::PendingNew
        },
        filled_qty: 0,
        filled_notional: Cents::ZERO,
        created_at: sub.now,
        updated_at: sub.now,
        placement_sent: false,
        last_action_seq: 1,
        owner: owner.engine.clone(),
        owner_epoch: owner.epoch,
        time_in_force: order.time_in_force,
        expires_at: sub.expires_at,
        expiring: false,
        version: 1,
        replacing_qty: None,
        replacing_limit_price: None,
        stop_price: order.stop_price,
    };
    let created = OrderEvent::Created {
        idempotency_key: sub.key.as_str().to_owned(),
        reserved_asset: asset.to_owned(),
        reserved_amount: amount,
        protection_price: sub.price,
        stop_price: order.stop_price,
    };
    let body = serde_json::to_string(&OrderView::from(&row))?;
    let response = StoredResponse {
        status: 201,
        location: Some(format!("/v1/orders/{order_id}")),
        body,
    };
    Ok(NewOrderRows {
        sub,
        row,
        reserve,
        event: created,
        response,
    })
}
