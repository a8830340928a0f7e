//! An order's life: its statuses, the actions that move it, and the one table that says which moves
//! are allowed. The status is never stored on its own authority: it is the fold of the action log.

use super::new_order::MAX_QTY;
use super::Cents;

text_enum!(Side { Buy => "buy", Sell => "sell" });
text_enum!(OrderType {
    Limit => "limit",
    Market => "market",
    Stop => "stop",
    StopLimit => "stop_limit",
});

impl OrderType {
    /// Whether the engine holds the order until the last price crosses its stop.
    pub fn is_stop(self) -> bool {
        matches!(self, OrderType::Stop | OrderType::StopLimit)
    }

    /// What the venue is sent once the order is triggered: a stop goes on as a market order, a
    /// stop-limit as a limit order.
    pub fn as_sent(self) -> OrderType {
        match self {
            OrderType::Limit | OrderType::StopLimit => OrderType::Limit,
            OrderType::Market | OrderType::Stop => OrderType::Market,
        }
    }

    /// Whether the order names a limit price.
    pub fn has_limit(self) -> bool {
        self.as_sent() == OrderType::Limit
    }
}
text_enum!(
    /// How long an order lives: until cancelled, until the session's close, or only for what
    /// trades at once (`ioc`) or only if all of it does (`fok`).
    TimeInForce { Gtc => "gtc", Day => "day", Ioc => "ioc", Fok => "fok" }
);

impl TimeInForce {
    /// Whether the venue ends what it does not fill at once: a venue cancel of such an order is
    /// its expiry, not a customer's cancel.
    pub fn is_immediate(self) -> bool {
        matches!(self, TimeInForce::Ioc | TimeInForce::Fok)
    }

    /// The default, which requests may leave out.
    pub fn is_gtc(&self) -> bool {
        *self == TimeInForce::Gtc
    }
}

// By hand: `text_enum!` writes the variants, so none can be marked `#[default]`.
#[allow(clippy::derivable_impls)]
impl Default for TimeInForce {
    fn default() -> Self {
        TimeInForce::Gtc
    }
}
text_enum!(
    /// The channel that brought a fill first: the exchange's push, or the engine's poll.
    FillSource { Push => "push", Poll => "poll" }
);

text_enum!(
    /// What the customer sees. `filled`, `canceled`, `rejected` and `expired` are terminal.
    OrderStatus {
        Held => "held",
        PendingNew => "pending_new",
        New => "new",
        PartiallyFilled => "partially_filled",
        Filled => "filled",
        PendingCancel => "pending_cancel",
        Canceled => "canceled",
        Rejected => "rejected",
        Expired => "expired",
        PendingReplace => "pending_replace",
    }
);

text_enum!(
    /// Every step recorded in an order's action log.
    ActionKind {
        Created => "created",
        Held => "held",
        Triggered => "triggered",
        PlacementSent => "placement_sent",
        Accepted => "accepted",
        Rejected => "rejected",
        Fill => "fill",
        CancelRequested => "cancel_requested",
        Canceled => "canceled",
        Filled => "filled",
        ExpiryRequested => "expiry_requested",
        Expired => "expired",
        ReplaceRequested => "replace_requested",
        Replaced => "replaced",
        ReplaceRejected => "replace_rejected",
    }
);

text_enum!(
    /// Every kind of event the feed and the broker carry, as they spell it.
    EventKind {
        Created => "order.created",
        Held => "order.held",
        Triggered => "order.triggered",
        Accepted => "order.accepted",
        Rejected => "order.rejected",
        Fill => "order.fill",
        CancelRequested => "order.cancel_requested",
        Canceled => "order.canceled",
        Filled => "order.filled",
        Expired => "order.expired",
        ReplaceRequested => "order.replace_requested",
        Replaced => "order.replaced",
        ReplaceRejected => "order.replace_rejected",
        Recovered => "order.recovered",
    }
);

impl ActionKind {
    /// Whether the action begins an order's log: `held` begins a stop order's.
    pub fn is_creation(self) -> bool {
        matches!(self, ActionKind::Created | ActionKind::Held)
    }

    /// Whether the action ends the order.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ActionKind::Filled | ActionKind::Canceled | ActionKind::Rejected | ActionKind::Expired
        )
    }

    /// The feed event an action publishes; `placement_sent` and `expiry_requested` are internal
    /// and publish none (the customer hears of an expiry once it is done).
    pub fn event_kind(self) -> Option<EventKind> {
        match self {
            ActionKind::Created => Some(EventKind::Created),
            ActionKind::Held => Some(EventKind::Held),
            ActionKind::Triggered => Some(EventKind::Triggered),
            ActionKind::PlacementSent => None,
            ActionKind::Accepted => Some(EventKind::Accepted),
            ActionKind::Rejected => Some(EventKind::Rejected),
            ActionKind::Fill => Some(EventKind::Fill),
            ActionKind::CancelRequested => Some(EventKind::CancelRequested),
            ActionKind::Canceled => Some(EventKind::Canceled),
            ActionKind::Filled => Some(EventKind::Filled),
            ActionKind::ExpiryRequested => None,
            ActionKind::Expired => Some(EventKind::Expired),
            ActionKind::ReplaceRequested => Some(EventKind::ReplaceRequested),
            ActionKind::Replaced => Some(EventKind::Replaced),
            ActionKind::ReplaceRejected => Some(EventKind::ReplaceRejected),
        }
    }
}

impl OrderStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled
                | OrderStatus::Canceled
                | OrderStatus::Rejected
                | OrderStatus::Expired
        )
    }

    pub fn is_open(self) -> bool {
        !self.is_terminal()
    }
}

/// One recorded step of an order, with what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    /// A stop order's creation: recorded and reserved, and held here until its trigger.
    Held,
    /// The last price crossed the stop: the order goes on to the venue.
    Triggered,
    PlacementSent,
    Accepted,
    Rejected,
    Fill {
        qty: i64,
    },
    CancelRequested,
    Canceled,
    Filled,
    /// The engine cancels a `day` order at the session's close: the end that follows is `expired`.
    ExpiryRequested,
    Expired,
    /// The customer asks for new terms; `qty` is the new quantity.
    ReplaceRequested {
        qty: i64,
    },
    /// The venue took the new terms.
    Replaced {
        qty: i64,
    },
    /// The venue kept the old terms.
    ReplaceRejected,
}

impl Action {
    pub fn kind(self) -> ActionKind {
        match self {
            Action::Created => ActionKind::Created,
            Action::Held => ActionKind::Held,
            Action::Triggered => ActionKind::Triggered,
            Action::PlacementSent => ActionKind::PlacementSent,
            Action::Accepted => ActionKind::Accepted,
            Action::Rejected => ActionKind::Rejected,
            Action::Fill { .. } => ActionKind::Fill,
            Action::CancelRequested => ActionKind::CancelRequested,
            Action::Canceled => ActionKind::Canceled,
            Action::Filled => ActionKind::Filled,
            Action::ExpiryRequested => ActionKind::ExpiryRequested,
            Action::Expired => ActionKind::Expired,
            Action::ReplaceRequested { .. } => ActionKind::ReplaceRequested,
            Action::Replaced { .. } => ActionKind::Replaced,
            Action::ReplaceRejected => ActionKind::ReplaceRejected,
        }
    }

    /// The action a stored log row records; a fill and a replace also need their quantity.
    pub fn from_kind(kind: ActionKind, qty: Option<i64>) -> Option<Action> {
        let fill_qty = qty;
        Some(match kind {
            ActionKind::Created => Action::Created,
            ActionKind::Held => Action::Held,
            ActionKind::Triggered => Action::Triggered,
            ActionKind::PlacementSent => Action::PlacementSent,
            ActionKind::Accepted => Action::Accepted,
            ActionKind::Rejected => Action::Rejected,
            ActionKind::Fill => Action::Fill { qty: fill_qty? },
            ActionKind::CancelRequested => Action::CancelRequested,
            ActionKind::Canceled => Action::Canceled,
            ActionKind::Filled => Action::Filled,
            ActionKind::ExpiryRequested => Action::ExpiryRequested,
            ActionKind::Expired => Action::Expired,
            ActionKind::ReplaceRequested => Action::ReplaceRequested { qty: qty? },
            ActionKind::Replaced => Action::Replaced { qty: qty? },
            ActionKind::ReplaceRejected => Action::ReplaceRejected,
        })
    }
}

/// The part of an order that its actions change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderState {
    pub status: OrderStatus,
    pub qty: i64,
    pub filled_qty: i64,
    /// Whether a placement was ever sent: until then, nothing is at the exchange and a cancel can
    /// release at once.
    pub placement_sent: bool,
    /// Whether the engine asked for the order's expiry (a `day` order at the session's close):
    /// its end by cancel is then `expired`.
    pub expiring: bool,
    /// The quantity a replace in flight asks for: until the venue answers, either version may
    /// trade, so fills may reach the larger of the two.
    pub replacing: Option<i64>,
    /// The version of the terms the venue holds as far as the log knows: 1, and one more for each
    /// replace the venue took. A venue copy under a later version's id is a replace it took.
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("{action} is not allowed in status {status}")]
    NotAllowed {
        status: OrderStatus,
        action: ActionKind,
    },
    #[error("a fill of {fill} would take {filled} of {qty} over the order's quantity")]
    OverFill { filled: i64, fill: i64, qty: i64 },
    #[error("a fill must be of at least one share")]
    EmptyFill,
    #[error("filled recorded with {filled} of {qty} shares")]
    NotFullyFilled { filled: i64, qty: i64 },
    #[error("a replace to {qty} shares of an order with {filled} filled")]
    ReplaceBelowFilled { filled: i64, qty: i64 },
    #[error("the log does not start with created or held")]
    NoCreation,
    /// The venue's acknowledgement of an order it has already shown to be live (acknowledged, or
    /// filled: a fill pushed before the placing step's answer is the normal order of events on a
    /// real venue). Nothing to record, and nothing wrong.
    #[error("the order is already acknowledged")]
    AlreadyAcknowledged,
    /// The placement was recorded as sent already: a step that decided on an older copy of the
    /// order must not place it as if it never had been (its next step asks the venue first).
    #[error("the placement was recorded as sent already")]
    AlreadySent,
}

impl OrderState {
    /// The state right after `created`.
    pub fn created(qty: i64) -> Self {
        Self {
            status: OrderStatus::PendingNew,
            qty,
            filled_qty: 0,
            placement_sent: false,
            expiring: false,
            replacing: None,
            version: 1,
        }
    }

    /// The state right after `held`: a stop order waiting for its trigger.
    pub fn held(qty: i64) -> Self {
        Self {
            status: OrderStatus::Held,
            ..Self::created(qty)
        }
    }

    /// The most shares fills may reach: the order's quantity, or a replace's if it is larger.
    pub fn most_fillable(&self) -> i64 {
        self.replacing.map_or(self.qty, |new| new.max(self.qty))
    }

    /// Whether every share is filled, of either version while a replace is in flight.
    pub fn all_filled(&self) -> bool {
        self.filled_qty == self.qty || self.replacing == Some(self.filled_qty)
    }

    /// Resting, by what it has filled.
    fn resting(&self) -> OrderStatus {
        if self.filled_qty == 0 {
            OrderStatus::New
        } else {
            OrderStatus::PartiallyFilled
        }
    }

    /// The transition table: every (status, action) pair the engine accepts, and nothing else.
    pub fn apply(self, action: Action) -> Result<OrderState, TransitionError> {
        use Action as A;
        use OrderStatus as S;
        let refused = Err(TransitionError::NotAllowed {
            status: self.status,
            action: action.kind(),
        });
        let mut next = self;
        next.status = match (self.status, action) {
            (S::Filled | S::Canceled | S::Rejected | S::Expired, _) => return refused,
            (_, A::Created | A::Held) => return refused,
            // Held: nothing is at the venue. It goes on once, or is released by a cancel or an
            // expiry with no call (never sent).
            (S::Held, A::Triggered) => S::PendingNew,
            (S::Held, A::CancelRequested) => S::PendingCancel,
            (S::Held, A::ExpiryRequested) => {
                next.expiring = true;
                S::PendingCancel
            }
            (S::Held, _) => return refused,
            (S::PendingNew | S::PendingCancel, A::PlacementSent) if self.placement_sent => {
                return Err(TransitionError::AlreadySent)
            }
            (S::PendingNew | S::PendingCancel, A::PlacementSent) => {
                next.placement_sent = true;
                self.status
            }
            (S::PendingNew, A::Accepted) => S::New,
            (S::PendingCancel, A::Accepted) => S::PendingCancel,
            (S::New | S::PartiallyFilled | S::PendingReplace, A::Accepted) => {
                return Err(TransitionError::AlreadyAcknowledged)
            }
            (S::PendingNew | S::PendingCancel, A::Rejected) => S::Rejected,
            (
                S::PendingNew | S::New | S::PartiallyFilled | S::PendingCancel | S::PendingReplace,
                A::Fill { qty },
            ) => {
                if qty <= 0 {
                    return Err(TransitionError::EmptyFill);
                }
                let most = self.most_fillable();
                let filled = self.filled_qty.checked_add(qty).filter(|f| *f <= most);
                next.filled_qty = filled.ok_or(TransitionError::OverFill {
                    filled: self.filled_qty,
                    fill: qty,
                    qty: most,
                })?;
                // Fills may still land while a cancel or a replace is pending.
                match self.status {
                    S::PendingCancel | S::PendingReplace => self.status,
                    _ => S::PartiallyFilled,
                }
            }
            (S::New | S::PartiallyFilled, A::ReplaceRequested { qty }) => {
                if qty <= self.filled_qty || qty > MAX_QTY {
                    return Err(TransitionError::ReplaceBelowFilled {
                        filled: self.filled_qty,
                        qty,
                    });
                }
                next.replacing = Some(qty);
                S::PendingReplace
            }
            // Pending cancel: the venue took the replace before the cancel that came after it, and
            // its terms are the order's until the cancel ends it.
            (S::PendingReplace | S::PendingCancel, A::Replaced { qty }) => {
                if self.replacing != Some(qty) || self.filled_qty > qty {
                    return refused;
                }
                next.qty = qty;
                next.replacing = None;
                next.version += 1;
                match self.status {
                    S::PendingCancel => S::PendingCancel,
                    _ => next.resting(),
                }
            }
            (S::PendingReplace, A::ReplaceRejected) => {
                if self.filled_qty > self.qty {
                    return refused;
                }
                next.replacing = None;
                next.resting()
            }
            (
                S::PendingNew | S::New | S::PartiallyFilled | S::PendingReplace,
                A::CancelRequested,
            ) => S::PendingCancel,
            (
                S::PendingNew | S::New | S::PartiallyFilled | S::PendingReplace,
                A::ExpiryRequested,
            ) => {
                next.expiring = true;
                S::PendingCancel
            }
            (S::New | S::PartiallyFilled | S::PendingCancel | S::PendingReplace, A::Canceled) => {
                S::Canceled
            }
            (S::PendingNew, A::Canceled) if !self.placement_sent => S::Canceled,
            // An expiry ends an order as a cancel does; `terminal_action` says which it is.
            (S::New | S::PartiallyFilled | S::PendingCancel | S::PendingReplace, A::Expired) => {
                S::Expired
            }
            (S::PendingNew, A::Expired) if !self.placement_sent => S::Expired,
            (S::New | S::PartiallyFilled | S::PendingCancel | S::PendingReplace, A::Filled) => {
                if !self.all_filled() {
                    return Err(TransitionError::NotFullyFilled {
                        filled: self.filled_qty,
                        qty: self.qty,
                    });
                }
                // Filled as the version a replace asked for: those are the venue's terms.
                if self.filled_qty != self.qty {
                    next.qty = self.filled_qty;
                    next.replacing = None;
                }
                S::Filled
            }
            (
                S::PendingNew | S::New | S::PartiallyFilled | S::PendingCancel | S::PendingReplace,
                _,
            ) => return refused,
        };
        Ok(next)
    }

    /// Rebuilds an order's state from its whole log: the status is a pure fold of the actions.
    pub fn fold(qty: i64, log: &[Action]) -> Result<OrderState, TransitionError> {
        let (first, rest) = log.split_first().ok_or(TransitionError::NoCreation)?;
        let start = match first {
            Action::Created => OrderState::created(qty),
            Action::Held => OrderState::held(qty),
            _ => return Err(TransitionError::NoCreation),
        };
        rest.iter()
            .try_fold(start, |state, action| state.apply(*action))
    }
}

/// Whether a fill at `price` respects the order's limit: a buy never above its limit (or a market
/// buy's protection price), a sell never below its limit. A market sell has no limit.
pub fn fill_within_limit(side: Side, limit: Option<Cents>, price: Cents) -> bool {
    match (side, limit) {
        (_, None) => true,
        (Side::Buy, Some(limit)) => price <= limit,
        (Side::Sell, Some(limit)) => price >= limit,
    }
}

/// How the exchange's copy of an order ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VenueEnd {
    Filled,
    Canceled,
    Rejected,
    /// What it did not fill at once ended (an `ioc` or `fok` order's rest).
    Expired,
    /// Canceled before it was ever placed there: the exchange holds nothing.
    NeverPlaced,
}

/// The terminal action that follows the exchange's end, given what the engine recorded, and
/// whether the two disagree on the quantity filled. It is always one the transition table allows
/// from `state` (after `accepted`, for an order still `pending_new` that the exchange placed), so an
/// order never stays open once its exchange copy has ended. The rest of an `ioc`/`fok` order
/// (`immediate`) that the venue ends expires, unless the customer cancelled it first; so does an
/// order whose expiry the engine asked for.
pub fn terminal_action(
    state: OrderState,
    end: VenueEnd,
    venue_filled: i64,
    immediate: bool,
) -> (Action, bool) {
    use OrderStatus as S;
    let mismatch = venue_filled != state.filled_qty;
    let action = match (end, state.status) {
        // Only what the engine itself recorded counts: `filled` needs every share recorded here
        // (of the version a replace asked for, only when the venue says it filled).
        _ if state.filled_qty == state.qty => Action::Filled,
        (VenueEnd::Filled, _) if state.all_filled() => Action::Filled,
        // A cancel (or an expiry) that reached the exchange before the placement did.
        (VenueEnd::NeverPlaced, S::PendingCancel) if state.expiring => Action::Expired,
        (VenueEnd::NeverPlaced, S::PendingCancel) => Action::Canceled,
        (VenueEnd::Rejected | VenueEnd::NeverPlaced, S::PendingNew | S::PendingCancel)
            if state.filled_qty == 0 =>
        {
            Action::Rejected
        }
        _ if state.expiring => Action::Expired,
        (VenueEnd::Canceled | VenueEnd::Expired, status)
            if immediate && status != S::PendingCancel =>
        {
            Action::Expired
        }
        _ => Action::Canceled,
    };
    (action, mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ActionKind as A;
    use OrderStatus as S;

    fn state(status: OrderStatus) -> OrderState {
        OrderState {
            status,
            qty: 10,
            filled_qty: 4,
            placement_sent: true,
            expiring: false,
            replacing: None,
            version: 1,
        }
    }

    /// A fill of one share, or a replace to twelve.
    fn action(kind: ActionKind) -> Action {
        let qty = match kind {
            A::ReplaceRequested | A::Replaced => 12,
            _ => 1,
        };
        Action::from_kind(kind, Some(qty)).unwrap()
    }

    /// Every pair the table allows, with where it leads. Everything else must be refused.
    const ALLOWED: &[(OrderStatus, ActionKind, OrderStatus)] = &[
        (S::PendingNew, A::PlacementSent, S::PendingNew),
        (S::PendingCancel, A::PlacementSent, S::PendingCancel),
        (S::PendingNew, A::Accepted, S::New),
        (S::PendingCancel, A::Accepted, S::PendingCancel),
        (S::PendingNew, A::Rejected, S::Rejected),
        (S::PendingCancel, A::Rejected, S::Rejected),
        (S::PendingNew, A::Fill, S::PartiallyFilled),
        (S::New, A::Fill, S::PartiallyFilled),
        (S::PartiallyFilled, A::Fill, S::PartiallyFilled),
        (S::PendingCancel, A::Fill, S::PendingCancel),
        (S::PendingNew, A::CancelRequested, S::PendingCancel),
        (S::New, A::CancelRequested, S::PendingCancel),
        (S::PartiallyFilled, A::CancelRequested, S::PendingCancel),
        (S::New, A::Canceled, S::Canceled),
        (S::PartiallyFilled, A::Canceled, S::Canceled),
        (S::PendingCancel, A::Canceled, S::Canceled),
        (S::PendingNew, A::ExpiryRequested, S::PendingCancel),
        (S::New, A::ExpiryRequested, S::PendingCancel),
        (S::PartiallyFilled, A::ExpiryRequested, S::PendingCancel),
        (S::New, A::Expired, S::Expired),
        (S::PartiallyFilled, A::Expired, S::Expired),
        (S::PendingCancel, A::Expired, S::Expired),
        (S::New, A::ReplaceRequested, S::PendingReplace),
        (S::PartiallyFilled, A::ReplaceRequested, S::PendingReplace),
        (S::PendingReplace, A::Fill, S::PendingReplace),
        (S::PendingReplace, A::ReplaceRejected, S::PartiallyFilled),
        (S::PendingReplace, A::CancelRequested, S::PendingCancel),
        (S::PendingReplace, A::ExpiryRequested, S::PendingCancel),
        (S::PendingReplace, A::Canceled, S::Canceled),
        (S::PendingReplace, A::Expired, S::Expired),
        (S::Held, A::Triggered, S::PendingNew),
        (S::Held, A::CancelRequested, S::PendingCancel),
        (S::Held, A::ExpiryRequested, S::PendingCancel),
    ];

    #[test]
    fn the_table_allows_exactly_the_listed_pairs() {
        for &status in OrderStatus::ALL {
            for &kind in ActionKind::ALL {
                let mut from = state(status);
                // A placement is recorded as sent once (see `AlreadySent`, below).
                from.placement_sent = kind != A::PlacementSent;
                let result = from.apply(action(kind));
                let expected = ALLOWED.iter().find(|(s, k, _)| *s == status && *k == kind);
                match (expected, result) {
                    (Some((_, _, to)), Ok(next)) => {
                        assert_eq!(next.status, *to, "{status} + {kind}")
                    }
                    (None, Err(TransitionError::NotAllowed { .. })) => {}
                    // `filled` is allowed only once every share is filled; checked below.
                    (None, Err(TransitionError::NotFullyFilled { .. })) if kind == A::Filled => {}
                    // A late acknowledgement of a live order is a duplicate, not an error.
                    (None, Err(TransitionError::AlreadyAcknowledged))
                        if kind == A::Accepted
                            && matches!(
                                status,
                                S::New | S::PartiallyFilled | S::PendingReplace
                            ) => {}
                    (expected, result) => {
                        panic!("{status} + {kind}: expected {expected:?}, got {result:?}")
                    }
                }
            }
        }
    }

    #[test]
    fn a_held_stop_goes_on_once_or_is_released_without_a_call() {
        let held = OrderState::held(10);
        let triggered = held.apply(Action::Triggered).unwrap();
        assert_eq!(
            triggered,
            OrderState::created(10),
            "on as a new order, never sent"
        );
        assert!(
            triggered.apply(Action::Triggered).is_err(),
            "triggered once"
        );
        assert!(
            held.apply(Action::Fill { qty: 1 }).is_err(),
            "nothing trades while held"
        );
        assert!(
            held.apply(Action::PlacementSent).is_err(),
            "nothing is sent while held"
        );

        let cancelling = held.apply(Action::CancelRequested).unwrap();
        assert!(!cancelling.placement_sent, "released with no call");
        assert_eq!(
            cancelling.apply(Action::Canceled).unwrap().status,
            S::Canceled
        );
        assert!(
            cancelling.apply(Action::Triggered).is_err(),
            "a cancelled stop never triggers"
        );

        let log = [
            Action::Held,
            Action::Triggered,
            Action::PlacementSent,
            Action::Accepted,
        ];
        assert_eq!(OrderState::fold(10, &log).unwrap().status, S::New);
        assert_eq!(OrderState::fold(10, &log[..1]).unwrap(), held);
        assert!(OrderState::fold(10, &[Action::Created, Action::Held]).is_err());
    }

    #[test]
    fn terminal_statuses_never_change() {
        for status in [S::Filled, S::Canceled, S::Rejected, S::Expired] {
            for &kind in ActionKind::ALL {
                assert!(
                    state(status).apply(action(kind)).is_err(),
                    "{status} + {kind}"
                );
            }
        }
    }

    #[test]
    fn filled_needs_every_share_and_fills_cannot_overfill() {
        let full = OrderState {
            filled_qty: 10,
            ..state(S::PartiallyFilled)
        };
        assert_eq!(full.apply(Action::Filled).map(|s| s.status), Ok(S::Filled));
        assert!(matches!(
            state(S::PartiallyFilled).apply(Action::Filled),
            Err(TransitionError::NotFullyFilled { .. })
        ));
        assert!(matches!(
            state(S::New).apply(Action::Fill { qty: 7 }),
            Err(TransitionError::OverFill { .. })
        ));
        assert_eq!(
            state(S::New)
                .apply(Action::Fill { qty: 6 })
                .map(|s| s.filled_qty),
            Ok(10)
        );
        assert_eq!(
            state(S::New).apply(Action::Fill { qty: 0 }),
            Err(TransitionError::EmptyFill)
        );
        // Recorded as sent, a placement is not recorded as sent again; a late acknowledgement of
        // a live order is nothing new either.
        for status in [S::PendingNew, S::PendingCancel] {
            assert_eq!(
                state(status).apply(Action::PlacementSent),
                Err(TransitionError::AlreadySent)
            );
        }
        for status in [S::New, S::PartiallyFilled] {
            assert_eq!(
                state(status).apply(Action::Accepted),
                Err(TransitionError::AlreadyAcknowledged)
            );
        }
    }

    #[test]
    fn an_order_never_sent_can_be_canceled_outright_but_a_sent_one_cannot() {
        let unsent = OrderState::created(10);
        assert_eq!(
            unsent.apply(Action::Canceled).map(|s| s.status),
            Ok(S::Canceled)
        );
        let sent = unsent.apply(Action::PlacementSent).unwrap();
        assert!(sent.apply(Action::Canceled).is_err());
    }

    #[test]
    fn an_expiry_ends_an_order_as_expired_and_a_customers_cancel_as_canceled() {
        let resting = OrderState::created(10)
            .apply(Action::PlacementSent)
            .and_then(|s| s.apply(Action::Accepted))
            .unwrap();
        // A resting order the venue cancels by itself is cancelled, whatever the venue calls it.
        for end in [VenueEnd::Canceled, VenueEnd::Expired] {
            assert_eq!(
                terminal_action(resting, end, 0, false),
                (Action::Canceled, false)
            );
        }
        // At the session's close the engine asks for its expiry: the cancel that follows ends it
        // expired, a never-sent one included.
        let expiring = resting.apply(Action::ExpiryRequested).unwrap();
        assert_eq!(
            (expiring.status, expiring.expiring),
            (S::PendingCancel, true)
        );
        assert_eq!(
            terminal_action(expiring, VenueEnd::Canceled, 0, false),
            (Action::Expired, false)
        );
        assert_eq!(
            expiring.apply(Action::Expired).map(|s| s.status),
            Ok(S::Expired)
        );
        let unsent = OrderState::created(10)
            .apply(Action::ExpiryRequested)
            .unwrap();
        assert_eq!(
            terminal_action(unsent, VenueEnd::NeverPlaced, 0, false),
            (Action::Expired, false)
        );
        assert_eq!(
            unsent.apply(Action::Expired).map(|s| s.status),
            Ok(S::Expired)
        );
        // What an ioc/fok order does not fill at once expires, unless the customer cancelled it.
        let partly = resting.apply(Action::Fill { qty: 3 }).unwrap();
        assert_eq!(
            terminal_action(partly, VenueEnd::Expired, 3, true),
            (Action::Expired, false)
        );
        assert_eq!(
            terminal_action(partly, VenueEnd::Canceled, 3, true),
            (Action::Expired, false)
        );
        let cancelled = partly.apply(Action::CancelRequested).unwrap();
        assert_eq!(
            terminal_action(cancelled, VenueEnd::Canceled, 3, true),
            (Action::Canceled, false)
        );
        let whole = partly.apply(Action::Fill { qty: 7 }).unwrap();
        assert_eq!(
            terminal_action(whole, VenueEnd::Expired, 10, true),
            (Action::Filled, false)
        );
        // A sent order expires only by the venue's word.
        let sent = OrderState::created(10)
            .apply(Action::PlacementSent)
            .unwrap();
        assert!(sent.apply(Action::Expired).is_err());
    }

    #[test]
    fn while_a_replace_is_in_flight_either_version_may_trade_and_the_venue_decides_the_terms() {
        let resting = OrderState::created(10)
            .apply(Action::PlacementSent)
            .and_then(|s| s.apply(Action::Accepted))
            .and_then(|s| s.apply(Action::Fill { qty: 4 }))
            .unwrap();
        assert_eq!(
            resting.apply(Action::ReplaceRequested { qty: 4 }),
            Err(TransitionError::ReplaceBelowFilled { filled: 4, qty: 4 }),
            "a replace must leave something to fill"
        );
        let up = resting.apply(Action::ReplaceRequested { qty: 15 }).unwrap();
        assert_eq!(
            (up.status, up.replacing, up.most_fillable()),
            (S::PendingReplace, Some(15), 15)
        );
        // Fills past the old quantity are the new version's: allowed up to the new one.
        let filled_more = up.apply(Action::Fill { qty: 9 }).unwrap();
        assert!(filled_more.apply(Action::Fill { qty: 3 }).is_err());
        assert_eq!(
            filled_more.apply(Action::ReplaceRejected).map(|_| ()),
            Err(TransitionError::NotAllowed {
                status: S::PendingReplace,
                action: A::ReplaceRejected,
            }),
            "the venue cannot keep 10 shares of which 13 filled"
        );
        let replaced = filled_more.apply(Action::Replaced { qty: 15 }).unwrap();
        assert_eq!(
            (replaced.status, replaced.qty, replaced.replacing),
            (S::PartiallyFilled, 15, None)
        );
        assert!(
            up.apply(Action::Replaced { qty: 14 }).is_err(),
            "only the terms asked for"
        );
        // A cut: the old version may still fill whole, and then the order is filled.
        let down = resting.apply(Action::ReplaceRequested { qty: 6 }).unwrap();
        assert_eq!(down.most_fillable(), 10);
        let whole = down.apply(Action::Fill { qty: 6 }).unwrap();
        assert!(whole.all_filled());
        assert_eq!(
            whole.apply(Action::Filled).map(|s| (s.status, s.qty)),
            Ok((S::Filled, 10))
        );
        // Filled as the new version asked: its quantity is the order's now.
        let new_whole = down.apply(Action::Fill { qty: 2 }).unwrap();
        assert_eq!(
            new_whole
                .apply(Action::Filled)
                .map(|s| (s.status, s.qty, s.replacing)),
            Ok((S::Filled, 6, None))
        );
        assert_eq!(
            terminal_action(whole, VenueEnd::Filled, 10, false),
            (Action::Filled, false)
        );
        let kept = down.apply(Action::ReplaceRejected).unwrap();
        assert_eq!(
            (kept.status, kept.qty, kept.replacing),
            (S::PartiallyFilled, 10, None)
        );
        // Filled in full, yet a replace to more may still reach the venue before its fill report:
        // the new version's fill goes past the old quantity, within the new one.
        let six = OrderState::created(6)
            .apply(Action::Fill { qty: 6 })
            .and_then(|s| s.apply(Action::ReplaceRequested { qty: 7 }))
            .and_then(|s| s.apply(Action::Fill { qty: 1 }))
            .unwrap();
        assert_eq!((six.filled_qty, six.qty, six.most_fillable()), (7, 6, 7));
        // A cancel during a replace wins: the order ends whichever version the venue held.
        let cancelling = down.apply(Action::CancelRequested).unwrap();
        assert_eq!(cancelling.status, S::PendingCancel);
        assert_eq!(
            cancelling.apply(Action::Canceled).map(|s| s.status),
            Ok(S::Canceled)
        );
    }

    #[test]
    fn fold_replays_a_log() {
        let log = [
            Action::Created,
            Action::PlacementSent,
            Action::Accepted,
            Action::Fill { qty: 3 },
            Action::CancelRequested,
            Action::Fill { qty: 2 },
            Action::Canceled,
        ];
        let end = OrderState::fold(10, &log).unwrap();
        assert_eq!((end.status, end.filled_qty), (S::Canceled, 5));
        assert_eq!(
            OrderState::fold(10, &log[1..]),
            Err(TransitionError::NoCreation)
        );
        assert_eq!(OrderState::fold(10, &[]), Err(TransitionError::NoCreation));
        let mut twice_created = log.to_vec();
        twice_created.insert(1, Action::Created);
        assert!(OrderState::fold(10, &twice_created).is_err());
    }

    #[test]
    fn text_forms_round_trip() {
        for &status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
        }
        for &kind in ActionKind::ALL {
            assert_eq!(ActionKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Side::parse("short"), None);
    }
}
