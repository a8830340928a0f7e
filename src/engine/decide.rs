//! What an order's step decides, apart from doing it: pure functions of the order as recorded and
//! the venue's copy, with no database, actor or venue behind them. `steps` carries the decisions out.

use std::collections::BTreeMap;

use crate::domain::{OrderState, OrderStatus, VenueEnd};
use crate::domain::{PlacedAck, VenueFill, VenueOrder, VenueStatus};
use crate::exchange::ExchangeError;
use crate::orders::lifecycle::RecordedFill;

/// The venue call a step starts with, from the order's recorded state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstCall {
    /// Never sent: record that it is being sent, then place it.
    Place,
    /// Sent, its answer unknown (a crash or a lost response came between): ask before placing
    /// again.
    LookUp,
    /// A cancel asked for before it was ever sent: release it at once, no call.
    Release,
    /// A cancel asked for after it was sent: cancel on the venue, which also tombstones an id it
    /// never saw, so a placement still in flight is refused there.
    Cancel,
    /// Open at the venue: compare with its copy.
    Compare,
}

impl FirstCall {
    pub fn of(state: &OrderState) -> FirstCall {
        match (state.status, state.placement_sent) {
            (OrderStatus::PendingNew, false) => FirstCall::Place,
            (OrderStatus::PendingNew, true) => FirstCall::LookUp,
            (OrderStatus::PendingCancel, false) => FirstCall::Release,
            (OrderStatus::PendingCancel, true) => FirstCall::Cancel,
            _ => FirstCall::Compare,
        }
    }

    /// What recovery does for the order, as the metric and the feed name it (one of
    /// `metrics::RECOVERY_KINDS`).
    pub fn recovery_kind(self) -> &'static str {
        match self {
            FirstCall::Place => "place",
            FirstCall::LookUp => "lookup",
            FirstCall::Release => "release",
            FirstCall::Cancel => "cancel",
            FirstCall::Compare => "poll",
        }
    }
}

/// The venue's fills the engine lacks, or holds under the same id with another quantity or
/// price (the recording phase decides those, and alarms what it refuses).
pub fn fills_to_record<'a>(
    recorded: &BTreeMap<String, RecordedFill>,
    venue: &'a VenueOrder,
) -> Vec<&'a VenueFill> {
    venue
        .fills
        .iter()
        .filter(|fill| recorded.get(&fill.fill_id) != Some(&RecordedFill::of(fill)))
        .collect()
}

/// What the order's status must do to follow the venue's copy, once its fills are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusMoves {
    /// Record `accepted`: the venue placed an order still pending new here.
    pub accept: bool,
    /// End the order as the venue ended it.
    pub end: Option<VenueEnd>,
}

pub fn status_moves(status: OrderStatus, venue: &VenueOrder) -> StatusMoves {
    if status.is_terminal() {
        return StatusMoves {
            accept: false,
            end: None,
        };
    }
    let placed = venue.venue_order_id.is_some();
    let accept =
        status == OrderStatus::PendingNew && placed && venue.status != VenueStatus::Rejected;
    let end = match venue.status {
        VenueStatus::New | VenueStatus::PartiallyFilled => None,
        VenueStatus::Filled => Some(VenueEnd::Filled),
        VenueStatus::Canceled if !placed => Some(VenueEnd::NeverPlaced),
        VenueStatus::Canceled => Some(VenueEnd::Canceled),
        VenueStatus::Rejected => Some(VenueEnd::Rejected),
    };
    StatusMoves { accept, end }
}

/// What follows the venue's answer to a placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterPlacement {
    /// The venue holds it: record `accepted`.
    Accepted(PlacedAck),
    /// The venue said no to the first placement of this order: end it `rejected`, releasing
    /// what it holds.
    Rejected(String),
    /// A refusal after an earlier placement went unanswered may only be the venue refusing a
    /// repeat of an order it holds: its copy decides.
    FollowVenue,
    /// No trustworthy answer: the next poll asks again.
    Unresolved(ExchangeError),
}

/// `sent_before`: an earlier placement of the order went unanswered.
pub fn after_placement(
    answer: Result<PlacedAck, ExchangeError>,
    sent_before: bool,
) -> AfterPlacement {
    match answer {
        Ok(ack) if ack.status == VenueStatus::Rejected => {
            AfterPlacement::Rejected("rejected by the exchange".into())
        }
        Ok(ack) => AfterPlacement::Accepted(ack),
        Err(ExchangeError::Refused(reason)) if !sent_before => AfterPlacement::Rejected(reason),
        Err(ExchangeError::Refused(_) | ExchangeError::AmbiguousRefusal(_)) => {
            AfterPlacement::FollowVenue
        }
        Err(unknown @ ExchangeError::Unknown(_)) => AfterPlacement::Unresolved(unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Cents;

    fn state(status: OrderStatus, placement_sent: bool) -> OrderState {
        OrderState {
            status,
            qty: 10,
            filled_qty: 0,
            placement_sent,
        }
    }

    #[test]
    fn the_first_call_follows_the_status_and_whether_it_was_sent() {
        use FirstCall::*;
        use OrderStatus as S;
        for (status, sent, call) in [
            (S::PendingNew, false, Place),
            (S::PendingNew, true, LookUp),
            (S::PendingCancel, false, Release),
            (S::PendingCancel, true, Cancel),
            (S::New, true, Compare),
            (S::PartiallyFilled, true, Compare),
        ] {
            assert_eq!(
                FirstCall::of(&state(status, sent)),
                call,
                "{status:?}, sent {sent}"
            );
        }
        let kinds: Vec<&str> = [Place, LookUp, Release, Cancel, Compare]
            .map(FirstCall::recovery_kind)
            .to_vec();
        assert_eq!(kinds, crate::metrics::RECOVERY_KINDS.to_vec());
    }

    fn venue(status: VenueStatus, placed: bool, fills: &[(&str, i64, i64)]) -> VenueOrder {
        VenueOrder {
            client_order_id: "c".into(),
            venue_order_id: placed.then(|| "X1".to_owned()),
            status,
            qty: 10,
            filled_qty: fills.iter().map(|f| f.1).sum(),
            fills: fills
                .iter()
                .map(|(id, qty, price)| VenueFill {
                    fill_id: (*id).to_owned(),
                    qty: *qty,
                    price: Cents(*price),
                })
                .collect(),
        }
    }

    #[test]
    fn fills_the_engine_lacks_or_holds_otherwise_are_recorded_and_no_others() {
        let recorded = BTreeMap::from([
            (
                "F1".to_owned(),
                RecordedFill {
                    qty: 2,
                    price: Cents(100),
                },
            ),
            (
                "F2".to_owned(),
                RecordedFill {
                    qty: 3,
                    price: Cents(100),
                },
            ),
        ]);
        let copy = venue(
            VenueStatus::PartiallyFilled,
            true,
            &[("F1", 2, 100), ("F2", 4, 100), ("F3", 1, 99)],
        );
        let ids: Vec<&str> = fills_to_record(&recorded, &copy)
            .iter()
            .map(|f| f.fill_id.as_str())
            .collect();
        assert_eq!(ids, ["F2", "F3"]);
    }

    #[test]
    fn a_refusal_rejects_only_a_first_placement() {
        use AfterPlacement::*;
        let ack = |status| PlacedAck {
            client_order_id: "c".into(),
            venue_order_id: Some("X1".into()),
            status,
        };
        let refused = || ExchangeError::Refused("no".into());
        let ambiguous = || ExchangeError::AmbiguousRefusal("409".into());
        let unknown = || ExchangeError::Unknown("timeout".into());
        let (new, partly) = (ack(VenueStatus::New), ack(VenueStatus::PartiallyFilled));
        let rejected = ack(VenueStatus::Rejected);
        for (answer, sent_before, expected) in [
            (Ok(new.clone()), false, Accepted(new)),
            (Ok(partly.clone()), true, Accepted(partly)),
            (
                Ok(rejected),
                false,
                Rejected("rejected by the exchange".into()),
            ),
            (Err(refused()), false, Rejected("no".into())),
            (Err(refused()), true, FollowVenue),
            (Err(ambiguous()), false, FollowVenue),
            (Err(ambiguous()), true, FollowVenue),
            (Err(unknown()), false, Unresolved(unknown())),
            (Err(unknown()), true, Unresolved(unknown())),
        ] {
            let said = format!("{answer:?}, sent before {sent_before}");
            assert_eq!(after_placement(answer, sent_before), expected, "{said}");
        }
    }

    #[test]
    fn the_status_follows_the_venue_once_the_fills_are_in() {
        use OrderStatus as S;
        use VenueStatus as V;
        let moves = |accept, end| StatusMoves { accept, end };
        for (ours, theirs, placed, expected) in [
            (S::PendingNew, V::New, true, moves(true, None)),
            (S::PendingNew, V::New, false, moves(false, None)),
            (S::New, V::PartiallyFilled, true, moves(false, None)),
            (
                S::PendingNew,
                V::Filled,
                true,
                moves(true, Some(VenueEnd::Filled)),
            ),
            (
                S::PartiallyFilled,
                V::Filled,
                true,
                moves(false, Some(VenueEnd::Filled)),
            ),
            (
                S::PendingCancel,
                V::Canceled,
                true,
                moves(false, Some(VenueEnd::Canceled)),
            ),
            // A tombstone: canceled before the venue ever placed it.
            (
                S::PendingCancel,
                V::Canceled,
                false,
                moves(false, Some(VenueEnd::NeverPlaced)),
            ),
            (
                S::PendingNew,
                V::Rejected,
                true,
                moves(false, Some(VenueEnd::Rejected)),
            ),
            // Ended here already: nothing more to do, whatever the venue says.
            (S::Canceled, V::Filled, true, moves(false, None)),
            (S::Filled, V::Filled, true, moves(false, None)),
        ] {
            let copy = venue(theirs, placed, &[]);
            assert_eq!(
                status_moves(ours, &copy),
                expected,
                "{ours:?} here, {theirs:?} there, placed {placed}"
            );
        }
    }
}
