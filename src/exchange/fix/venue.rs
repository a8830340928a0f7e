//! A FIX 4.4 venue behind the engine's [`ExchangeClient`]: each call is one request on the session
//! and the report that answers it, matched by the request's own id (`ClOrdID`, or
//! `MassStatusReqID`). A request that cannot be sent, or whose answer does not come in time, is an
//! unknown outcome, as a lost HTTP response is: the engine asks the venue again before it acts.
//! The session itself runs on a thread of its own ([`super::session`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use ironfix_engine::{Connection, SendOutcome};
use tokio::sync::oneshot;

use super::messages::{self, Body, ExecType, ExecutionReport};
use crate::db::now_micros;
use crate::domain::VenueStatus;
use crate::domain::{Cents, OrderRef, OrderToPlace, PlacedAck, ReplaceTerms, VenueOrder};
use crate::exchange::client::{ExchangeClient, ExchangeError, Listing, RequestCounts};
use crate::exchange::lock;
use crate::fault_points::crash_point;
use crate::metrics::Metrics;

/// What a request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// The venue's first word on a new order: accepted, traded, rejected or ended.
    Placement,
    /// The replace's report, or its reject.
    Replace,
    /// The cancel's report, or its reject.
    Cancel,
    /// A status report (`ExecType` I).
    Status,
    /// Every report of a mass status.
    Mass,
}

/// The answer a request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    Report(Box<ExecutionReport>),
    Reports(Vec<ExecutionReport>),
    /// An OrderCancelReject (9): `too_late` when the order had ended, `unknown` when the venue
    /// never held it.
    CancelRejected {
        too_late: bool,
        unknown: bool,
        text: String,
    },
    /// A BusinessMessageReject (j) or a session-level Reject (3): the venue did not take it.
    Refused(String),
    /// A BusinessMessageReject for an application not available (`BusinessRejectReason` 4): not
    /// carried out now, and worth asking again, as a 503 is.
    Unavailable(String),
}

struct Awaiting {
    want: Want,
    answer: oneshot::Sender<Answer>,
    collected: Vec<ExecutionReport>,
}

/// What the session and the callers share: the live connection, the requests waiting for their
/// answers, and the last prices.
#[derive(Default)]
pub(super) struct Shared {
    connection: Mutex<Option<Connection>>,
    awaiting: Mutex<HashMap<String, Awaiting>>,
    by_seq: Mutex<HashMap<u64, String>>,
    prices: Mutex<BTreeMap<String, Cents>>,
    /// The symbols the venue lists; prices count as known once each of them has one.
    listed: Mutex<Vec<String>>,
    next_id: AtomicU64,
    /// The engine holding the session while this one stands by.
    held_elsewhere: Mutex<Option<String>>,
}

/// The key a request waits under: its kind, so that a status request and an order's own reports
/// never take each other's answer, and its id.
fn key(want: Want, id: &str) -> String {
    match want {
        Want::Status => format!("s:{id}"),
        Want::Mass => format!("m:{id}"),
        Want::Placement | Want::Replace | Want::Cancel => format!("o:{id}"),
    }
}

impl Shared {
    pub(super) fn connected(&self, connection: Option<Connection>) {
        let lost = connection.is_none();
        *lock(&self.connection) = connection;
        if lost {
            // Every request waiting on the old connection learns at once that its answer is lost.
            lock(&self.awaiting).clear();
            lock(&self.by_seq).clear();
        }
    }

    /// Records who holds the session (None: this engine). Returns whether this engine was
    /// standing by before.
    pub(super) fn standing_by(&self, holder: Option<String>) -> bool {
        let mut held = lock(&self.held_elsewhere);
        if held.is_none() {
            if let Some(holder) = &holder {
                tracing::info!(%holder, "another engine holds the FIX session; standing by");
            }
        }
        std::mem::replace(&mut *held, holder).is_some()
    }

    pub(super) fn connection(&self) -> Option<Connection> {
        lock(&self.connection).clone()
    }

    /// A fresh request id, unique within the process and across restarts.
    pub(super) fn request_id(&self, prefix: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{}-{n}", now_micros())
    }

    pub(super) fn set_prices(&self, prices: BTreeMap<String, Cents>) {
        lock(&self.prices).extend(prices);
    }

    pub(super) fn set_listed(&self, symbols: Vec<String>) {
        *lock(&self.listed) = symbols;
    }

    /// The last prices, once every listed symbol has one: a symbol whose snapshot has not come
    /// yet is not yet known, which is not the same as not listed.
    fn known_prices(&self) -> Option<BTreeMap<String, Cents>> {
        let listed = lock(&self.listed).clone();
        let prices = lock(&self.prices).clone();
        let complete = !listed.is_empty() && listed.iter().all(|s| prices.contains_key(s));
        complete.then_some(prices)
    }

    /// Adds a mass status report (`None`: one that names no order, as a venue holding none
    /// answers) to the request it answers. Returns whether one took it.
    pub(super) fn mass_report(&self, part: &MassPart, report: Option<ExecutionReport>) -> bool {
        let mut awaiting = lock(&self.awaiting);
        let k = key(Want::Mass, &part.request_id);
        let Some(waiting) = awaiting.get_mut(&k) else {
            return false;
        };
        waiting.collected.extend(report);
        let complete = part.last
            || part
                .total
                .is_some_and(|total| waiting.collected.len() >= total);
        if complete {
            if let Some(waiting) = awaiting.remove(&k) {
                let _ = waiting.answer.send(Answer::Reports(waiting.collected));
            }
        }
        true
    }

    /// Hands `report` to the request waiting for it. Returns whether one took it.
    pub(super) fn report(&self, report: &ExecutionReport) -> bool {
        let (want, id) = match report.exec_type {
            ExecType::Status => {
                let asked = report.status_request_id.as_deref();
                (Want::Status, asked.unwrap_or(&report.client_order_id))
            }
            _ => (Want::Placement, report.client_order_id.as_str()),
        };
        let k = key(want, id);
        let mut awaiting = lock(&self.awaiting);
        let takes = awaiting
            .get(&k)
            .is_some_and(|waiting| answers(waiting.want, report.exec_type));
        if !takes {
            return false;
        }
        if let Some(waiting) = awaiting.remove(&k) {
            let _ = waiting
                .answer
                .send(Answer::Report(Box::new(report.clone())));
        }
        true
    }

    /// Hands a reject to the request `id` names (`want` tells which kind of request it was).
    pub(super) fn reject(&self, want: Want, id: &str, answer: Answer) {
        if let Some(waiting) = lock(&self.awaiting).remove(&key(want, id)) {
            let _ = waiting.answer.send(answer);
        }
    }

    /// Hands a session-level reject to the request sent under `seq`.
    pub(super) fn reject_seq(&self, seq: u64, text: String) {
        let Some(k) = lock(&self.by_seq).remove(&seq) else {
            return;
        };
        if let Some(waiting) = lock(&self.awaiting).remove(&k) {
            let _ = waiting.answer.send(Answer::Refused(text));
        }
    }
}

/// Whether a report of `exec_type` answers a request that wants `want`.
fn answers(want: Want, exec_type: ExecType) -> bool {
    use ExecType as E;
    match want {
        Want::Placement => matches!(
            exec_type,
            E::New | E::Trade | E::Rejected | E::Canceled | E::Expired
        ),
        Want::Replace => matches!(exec_type, E::Replaced | E::Rejected),
        Want::Cancel => matches!(exec_type, E::Canceled | E::Expired),
        Want::Status => exec_type == E::Status,
        Want::Mass => false,
    }
}

/// Where a mass status report stands in its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MassPart {
    pub request_id: String,
    pub total: Option<usize>,
    pub last: bool,
}

/// A FIX venue, as the engine calls it.
pub struct FixVenue {
    shared: Arc<Shared>,
    timeout: Duration,
    counts: RequestCounts,
}

impl FixVenue {
    pub(super) fn new(shared: Arc<Shared>, timeout: Duration) -> Self {
        FixVenue {
            shared,
            timeout,
            counts: RequestCounts::default(),
        }
    }

    /// Counts every request in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.counts = RequestCounts::new(metrics);
        self
    }

    /// The session's connection, waiting for a logon (after a start, or a drop) as long as an
    /// answer is waited for.
    async fn logged_on(&self) -> Option<Connection> {
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            let connection = self.shared.connection().filter(|c| !c.is_closed());
            if connection.is_some() || std::time::Instant::now() >= deadline {
                return connection;
            }
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `body` and waits for what answers it under `id`.
    async fn ask(
        &self,
        op: &'static str,
        want: Want,
        id: &str,
        body: Body,
    ) -> Result<Answer, ExchangeError> {
        let answer = match self.ask_once(want, id, body).await {
            Ok(Answer::Unavailable(text)) => Err(ExchangeError::Unknown(text)),
            other => other,
        };
        self.counts.request(
            op,
            match &answer {
                Ok(Answer::Refused(_)) => "refused",
                Ok(_) => "ok",
                Err(_) => "unknown",
            },
        );
        answer
    }

    async fn ask_once(&self, want: Want, id: &str, body: Body) -> Result<Answer, ExchangeError> {
        let unknown =
            |why: String| ExchangeError::Unknown(format!("{} {id}: {why}", body.msg_type));
        let Some(connection) = self.logged_on().await else {
            return Err(unknown("the FIX session is not logged on".into()));
        };
        let Some(message) = body.outbound() else {
            return Err(ExchangeError::Refused(format!(
                "no FIX type {}",
                body.msg_type
            )));
        };
        let k = key(want, id);
        let (sender, receiver) = oneshot::channel();
        let waiting = Awaiting {
            want,
            answer: sender,
            collected: Vec::new(),
        };
        lock(&self.shared.awaiting).insert(k.clone(), waiting);
        let forget = || {
            lock(&self.shared.awaiting).remove(&k);
        };
        let seq = match connection.send_tracked(message).await {
            SendOutcome::Sent { seq, .. } => seq,
            SendOutcome::NotSent { reason, .. } => {
                forget();
                return Err(unknown(format!("not sent: {reason:?}")));
            }
            other => {
                forget();
                return Err(unknown(format!(
                    "the connection failed as it was sent: {other:?}"
                )));
            }
        };
        lock(&self.shared.by_seq).insert(seq, k.clone());
        let answer = actix_web::rt::time::timeout(self.timeout, receiver).await;
        lock(&self.shared.by_seq).remove(&seq);
        match answer {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(unknown("the session closed before the answer came".into())),
            Err(_) => {
                forget();
                Err(unknown(format!("no answer within {:?}", self.timeout)))
            }
        }
    }

    /// The venue's copy of `order` after a cancel that came too late: whatever ended it.
    async fn copy_after(
        &self,
        order: OrderRef<'_>,
        text: String,
    ) -> Result<VenueOrder, ExchangeError> {
        match self.order(order).await? {
            Some(copy) if copy.status.is_terminal() => Ok(copy),
            _ => Err(ExchangeError::Refused(text)),
        }
    }
}

/// A copy of an order the venue says it never held, as a cancel leaves it: nothing to cancel,
/// and (the session never sends an order again after its first connection is gone) nothing that
/// can arrive later.
fn never_held(client_order_id: &str) -> VenueOrder {
    VenueOrder {
        client_order_id: client_order_id.to_owned(),
        venue_order_id: None,
        status: VenueStatus::Canceled,
        qty: 0,
        filled_qty: 0,
        fills: Vec::new(),
    }
}

/// Whether a status report says the venue does not know the order (`OrdRejReason` 5).
fn is_unknown_order(report: &ExecutionReport) -> bool {
    report.status == VenueStatus::Rejected && report.unknown_order
}

fn unexpected(answer: &Answer) -> ExchangeError {
    ExchangeError::Unknown(format!("an answer of the wrong kind: {answer:?}"))
}

impl ExchangeClient for FixVenue {
    fn held_elsewhere(&self) -> Option<String> {
        lock(&self.shared.held_elsewhere).clone()
    }

    fn prices(&self) -> LocalBoxFuture<'_, Result<BTreeMap<String, Cents>, ExchangeError>> {
        Box::pin(async move {
            let Some(prices) = self.shared.known_prices() else {
                self.counts.request("prices", "unknown");
                return Err(ExchangeError::Unknown(
                    "no market data from the FIX venue yet for every symbol it lists".into(),
                ));
            };
            self.counts.request("prices", "ok");
            Ok(prices)
        })
    }

    fn place<'a>(
        &'a self,
        order: &'a OrderToPlace,
    ) -> LocalBoxFuture<'a, Result<PlacedAck, ExchangeError>> {
        Box::pin(async move {
            let body = messages::new_order_single(order, now_micros());
            crash_point("exchange.before_place");
            let cid = order.client_order_id.as_str();
            let answer = self.ask("place", Want::Placement, cid, body).await;
            crash_point("exchange.after_place");
            match answer? {
                Answer::Report(report) => Ok(PlacedAck {
                    client_order_id: report.client_order_id.clone(),
                    venue_order_id: report.venue_order_id.clone(),
                    status: report.status,
                }),
                Answer::Refused(text) => Err(ExchangeError::Refused(text)),
                other => Err(unexpected(&other)),
            }
        })
    }

    fn order<'a>(
        &'a self,
        order: OrderRef<'a>,
    ) -> LocalBoxFuture<'a, Result<Option<VenueOrder>, ExchangeError>> {
        Box::pin(async move {
            let body = messages::status_request(&order);
            crash_point("exchange.before_lookup");
            let answer = self
                .ask("lookup", Want::Status, order.client_order_id, body)
                .await;
            crash_point("exchange.after_lookup");
            match answer? {
                Answer::Report(report) if is_unknown_order(&report) => Ok(None),
                Answer::Report(report) => Ok(Some(report.as_copy())),
                Answer::Refused(text) => Err(ExchangeError::Refused(text)),
                other => Err(unexpected(&other)),
            }
        })
    }

    fn cancel<'a>(
        &'a self,
        order: OrderRef<'a>,
    ) -> LocalBoxFuture<'a, Result<VenueOrder, ExchangeError>> {
        Box::pin(async move {
            let body = messages::cancel_request(&order, now_micros());
            let id = messages::cancel_id(order.client_order_id);
            crash_point("exchange.before_cancel");
            let answer = self.ask("cancel", Want::Cancel, &id, body).await;
            crash_point("exchange.after_cancel");
            match answer? {
                Answer::Report(report) => Ok(VenueOrder {
                    client_order_id: order.client_order_id.to_owned(),
                    ..report.as_copy()
                }),
                Answer::CancelRejected { unknown: true, .. } => {
                    Ok(never_held(order.client_order_id))
                }
                Answer::CancelRejected {
                    too_late: true,
                    text,
                    ..
                } => self.copy_after(order, text).await,
                Answer::CancelRejected { text, .. } | Answer::Refused(text) => {
                    Err(ExchangeError::Refused(text))
                }
                other => Err(unexpected(&other)),
            }
        })
    }

    fn orders_listed<'a>(
        &'a self,
        listing: &'a Listing,
    ) -> LocalBoxFuture<'a, Result<Vec<VenueOrder>, ExchangeError>> {
        Box::pin(async move {
            let id = self.shared.request_id("mass");
            let body = messages::mass_status_request(&id);
            match self.ask("list", Want::Mass, &id, body).await? {
                // The venue's reports carry no time to filter by: every order it holds is listed,
                // which is more than `updated_since` asks for, never less.
                Answer::Reports(reports) => Ok(reports
                    .iter()
                    .map(ExecutionReport::as_copy)
                    .filter(|copy| !listing.open_only || !copy.status.is_terminal())
                    .collect()),
                Answer::Refused(text) => Err(ExchangeError::Refused(text)),
                other => Err(unexpected(&other)),
            }
        })
    }

    fn replace<'a>(
        &'a self,
        order: OrderRef<'a>,
        terms: &'a ReplaceTerms,
    ) -> LocalBoxFuture<'a, Result<VenueOrder, ExchangeError>> {
        Box::pin(async move {
            let Some(limit) = terms.limit_price else {
                return Err(ExchangeError::Refused(
                    "a replace over FIX names its limit price".into(),
                ));
            };
            let new_id = terms.new_client_order_id.as_str();
            let body = messages::replace_request(&order, new_id, terms.qty, limit, now_micros());
            crash_point("exchange.before_replace");
            let answer = self.ask("replace", Want::Replace, new_id, body).await;
            crash_point("exchange.after_replace");
            match answer? {
                Answer::Report(report) if report.exec_type == ExecType::Rejected => {
                    Err(ExchangeError::Refused(format!("replace {new_id} rejected")))
                }
                Answer::Report(report) => Ok(report.as_copy()),
                Answer::CancelRejected { text, .. } | Answer::Refused(text) => {
                    Err(ExchangeError::Refused(text))
                }
                other => Err(unexpected(&other)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(exec_type: ExecType, id: &str) -> ExecutionReport {
        ExecutionReport {
            exec_id: "E1".into(),
            exec_type,
            client_order_id: id.into(),
            orig_client_order_id: None,
            status_request_id: None,
            venue_order_id: Some("V1".into()),
            status: VenueStatus::New,
            qty: 10,
            filled_qty: 0,
            fill: None,
            unknown_order: false,
        }
    }

    fn waiting(shared: &Shared, want: Want, id: &str) -> oneshot::Receiver<Answer> {
        let (answer, receiver) = oneshot::channel();
        let awaiting = Awaiting {
            want,
            answer,
            collected: Vec::new(),
        };
        lock(&shared.awaiting).insert(key(want, id), awaiting);
        receiver
    }

    #[test]
    fn a_report_answers_only_the_request_that_waits_for_its_kind() {
        let shared = Shared::default();
        let mut status = waiting(&shared, Want::Status, "ok-1");
        let mut placement = waiting(&shared, Want::Placement, "ok-1");
        assert!(
            !shared.report(&report(ExecType::Replaced, "ok-1")),
            "a placement is not answered by a replace"
        );
        assert!(shared.report(&report(ExecType::New, "ok-1")));
        assert!(matches!(placement.try_recv(), Ok(Answer::Report(_))));
        assert!(status.try_recv().is_err(), "the status still waits");
        assert!(
            !shared.report(&report(ExecType::New, "ok-1")),
            "answered once"
        );
        assert!(shared.report(&report(ExecType::Status, "ok-1")));
        assert!(matches!(status.try_recv(), Ok(Answer::Report(_))));
    }

    #[test]
    fn a_mass_status_collects_its_reports_until_the_last() {
        let shared = Shared::default();
        let mut mass = waiting(&shared, Want::Mass, "m1");
        let part = |last| MassPart {
            request_id: "m1".into(),
            total: None,
            last,
        };
        let status = |id| Some(report(ExecType::Status, id));
        assert!(shared.mass_report(&part(false), status("ok-1")));
        assert!(mass.try_recv().is_err());
        assert!(shared.mass_report(&part(true), status("ok-2")));
        let Ok(Answer::Reports(reports)) = mass.try_recv() else {
            panic!("answered")
        };
        let ids: Vec<_> = reports.iter().map(|r| r.client_order_id.as_str()).collect();
        assert_eq!(ids, ["ok-1", "ok-2"]);

        let mut none = waiting(&shared, Want::Mass, "m2");
        let empty = MassPart {
            request_id: "m2".into(),
            total: Some(0),
            last: true,
        };
        assert!(shared.mass_report(&empty, None));
        assert_eq!(none.try_recv(), Ok(Answer::Reports(vec![])));
    }

    #[test]
    fn a_lost_connection_answers_every_waiting_request_at_once() {
        let shared = Shared::default();
        let mut placement = waiting(&shared, Want::Placement, "ok-1");
        shared.connected(None);
        assert!(matches!(
            placement.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }
}
