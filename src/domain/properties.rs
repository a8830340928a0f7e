//! Property tests of the domain: the transition table against a reference model written from the
//! contract, the fold of arbitrary logs, and money at its edges. Also the byte mutator that the
//! proptest twins of the fuzz targets share.

use proptest::prelude::*;

use super::order::*;
use super::Cents;

/// Bytes near `valid`: it with up to four edits (a byte replaced, inserted or removed), or, one time
/// in four, any bytes at all. Most of these stay close enough to parse, so the checks on what
/// parses are reached, as a coverage-guided fuzzer would reach them.
pub(crate) fn bytes_near(valid: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0_u8..3), 0..4);
    let mutated = edits.prop_map(move |edits| {
        let mut bytes = valid.to_vec();
        for (at, byte, how) in edits {
            let i = at.index(bytes.len() + 1);
            match how {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => {
                    bytes.remove(i);
                }
                _ => {}
            }
        }
        bytes
    });
    prop_oneof![3 => mutated, 1 => prop::collection::vec(any::<u8>(), 0..256)]
}

/// Of 256 draws of [`bytes_near`] `valid` (the same 256 each time), how many `parses` accepts.
pub(crate) fn parsed_of_256_near(valid: &'static [u8], parses: fn(&[u8]) -> bool) -> usize {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = bytes_near(valid);
    (0..256)
        .filter_map(|_| strategy.new_tree(&mut runner).ok())
        .filter(|tree| parses(&tree.current()))
        .count()
}

/// The contract's life of an order, written as plainly as possible and independently of the
/// table: what each action may do, and to what.
fn model(state: OrderState, action: Action) -> Option<OrderState> {
    use ActionKind as A;
    use OrderStatus as S;
    let open = !matches!(
        state.status,
        S::Filled | S::Canceled | S::Rejected | S::Expired
    );
    if state.status == S::PendingReplace && action.kind() == A::Accepted {
        return None;
    }
    if !open || action.kind().is_creation() {
        return None;
    }
    let mut next = state;
    // A held stop is not at the venue: it goes on once, or a cancel or an expiry releases it.
    if state.status == S::Held {
        match action.kind() {
            A::Triggered => next.status = S::PendingNew,
            A::CancelRequested => next.status = S::PendingCancel,
            A::ExpiryRequested => {
                next.status = S::PendingCancel;
                next.expiring = true;
            }
            _ => return None,
        }
        return Some(next);
    }
    let fill_qty = match action {
        Action::Fill { qty } | Action::ReplaceRequested { qty } | Action::Replaced { qty } => qty,
        _ => 0,
    };
    match action.kind() {
        A::PlacementSent => {
            // Recorded once: before the one placement that may be repeated, never again.
            if !matches!(state.status, S::PendingNew | S::PendingCancel) || state.placement_sent {
                return None;
            }
            next.placement_sent = true;
        }
        A::Accepted => match state.status {
            S::PendingNew => next.status = S::New,
            S::PendingCancel => {}
            _ => return None,
        },
        A::Rejected => {
            if !matches!(state.status, S::PendingNew | S::PendingCancel) {
                return None;
            }
            next.status = S::Rejected;
        }
        A::Fill => {
            // While a replace is in flight, either version may trade.
            let most = state.replacing.map_or(state.qty, |new| new.max(state.qty));
            if fill_qty < 1 || fill_qty > most - state.filled_qty {
                return None;
            }
            next.filled_qty += fill_qty;
            if !matches!(state.status, S::PendingCancel | S::PendingReplace) {
                next.status = S::PartiallyFilled;
            }
        }
        A::ReplaceRequested => {
            let open = matches!(state.status, S::New | S::PartiallyFilled);
            if !open || fill_qty <= state.filled_qty || fill_qty > super::MAX_QTY {
                return None;
            }
            next.replacing = Some(fill_qty);
            next.status = S::PendingReplace;
        }
        A::Replaced | A::ReplaceRejected => {
            let kept = match action {
                Action::Replaced { qty } if state.replacing == Some(qty) => qty,
                Action::ReplaceRejected => state.qty,
                _ => return None,
            };
            // The venue may have taken a replace before a cancel that came after it.
            let taken_then_cancelled =
                state.status == S::PendingCancel && action.kind() == A::Replaced;
            if !(state.status == S::PendingReplace || taken_then_cancelled)
                || state.filled_qty > kept
            {
                return None;
            }
            next.qty = kept;
            next.replacing = None;
            if action.kind() == A::Replaced {
                next.version += 1;
            }
            next.status = if taken_then_cancelled {
                S::PendingCancel
            } else if state.filled_qty == 0 {
                S::New
            } else {
                S::PartiallyFilled
            };
        }
        A::CancelRequested | A::ExpiryRequested => {
            if state.status == S::PendingCancel {
                return None;
            }
            next.status = S::PendingCancel;
            // The engine's own cancel at the session's close: what ends the order is its expiry.
            next.expiring |= action.kind() == A::ExpiryRequested;
        }
        A::Canceled | A::Expired => {
            // Before any placement was sent, nothing is on the exchange: a cancel ends it at once.
            if state.status == S::PendingNew && state.placement_sent {
                return None;
            }
            next.status = if action.kind() == A::Expired {
                S::Expired
            } else {
                S::Canceled
            };
        }
        A::Filled => {
            let every_share =
                state.filled_qty == state.qty || state.replacing == Some(state.filled_qty);
            if state.status == S::PendingNew || !every_share {
                return None;
            }
            if state.filled_qty != state.qty {
                next.qty = state.filled_qty;
                next.replacing = None;
            }
            next.status = S::Filled;
        }
        A::Created | A::Held | A::Triggered => return None,
    }
    Some(next)
}

fn any_kind() -> impl Strategy<Value = ActionKind> {
    proptest::sample::select(ActionKind::ALL)
}

fn any_action() -> impl Strategy<Value = Action> {
    (any_kind(), -2_i64..12).prop_map(|(kind, qty)| Action::from_kind(kind, Some(qty)).unwrap())
}

fn any_end() -> impl Strategy<Value = VenueEnd> {
    proptest::sample::select(vec![
        VenueEnd::Filled,
        VenueEnd::Canceled,
        VenueEnd::Rejected,
        VenueEnd::Expired,
        VenueEnd::NeverPlaced,
    ])
}

proptest! {
    #[test]
    fn the_table_agrees_with_the_model(qty in 1_i64..10, held in any::<bool>(), actions in prop::collection::vec(any_action(), 0..40)) {
        let mut state = if held { OrderState::held(qty) } else { OrderState::created(qty) };
        for action in actions {
            let expected = model(state, action);
            let got = state.apply(action).ok();
            prop_assert_eq!(got, expected, "{:?} + {:?}", state, action);
            if let Some(next) = got {
                prop_assert!(next.filled_qty <= next.most_fillable());
                state = next;
            }
        }
    }

    #[test]
    fn a_fold_is_the_actions_applied_in_turn(qty in 1_i64..10, held in any::<bool>(), actions in prop::collection::vec(any_action(), 0..30)) {
        let (first, start) = if held {
            (Action::Held, OrderState::held(qty))
        } else {
            (Action::Created, OrderState::created(qty))
        };
        let mut log = vec![first];
        log.extend(actions);
        let by_hand = log[1..].iter().try_fold(start, |s, a| s.apply(*a));
        prop_assert_eq!(OrderState::fold(qty, &log), by_hand);
    }

    #[test]
    fn a_fold_refuses_any_log_not_opened_by_created(qty in 1_i64..10, actions in prop::collection::vec(any_action(), 0..10)) {
        prop_assume!(!actions.first().is_some_and(|a| a.kind().is_creation()));
        prop_assert_eq!(OrderState::fold(qty, &actions), Err(TransitionError::NoCreation));
    }

    /// However the engine's record and the exchange's copy disagree, the end the engine picks is
    /// one the table allows: an order never stays open once its exchange copy has ended.
    #[test]
    fn every_exchange_end_leads_to_an_allowed_terminal_action(
        qty in 1_i64..10,
        actions in prop::collection::vec(any_action(), 0..30),
        end in any_end(),
        venue_filled in 0_i64..12,
        immediate in any::<bool>(),
    ) {
        // Any open state the table can reach: every allowed action that does not end the order.
        let state = actions.iter().fold(OrderState::created(qty), |s, a| {
            s.apply(*a).ok().filter(|n| !n.status.is_terminal()).unwrap_or(s)
        });
        // An order the exchange placed is acknowledged before it ends.
        let placed = matches!(end, VenueEnd::Filled | VenueEnd::Canceled | VenueEnd::Expired);
        let state = if placed && state.status == OrderStatus::PendingNew {
            state.apply(Action::Accepted).unwrap()
        } else {
            state
        };
        let (end_action, mismatch) = terminal_action(state, end, venue_filled, immediate);
        let ended = state.apply(end_action);
        prop_assert!(ended.is_ok(), "{:?} ending {:?} with {:?}: {:?}", state, end, end_action, ended);
        prop_assert!(ended.unwrap().status.is_terminal());
        prop_assert_eq!(mismatch, venue_filled != state.filled_qty);
    }

    #[test]
    fn money_prints_and_parses_back_exactly(cents in 0_i64..=i64::MAX) {
        let text = Cents(cents).to_string();
        prop_assert_eq!(Cents::parse(&text), Ok(Cents(cents)));
    }

    #[test]
    fn money_parsing_is_exact_or_refuses(whole in "[0-9]{1,22}", frac in "[0-9]{0,4}") {
        let text = if frac.is_empty() { whole.clone() } else { format!("{whole}.{frac}") };
        let exact: u128 = whole.parse::<u128>().unwrap() * 100
            + format!("{frac:0<2}")[..2].parse::<u128>().unwrap();
        match Cents::parse(&text) {
            Ok(Cents(c)) => {
                prop_assert!(frac.len() <= 2);
                prop_assert_eq!(c as u128, exact);
            }
            Err(_) => prop_assert!(frac.len() > 2 || exact > i64::MAX as u128),
        }
    }

    // The proptest twin of the fuzz target `money`: any text, no panic; what parses is never
    // negative and prints back to a text that parses to the same amount.
    #[test]
    fn money_text_parses_exactly_or_refuses(text in prop_oneof!["[-+ 0-9.,e]{0,24}", "\\PC{0,40}"]) {
        if let Ok(cents) = Cents::parse(&text) {
            prop_assert!(cents.0 >= 0);
            prop_assert_eq!(Cents::parse(&cents.to_string()), Ok(cents));
        }
    }

    #[test]
    fn products_overflow_into_none_never_into_a_wrong_amount(price in any::<i64>(), qty in any::<i64>()) {
        prop_assert_eq!(Cents(price).times(qty), price.checked_mul(qty).map(Cents));
    }

    #[test]
    fn scaling_and_averaging_never_overflow_silently(cents in any::<i64>(), percent in 0_i64..1000, qty in any::<i64>()) {
        // None or an amount: never a panic, never a wrapped value.
        if let Some(scaled) = Cents(cents).scaled_up_percent(percent) {
            prop_assert_eq!(scaled.0, (cents as i128 * percent as i128 + 99).div_euclid(100) as i64);
        }
        let _ = Cents::average(Cents(cents), qty);
    }

    #[test]
    fn an_average_is_within_half_a_cent(notional in 0_i64..1_000_000_000_000, qty in 1_i64..1_000_000) {
        let avg = Cents::average(Cents(notional), qty).unwrap();
        let error = (avg.0 as i128 * qty as i128 - notional as i128).abs();
        prop_assert!(2 * error <= qty as i128);
    }

    #[test]
    fn a_fill_is_within_the_limit_exactly_when_the_side_allows_it(limit in 1_i64..1_000_000, price in 1_i64..1_000_000) {
        prop_assert_eq!(fill_within_limit(Side::Buy, Some(Cents(limit)), Cents(price)), price <= limit);
        prop_assert_eq!(fill_within_limit(Side::Sell, Some(Cents(limit)), Cents(price)), price >= limit);
        prop_assert!(fill_within_limit(Side::Sell, None, Cents(price)));
    }
}
