//! What an order's step decides, apart from doing it. [`decide`] is a pure function of the order
//! as the step's own records have left it and of what the step heard last (its start, a push, or
//! the answer to its last command); it returns the commands to carry out next. `steps` carries
//! them out and feeds each answer back, until a list ends with no command to answer.

use std::collections::BTreeMap;

use crate::domain::{AckSource, Action, ClientOrderId, EndCause, OrderState, OrderStatus};
use crate::domain::{PlacedAck, VenueFill, VenueOrder, VenueReport, VenueStatus};
use crate::domain::{ReportKind, VenueEnd};
use crate::exchange::ExchangeError;
use crate::orders::lifecycle::{Applied, RecordedFill};
use crate::orders::status::StatusStep;

/// What the step heard last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Nothing yet: the step carries the order on from its log.
    Start,
    /// A push, already taken in (its fill recorded) before the step began.
    Push(VenueReport),
    /// The answer to recording that the placement is about to be sent.
    MarkedSent(Applied),
    /// The venue's answer to a lookup.
    LookedUp(LookUpFor, Result<Option<VenueOrder>, ExchangeError>),
    /// The venue's answer to a placement; `sent_before`: an earlier one went unanswered.
    Placed {
        sent_before: bool,
        answer: Result<PlacedAck, ExchangeError>,
    },
    /// The venue's answer to a cancel.
    CancelAnswered(CancelFor, Result<VenueOrder, ExchangeError>),
    /// The fills the venue's copy had and the engine lacked are recorded: its status is next.
    FillsIn(VenueOrder),
    /// The venue's answer to the replace in flight: the order under its new terms, or a refusal.
    ReplaceAnswered(Result<VenueOrder, ExchangeError>),
}

/// Why a lookup is made, which says what its answer leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookUpFor {
    /// A placement went unanswered: an order the venue never saw is placed again.
    LostPlacement,
    /// To compare with the venue's copy: an open order it does not know is alarmed.
    Check,
    /// A placement was refused after an unanswered one: an order it does not hold is tombstoned.
    Refusal,
}

/// Why a cancel is sent to the venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelFor {
    /// The customer asked for it.
    Customer,
    /// So that a late copy of a lost placement is refused there.
    Tombstone,
}

/// A venue call, as the log names one left to the next poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    LookUp,
    Place,
    Cancel,
    Tombstone,
    Replace,
}

impl Call {
    pub fn as_str(self) -> &'static str {
        match self {
            Call::LookUp => "lookup",
            Call::Place => "place",
            Call::Cancel => "cancel",
            Call::Tombstone => "tombstone",
            Call::Replace => "replace",
        }
    }
}

/// What the step does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Record a status step (only `placement_sent` is answered, with [`Heard::MarkedSent`]).
    Record(StatusStep),
    /// Record the fills the venue's copy has and the engine lacks (answered with
    /// [`Heard::FillsIn`]).
    RecordFills {
        fills: Vec<VenueFill>,
        copy: VenueOrder,
    },
    /// Ask the venue for its copy (answered).
    LookUp(LookUpFor),
    /// Place the order (answered).
    Place { sent_before: bool },
    /// Cancel it at the venue, which also tombstones an id it never saw (answered).
    CancelAtVenue(CancelFor),
    /// Send the replace in flight, under the next version's id (answered). Sent again, it is
    /// answered the same, so a replace whose answer was lost is sent again to learn it.
    ReplaceAtVenue,
    /// Alarm: the order is open here and unknown to the venue.
    RaiseMissing,
    /// No trustworthy answer: the next poll asks again.
    LeaveToNextPoll { call: Call, error: ExchangeError },
}

impl Command {
    /// Whether carrying it out gives the step something new to decide on.
    pub fn is_answered(&self) -> bool {
        match self {
            Command::Record(step) => *step == StatusStep::PlacementSent,
            Command::RecordFills { .. }
            | Command::LookUp(_)
            | Command::Place { .. }
            | Command::CancelAtVenue(_)
            | Command::ReplaceAtVenue => true,
            Command::RaiseMissing | Command::LeaveToNextPoll { .. } => false,
        }
    }
}

/// The commands that follow `heard`, for an order in `state` holding `fills`. Only the last
/// command of a list may be answered.
pub fn decide(
    state: OrderState,
    fills: &BTreeMap<String, RecordedFill>,
    heard: Heard,
) -> Vec<Command> {
    use Command::*;
    match heard {
        Heard::Start => vec![match FirstCall::of(&state) {
            FirstCall::Place => Record(StatusStep::PlacementSent),
            FirstCall::LookUp => LookUp(LookUpFor::LostPlacement),
            FirstCall::Release => Record(StatusStep::ReleaseUnsent),
            FirstCall::Cancel => CancelAtVenue(CancelFor::Customer),
            FirstCall::Replace => ReplaceAtVenue,
            FirstCall::Compare => LookUp(LookUpFor::Check),
            FirstCall::Wait => return vec![],
        }],
        Heard::Push(report) => match report.kind {
            ReportKind::Accepted if state.status == OrderStatus::PendingNew => {
                vec![Record(StatusStep::Accepted {
                    venue_order_id: report.venue_order_id,
                    source: AckSource::Push,
                })]
            }
            // What may end the order is checked with the venue.
            ReportKind::Canceled | ReportKind::Rejected => vec![LookUp(LookUpFor::Check)],
            ReportKind::Fill if state.filled_qty == state.qty => vec![LookUp(LookUpFor::Check)],
            _ => vec![],
        },
        Heard::MarkedSent(Applied::Recorded) => vec![Place { sent_before: false }],
        Heard::MarkedSent(_) => vec![],
        Heard::LookedUp(_, Ok(Some(copy))) | Heard::CancelAnswered(_, Ok(copy)) => {
            follow(state, fills, copy)
        }
        Heard::LookedUp(LookUpFor::LostPlacement, Ok(None)) => vec![Place { sent_before: true }],
        Heard::LookedUp(LookUpFor::Check, Ok(None)) if state.status == OrderStatus::PendingNew => {
            vec![]
        }
        Heard::LookedUp(LookUpFor::Check, Ok(None)) => vec![RaiseMissing],
        Heard::LookedUp(LookUpFor::Refusal, Ok(None)) => vec![CancelAtVenue(CancelFor::Tombstone)],
        Heard::LookedUp(_, Err(error)) => vec![LeaveToNextPoll {
            call: Call::LookUp,
            error,
        }],
        Heard::Placed {
            sent_before,
            answer,
        } => match after_placement(answer, sent_before) {
            AfterPlacement::Accepted(ack) => vec![Record(StatusStep::Accepted {
                venue_order_id: ack.venue_order_id,
                source: AckSource::Placement,
            })],
            AfterPlacement::Rejected(reason) => vec![Record(StatusStep::End {
                end: VenueEnd::Rejected,
                venue_filled: 0,
                cause: EndCause::PlacementRejected { reason },
            })],
            AfterPlacement::FollowVenue => vec![LookUp(LookUpFor::Refusal)],
            AfterPlacement::Unresolved(error) => vec![LeaveToNextPoll {
                call: Call::Place,
                error,
            }],
        },
        // A venue that refuses the cancel ("already canceled", "unknown order"): follow what it
        // holds instead.
        Heard::CancelAnswered(
            CancelFor::Customer,
            Err(ExchangeError::Refused(_) | ExchangeError::AmbiguousRefusal(_)),
        ) => vec![LookUp(LookUpFor::Check)],
        Heard::CancelAnswered(why, Err(error)) => vec![LeaveToNextPoll {
            call: match why {
                CancelFor::Customer => Call::Cancel,
                CancelFor::Tombstone => Call::Tombstone,
            },
            error,
        }],
        Heard::FillsIn(copy) => follow_status(state, &copy),
        // Taken: the new terms first (the fills the venue lists may be the new version's), then
        // whatever the engine lacks of the venue's copy.
        Heard::ReplaceAnswered(Ok(copy)) => {
            let (mut commands, next) = replaced(state, &copy);
            commands.extend(follow_copy(next, fills, copy));
            commands
        }
        // Too late for a replace a cancel overtook: the old terms stand, and the cancel goes on.
        Heard::ReplaceAnswered(Err(ExchangeError::Refused(_)))
            if state.status == OrderStatus::PendingCancel =>
        {
            vec![CancelAtVenue(CancelFor::Customer)]
        }
        // Too late (filled, ended, or filled past the new qty): the old terms stand, and the
        // venue's copy says what became of the order.
        Heard::ReplaceAnswered(Err(ExchangeError::Refused(reason))) => vec![
            Record(StatusStep::ReplaceRejected { reason }),
            LookUp(LookUpFor::Check),
        ],
        // No answer, or a refusal after one: the next step sends it again and learns the answer.
        Heard::ReplaceAnswered(Err(error)) => vec![LeaveToNextPoll {
            call: Call::Replace,
            error,
        }],
    }
}

/// Brings the order in line with the venue's copy: the terms of a replace it took (its answer
/// lost, or overtaken by a cancel), then every fill the order lacks, then its status.
fn follow(
    state: OrderState,
    fills: &BTreeMap<String, RecordedFill>,
    copy: VenueOrder,
) -> Vec<Command> {
    let took_the_replace = state.replacing.is_some()
        && ClientOrderId(copy.client_order_id.clone())
            .version()
            .is_some_and(|version| version > state.version);
    if took_the_replace {
        let (mut commands, next) = replaced(state, &copy);
        commands.extend(follow_copy(next, fills, copy));
        return commands;
    }
    follow_copy(state, fills, copy)
}

/// Records the venue's new terms, and the order as they leave it.
fn replaced(state: OrderState, copy: &VenueOrder) -> (Vec<Command>, OrderState) {
    let replaced = Action::Replaced { qty: copy.qty };
    let next = state.apply(replaced).unwrap_or(state);
    let record = Command::Record(StatusStep::Replaced { qty: copy.qty });
    (vec![record], next)
}

/// [`follow`] once the terms are the venue's: every fill the order lacks first, then its status.
fn follow_copy(
    state: OrderState,
    fills: &BTreeMap<String, RecordedFill>,
    copy: VenueOrder,
) -> Vec<Command> {
    let missing: Vec<VenueFill> = fills_to_record(fills, &copy).into_iter().cloned().collect();
    if missing.is_empty() {
        follow_status(state, &copy)
    } else {
        vec![Command::RecordFills {
            fills: missing,
            copy,
        }]
    }
}

fn follow_status(state: OrderState, copy: &VenueOrder) -> Vec<Command> {
    let moves = status_moves(state.status, state.filled_qty, copy);
    let accept = moves.accept.then(|| {
        Command::Record(StatusStep::Accepted {
            venue_order_id: copy.venue_order_id.clone(),
            source: AckSource::Poll,
        })
    });
    let end = moves.end.map(|end| ended_as(end, copy));
    accept.into_iter().chain(end).collect()
}

/// Ends the order as the venue's copy ended.
fn ended_as(end: VenueEnd, copy: &VenueOrder) -> Command {
    Command::Record(StatusStep::End {
        end,
        venue_filled: copy.filled_qty,
        cause: EndCause::VenueEnded {
            status: copy.status,
            filled_qty: copy.filled_qty,
        },
    })
}

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
    /// A replace asked for: send it (again, if its answer was lost: the venue answers the same).
    Replace,
    /// Open at the venue: compare with its copy.
    Compare,
    /// A held stop: nothing is at the venue until its trigger, so there is nothing to ask.
    Wait,
}

impl FirstCall {
    pub fn of(state: &OrderState) -> FirstCall {
        match FirstCall::of_status(state.status, state.placement_sent) {
            // A cancel that overtook a replace first learns the replace's fate by sending it
            // again: not every venue's answer to a cancel names the version it ended (FIX's
            // names the cancel and the id it was sent under).
            FirstCall::Cancel if state.replacing.is_some() => FirstCall::Replace,
            call => call,
        }
    }

    /// [`FirstCall::of`] an order in `status`, sent to the venue or not.
    pub fn of_status(status: OrderStatus, placement_sent: bool) -> FirstCall {
        match (status, placement_sent) {
            (OrderStatus::PendingNew, false) => FirstCall::Place,
            (OrderStatus::PendingNew, true) => FirstCall::LookUp,
            (OrderStatus::PendingCancel, false) => FirstCall::Release,
            (OrderStatus::PendingCancel, true) => FirstCall::Cancel,
            (OrderStatus::PendingReplace, _) => FirstCall::Replace,
            (OrderStatus::Held, _) => FirstCall::Wait,
            _ => FirstCall::Compare,
        }
    }

    /// Whether a placement, a cancel or a replace is still to be settled with the venue.
    pub fn owes_a_call(self) -> bool {
        !matches!(self, FirstCall::Compare | FirstCall::Wait)
    }

    /// What recovery does for the order, as the metric and the feed name it (one of
    /// `metrics::RECOVERY_KINDS`).
    pub fn recovery_kind(self) -> &'static str {
        match self {
            FirstCall::Place => "place",
            FirstCall::LookUp => "lookup",
            FirstCall::Release => "release",
            FirstCall::Cancel => "cancel",
            FirstCall::Replace => "replace",
            FirstCall::Compare => "poll",
            FirstCall::Wait => "held",
        }
    }
}

/// What a step starts from when recovery listed the venue's orders: the listing (`copy`, None
/// when it had no such order) answers the lookup the order's first call would make. Any other
/// first call, and a comparison with no copy listed, is made as usual.
pub fn from_listing(state: &OrderState, copy: Option<VenueOrder>) -> Heard {
    match (FirstCall::of(state), copy) {
        (FirstCall::LookUp, copy) => Heard::LookedUp(LookUpFor::LostPlacement, Ok(copy)),
        (FirstCall::Compare, Some(copy)) => Heard::LookedUp(LookUpFor::Check, Ok(Some(copy))),
        _ => Heard::Start,
    }
}

/// The venue's fills the engine lacks, or holds under the same id with another quantity or
/// price (the recording phase decides those, and alarms what it refuses).
fn fills_to_record<'a>(
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
struct StatusMoves {
    /// Record `accepted`: the venue placed an order still pending new here.
    accept: bool,
    /// End the order as the venue ended it.
    end: Option<VenueEnd>,
}

/// `filled_here`: what the order's recorded fills add up to. A copy that states a larger total than
/// it lists fills for (a FIX status report lists none) names fills still on their way: the order
/// ends only once they are recorded, each from its own report.
fn status_moves(status: OrderStatus, filled_here: i64, venue: &VenueOrder) -> StatusMoves {
    if status.is_terminal() {
        return StatusMoves {
            accept: false,
            end: None,
        };
    }
    let placed = venue.venue_order_id.is_some();
    let accept =
        status == OrderStatus::PendingNew && placed && venue.status != VenueStatus::Rejected;
    let fills_to_come = !venue.lists_its_fills() && venue.filled_qty > filled_here;
    let end = match venue.status {
        _ if fills_to_come => None,
        VenueStatus::New | VenueStatus::PartiallyFilled => None,
        VenueStatus::Filled => Some(VenueEnd::Filled),
        VenueStatus::Canceled if !placed => Some(VenueEnd::NeverPlaced),
        VenueStatus::Canceled => Some(VenueEnd::Canceled),
        VenueStatus::Rejected => Some(VenueEnd::Rejected),
        VenueStatus::Expired => Some(VenueEnd::Expired),
    };
    StatusMoves { accept, end }
}

/// What follows the venue's answer to a placement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AfterPlacement {
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
fn after_placement(answer: Result<PlacedAck, ExchangeError>, sent_before: bool) -> AfterPlacement {
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
            expiring: false,
            replacing: None,
            version: 1,
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
            (S::PendingReplace, true, Replace),
            (S::Held, false, Wait),
        ] {
            assert_eq!(
                FirstCall::of(&state(status, sent)),
                call,
                "{status:?}, sent {sent}"
            );
        }
        let kinds: Vec<&str> = [Place, LookUp, Release, Cancel, Replace, Compare, Wait]
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
                status_moves(ours, 0, &copy),
                expected,
                "{ours:?} here, {theirs:?} there, placed {placed}"
            );
        }
    }

    fn at(status: OrderStatus, sent: bool, filled_qty: i64) -> OrderState {
        OrderState {
            filled_qty,
            ..state(status, sent)
        }
    }

    fn push(kind: ReportKind) -> Heard {
        Heard::Push(VenueReport {
            key: "k".into(),
            report_id: "r".into(),
            kind,
            client_order_id: "c".into(),
            venue_order_id: Some("X1".into()),
            fill: None,
        })
    }

    fn accepted(source: AckSource) -> Command {
        Command::Record(StatusStep::Accepted {
            venue_order_id: Some("X1".into()),
            source,
        })
    }

    /// Each row: the order as the step's records left it, what the step heard, and what it does
    /// next.
    #[rustfmt::skip]
    fn table() -> Vec<(OrderState, Heard, Vec<Command>)> {
        use Command::*;
        use OrderStatus as S;
        let unknown = || ExchangeError::Unknown("timeout".into());
        let open = venue(VenueStatus::New, true, &[]);
        let filled = venue(VenueStatus::Filled, true, &[("F1", 10, 100)]);
        let tombstone = venue(VenueStatus::Canceled, false, &[]);
        let filled_elsewhere = VenueOrder { fills: vec![], ..filled.clone() };
        let fills_in = |copy: &VenueOrder| RecordFills {
            fills: copy.fills.clone(),
            copy: copy.clone(),
        };
        let ack = PlacedAck {
            client_order_id: "c".into(),
            venue_order_id: Some("X1".into()),
            status: VenueStatus::New,
        };
        let refused = || ExchangeError::Refused("no".into());
        let placed = |sent_before, answer| Heard::Placed { sent_before, answer };
        let looked_up = |why, answer| Heard::LookedUp(why, answer);
        let rejected = Record(StatusStep::End {
            end: VenueEnd::Rejected,
            venue_filled: 0,
            cause: EndCause::PlacementRejected { reason: "no".into() },
        });
        let (pending, new) = (state(S::PendingNew, true), state(S::New, true));
        let (canceling, all_filled) = (state(S::PendingCancel, true), at(S::PartiallyFilled, true, 10));
        let replacing = OrderState { replacing: Some(12), ..state(S::PendingReplace, true) };
        let replaced = VenueOrder { qty: 12, ..venue(VenueStatus::New, true, &[]) };
        let replaced_filled = VenueOrder { qty: 12, ..venue(VenueStatus::PartiallyFilled, true, &[("F2", 11, 100)]) };
        let order = crate::domain::OrderId::new();
        let id_of = |version| ClientOrderId::for_version(order, version).to_string();
        let taken = VenueOrder { qty: 12, client_order_id: id_of(2), ..venue(VenueStatus::New, true, &[]) };
        let taken_then_canceled = VenueOrder { status: VenueStatus::Canceled, ..taken.clone() };
        let canceled_as_it_was = VenueOrder { client_order_id: id_of(1), ..venue(VenueStatus::Canceled, true, &[]) };
        let canceling_a_replace = OrderState { replacing: Some(12), ..state(S::PendingCancel, true) };
        vec![
            // The step's start follows the log.
            (state(S::PendingNew, false), Heard::Start, vec![Record(StatusStep::PlacementSent)]),
            (pending, Heard::Start, vec![LookUp(LookUpFor::LostPlacement)]),
            (state(S::PendingCancel, false), Heard::Start, vec![Record(StatusStep::ReleaseUnsent)]),
            (canceling, Heard::Start, vec![CancelAtVenue(CancelFor::Customer)]),
            (new, Heard::Start, vec![LookUp(LookUpFor::Check)]),
            // A push: an acknowledgement moves only an order pending new; an end, or the last
            // fill, is checked with the venue.
            (pending, push(ReportKind::Accepted), vec![accepted(AckSource::Push)]),
            (new, push(ReportKind::Accepted), vec![]),
            (new, push(ReportKind::Canceled), vec![LookUp(LookUpFor::Check)]),
            (new, push(ReportKind::Rejected), vec![LookUp(LookUpFor::Check)]),
            (at(S::PartiallyFilled, true, 4), push(ReportKind::Fill), vec![]),
            (all_filled, push(ReportKind::Fill), vec![LookUp(LookUpFor::Check)]),
            // Placing follows only a recorded mark; the answer decides what follows.
            (pending, Heard::MarkedSent(Applied::Recorded), vec![Place { sent_before: false }]),
            (pending, Heard::MarkedSent(Applied::Duplicate), vec![]),
            (pending, placed(false, Ok(ack)), vec![accepted(AckSource::Placement)]),
            (pending, placed(false, Err(refused())), vec![rejected]),
            (pending, placed(true, Err(refused())), vec![LookUp(LookUpFor::Refusal)]),
            (pending, placed(false, Err(unknown())), vec![LeaveToNextPoll { call: Call::Place, error: unknown() }]),
            // A lookup that finds nothing: what follows depends on why it was made.
            (pending, looked_up(LookUpFor::LostPlacement, Ok(None)), vec![Place { sent_before: true }]),
            (pending, looked_up(LookUpFor::Check, Ok(None)), vec![]),
            (new, looked_up(LookUpFor::Check, Ok(None)), vec![RaiseMissing]),
            (pending, looked_up(LookUpFor::Refusal, Ok(None)), vec![CancelAtVenue(CancelFor::Tombstone)]),
            (new, looked_up(LookUpFor::Check, Err(unknown())), vec![LeaveToNextPoll { call: Call::LookUp, error: unknown() }]),
            // A copy: its fills first, then its status.
            (new, looked_up(LookUpFor::Check, Ok(Some(open.clone()))), vec![]),
            (pending, looked_up(LookUpFor::Check, Ok(Some(open.clone()))), vec![accepted(AckSource::Poll)]),
            (pending, looked_up(LookUpFor::Refusal, Ok(Some(open))), vec![accepted(AckSource::Poll)]),
            (new, looked_up(LookUpFor::Check, Ok(Some(filled.clone()))), vec![fills_in(&filled)]),
            (all_filled, Heard::FillsIn(filled.clone()), vec![ended_as(VenueEnd::Filled, &filled)]),
            // A copy counting fills it does not carry (a FIX status) ends nothing before they come.
            (new, looked_up(LookUpFor::Check, Ok(Some(filled_elsewhere.clone()))), vec![]),
            (pending, looked_up(LookUpFor::Check, Ok(Some(filled_elsewhere.clone()))), vec![accepted(AckSource::Poll)]),
            (all_filled, looked_up(LookUpFor::Check, Ok(Some(filled_elsewhere.clone()))), vec![ended_as(VenueEnd::Filled, &filled_elsewhere)]),
            // The venue's answer to a cancel.
            (canceling, Heard::CancelAnswered(CancelFor::Tombstone, Ok(tombstone.clone())), vec![ended_as(VenueEnd::NeverPlaced, &tombstone)]),
            (canceling, Heard::CancelAnswered(CancelFor::Customer, Err(refused())), vec![LookUp(LookUpFor::Check)]),
            (canceling, Heard::CancelAnswered(CancelFor::Customer, Err(unknown())), vec![LeaveToNextPoll { call: Call::Cancel, error: unknown() }]),
            (pending, Heard::CancelAnswered(CancelFor::Tombstone, Err(refused())), vec![LeaveToNextPoll { call: Call::Tombstone, error: refused() }]),
            // A replace in flight is sent (again) at the step's start; the venue's answer decides.
            (replacing, Heard::Start, vec![ReplaceAtVenue]),
            (replacing, Heard::ReplaceAnswered(Ok(replaced.clone())), vec![Record(StatusStep::Replaced { qty: 12 })]),
            (replacing, Heard::ReplaceAnswered(Ok(replaced_filled.clone())), vec![Record(StatusStep::Replaced { qty: 12 }), fills_in(&replaced_filled)]),
            (replacing, Heard::ReplaceAnswered(Err(refused())), vec![Record(StatusStep::ReplaceRejected { reason: "no".into() }), LookUp(LookUpFor::Check)]),
            (replacing, Heard::ReplaceAnswered(Err(unknown())), vec![LeaveToNextPoll { call: Call::Replace, error: unknown() }]),
            (replacing, Heard::ReplaceAnswered(Err(ExchangeError::AmbiguousRefusal("late".into()))), vec![LeaveToNextPoll { call: Call::Replace, error: ExchangeError::AmbiguousRefusal("late".into()) }]),
            // A replace's fills, pushed, wait for its answer.
            (replacing, push(ReportKind::Fill), vec![]),
            // A copy under the new version's id: the venue took the replace, though its answer was
            // lost or a cancel overtook it. Its terms come first; under the old id, they stand.
            (replacing, looked_up(LookUpFor::Check, Ok(Some(taken.clone()))), vec![Record(StatusStep::Replaced { qty: 12 })]),
            (canceling_a_replace, Heard::CancelAnswered(CancelFor::Customer, Ok(taken_then_canceled.clone())), vec![Record(StatusStep::Replaced { qty: 12 }), ended_as(VenueEnd::Canceled, &taken_then_canceled)]),
            (canceling_a_replace, Heard::CancelAnswered(CancelFor::Customer, Ok(canceled_as_it_was.clone())), vec![ended_as(VenueEnd::Canceled, &canceled_as_it_was)]),
            (OrderState { version: 2, ..canceling_a_replace }, Heard::CancelAnswered(CancelFor::Customer, Ok(taken_then_canceled.clone())), vec![ended_as(VenueEnd::Canceled, &taken_then_canceled)]),
            // A cancel that overtook a replace learns the replace's fate first; then it cancels.
            (canceling_a_replace, Heard::Start, vec![ReplaceAtVenue]),
            (canceling_a_replace, Heard::ReplaceAnswered(Ok(taken.clone())), vec![Record(StatusStep::Replaced { qty: 12 })]),
            (canceling_a_replace, Heard::ReplaceAnswered(Err(refused())), vec![CancelAtVenue(CancelFor::Customer)]),
            (canceling_a_replace, Heard::ReplaceAnswered(Err(unknown())), vec![LeaveToNextPoll { call: Call::Replace, error: unknown() }]),
        ]
    }

    #[test]
    fn each_thing_heard_leads_to_its_commands() {
        let recorded = BTreeMap::new();
        for (order, heard, expected) in table() {
            let said = format!("{:?} heard {heard:?}", order.status);
            assert_eq!(decide(order, &recorded, heard), expected, "{said}");
        }
    }

    #[test]
    fn only_the_last_command_of_a_list_is_answered() {
        let recorded = BTreeMap::new();
        for (order, heard, _) in table() {
            let commands = decide(order, &recorded, heard);
            if let Some((_, before_last)) = commands.split_last() {
                assert!(before_last.iter().all(|c| !c.is_answered()), "{commands:?}");
            }
        }
    }

    #[test]
    fn fills_already_recorded_are_not_recorded_again_and_the_status_follows_at_once() {
        let copy = venue(VenueStatus::Filled, true, &[("F1", 10, 100)]);
        let recorded = BTreeMap::from([(
            "F1".to_owned(),
            RecordedFill {
                qty: 10,
                price: Cents(100),
            },
        )]);
        let heard = Heard::LookedUp(LookUpFor::Check, Ok(Some(copy.clone())));
        let commands = decide(at(OrderStatus::PartiallyFilled, true, 10), &recorded, heard);
        assert_eq!(commands, [ended_as(VenueEnd::Filled, &copy)]);
    }
}
