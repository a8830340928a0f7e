//! Every message an order actor takes, in one place.

use actix::Message;

use crate::domain::{VenueOrder, VenueReport};

/// Why the actor is asked to make progress.
#[derive(Debug, Clone)]
pub enum Reason {
    /// A new order, just committed: place it.
    Place,
    /// Started or restarted: carry on from the last recorded step.
    Recover,
    /// Started by recovery, which listed the venue's orders: carry on from the last recorded
    /// step, taking the venue's copy as listed (None: the listing had no such order) for the
    /// lookup the step would make.
    Reconcile(Option<VenueOrder>),
    /// The poll timer: compare with the exchange's copy.
    Poll,
    /// A push from the exchange.
    Push(VenueReport),
    /// The customer's cancel was just recorded.
    Cancel,
    /// The customer's replace was just recorded.
    Replace,
}

impl Reason {
    /// For logs.
    pub fn name(&self) -> &'static str {
        match self {
            Reason::Place => "place",
            Reason::Recover | Reason::Reconcile(_) => "recover",
            Reason::Poll => "poll",
            Reason::Push(_) => "push",
            Reason::Cancel => "cancel",
            Reason::Replace => "replace",
        }
    }

    /// A push that can only move an order still pending new ([`VenueReport::is_bare_ack`]).
    pub fn is_bare_ack(&self) -> bool {
        matches!(self, Reason::Push(e) if e.is_bare_ack())
    }
}

/// Make progress on the order.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drive(pub Reason);

/// Something happened to the order that needs no step (a fill taken in that leaves it open):
/// watch it closely again.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WatchClosely;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_reason_has_its_metric_series_from_start_up() {
        let push = VenueReport {
            key: "k".into(),
            report_id: "E1".into(),
            kind: crate::domain::ReportKind::Accepted,
            client_order_id: "c".into(),
            venue_order_id: None,
            fill: None,
        };
        let reasons = [
            Reason::Place,
            Reason::Recover,
            Reason::Poll,
            Reason::Push(push),
            Reason::Cancel,
            Reason::Replace,
        ];
        let names: Vec<&str> = reasons.iter().map(Reason::name).collect();
        assert_eq!(names, crate::metrics::STEP_REASONS);
    }
}
