//! The simulator as a FIX 4.4 acceptor (`exchange-sim --fix-listen`, SenderCompID `EXCH`): the
//! same book, prices and faults as its HTTP API.
//!
//! Every report is numbered in the session's sequence, whether or not a session is up: while the
//! engine is away, reports are filed in the session's store under the next numbers, and the
//! engine's next logon finds the gap and asks for them, as a venue's session keeps its messages
//! for a counterparty that reconnects. The store is the engine's own FIX store, over a SQLite file
//! beside the book (a temporary one without a book file), so the session outlives a restart.
//!
//! Faults: a request the dice answer with a 503 over HTTP gets a BusinessMessageReject here (it
//! did nothing); a lost response cuts the line in place of the answer, or in the middle of a
//! resend; drops and duplicates of reports happen on the wire ([`super::fix_wire`]). Reordering has no FIX form: a session
//! delivers in sequence.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use ironfix_core::message::{MsgType, RawMessage};
use ironfix_core::types::CompId;
use ironfix_engine::application::{Application, RejectReason, SessionId};
use ironfix_engine::{Acceptor, Connection, OutboundMessage, SendOutcome, SessionConfig};
use ironfix_store::SyncMessageStore;
use tokio::sync::mpsc;

use super::book::ReplaceRefused;
use super::faults::RestFault;
use super::fix_reports::{self as reports, Report};
use super::fix_wire::{CutSwitch, Fate, FaultyWire, WireFaults};
use super::server::{Announcements, Planned, Shared, SimState};
use crate::db::now_micros;
use crate::domain::{Cents, OrderType, Side};
use crate::exchange::fix::messages::{self, tag, Body};
use crate::exchange::fix::store::SessionStore;
use crate::exchange::lock;
use crate::exchange::wire::{ExchangeOrder, ExchangeStatus, PlaceOrder, ReplaceOrder};

/// The venue's own CompID.
pub const VENUE_COMP_ID: &str = "EXCH";

/// A report on its way to the session; `lose_answer` cuts the line in its place.
struct Outgoing {
    body: Body,
    lose_answer: bool,
}

/// Where the book's reports go: to the session, in the order they were made.
#[derive(Clone)]
pub struct Outlet {
    sender: mpsc::UnboundedSender<Outgoing>,
    /// The MDReqID of the engine's market data subscription, once it has asked.
    subscription: Arc<Mutex<Option<String>>>,
}

impl Outlet {
    /// Queues `body`; with `lose_answer`, the line is cut in its place.
    pub fn send(&self, body: Body, lose_answer: bool) {
        let _ = self.sender.send(Outgoing { body, lose_answer });
    }

    /// Tells a subscribed engine the prices now.
    pub fn prices_moved(&self, prices: &std::collections::BTreeMap<String, Cents>) {
        let subscription = lock(&self.subscription).clone();
        if let Some(request) = subscription {
            self.send(reports::refresh(&request, prices), false);
        }
    }
}

/// Whether a session is up, and whether one is logging on (then the store is the session's).
#[derive(Default)]
struct Line {
    up: Option<(u64, Connection, Arc<CutSwitch>)>,
    logging_on: usize,
    generation: u64,
}

struct Front {
    line: Mutex<Line>,
    /// The session's store, for filing reports while no session is up.
    store: SessionStore,
    target: String,
}

impl Front {
    /// Sends one report: over the session when it is up, into the store when none is up or
    /// logging on, and once one has logged on when one is.
    async fn deliver(&self, out: Outgoing) {
        let Some(message) = out.body.outbound() else {
            return;
        };
        loop {
            let up = {
                let line = lock(&self.line);
                match &line.up {
                    Some((generation, connection, cut)) => {
                        Some((*generation, connection.clone(), Arc::clone(cut)))
                    }
                    None if line.logging_on > 0 => None,
                    None => return self.file(&out.body, &line),
                }
            };
            let Some((generation, connection, cut)) = up else {
                actix_web::rt::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            if out.lose_answer {
                cut.arm();
            }
            match connection.send_tracked(message.clone()).await {
                SendOutcome::NotSent { .. } => self.down(generation),
                // Numbered: the session's store has it for a resend.
                _ => return,
            }
        }
    }

    /// Files a report under the session's next number. `_line` is held: no logon reads the
    /// store meanwhile.
    fn file(&self, body: &Body, _line: &MutexGuard<'_, Line>) {
        let filed = self
            .store
            .refresh()
            .map_err(|e| e.to_string())
            .and_then(|()| {
                let seq = self.store.next_sender_seq();
                let frame = body
                    .frame(VENUE_COMP_ID, &self.target, seq, now_micros())
                    .ok_or("a report that does not frame")?;
                let msg_type = MsgType::new(body.msg_type).map_err(|e| e.to_string())?;
                self.store
                    .file_outbound(seq, &msg_type, &frame, seq + 1)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = filed {
            tracing::error!(error = %e, "a FIX report could not be filed for the engine's return");
        }
    }

    fn down(&self, generation: u64) {
        let mut line = lock(&self.line);
        if matches!(&line.up, Some((g, ..)) if *g == generation) {
            line.up = None;
        }
    }
}

/// The simulator's dice, rolled for each report the wire carries.
struct SimFaults(Shared);

impl WireFaults for SimFaults {
    fn report_fate(&self) -> Fate {
        let mut s = self.0.lock();
        let faults = s.faults;
        let plan = s.dice.push(&faults, Duration::ZERO);
        match plan.copies {
            0 => Fate::Dropped,
            1 => Fate::Sent,
            _ => Fate::Repeated,
        }
    }

    fn cuts_a_resend(&self) -> bool {
        let mut s = self.0.lock();
        let faults = s.faults;
        s.dice.rest(&faults) == RestFault::LostResponse
    }
}

/// Starts the acceptor on `listen`, for the engine whose CompID is `target`, with the session's
/// store at `store_url`. Returns the port, and the outlet the book's reports go to.
pub(super) fn start(
    listen: &str,
    target: &str,
    store_url: &str,
    shared: Shared,
) -> std::io::Result<(u16, Outlet)> {
    fn io(e: impl std::fmt::Display) -> std::io::Error {
        std::io::Error::other(e.to_string())
    }
    let session = format!("FIX.4.4:{VENUE_COMP_ID}->{target}");
    crate::db::connect(store_url, 1).map_err(io)?;
    let (sessions_store, own_store) = (
        open_store(store_url, &session)?,
        open_store(store_url, &session)?,
    );
    let id = |s: &str| CompId::new(s).map_err(|e| io(format!("CompID {s:?}: {e}")));
    let config = SessionConfig::new(id(VENUE_COMP_ID)?, id(target)?, "FIX.4.4");

    let (sender, mut outgoing) = mpsc::unbounded_channel();
    let outlet = Outlet {
        sender,
        subscription: Arc::default(),
    };
    let front = Arc::new(Front {
        line: Mutex::default(),
        store: own_store,
        target: target.to_owned(),
    });
    let (pushes, mut to_push) = mpsc::unbounded_channel();
    let venue = Arc::new(Venue {
        shared: shared.clone(),
        subscription: Arc::clone(&outlet.subscription),
        pushes,
    });
    let pushing = shared.clone();
    actix_web::rt::spawn(async move {
        while let Some(pushes) = to_push.recv().await {
            pushing.push(pushes);
        }
    });
    let acceptor =
        Arc::new(Acceptor::new(config, venue).with_store(sessions_store.into_message_store()));
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tracing::info!(port, %session, "FIX acceptor listening");

    let delivering = Arc::clone(&front);
    actix_web::rt::spawn(async move {
        while let Some(out) = outgoing.recv().await {
            delivering.deliver(out).await;
        }
    });
    let faults: Arc<dyn WireFaults> = Arc::new(SimFaults(shared));
    actix_web::rt::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "FIX accept failed");
                    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let cut = Arc::new(CutSwitch::default());
            let wire = FaultyWire::new(stream, Arc::clone(&faults), Arc::clone(&cut));
            let (front, acceptor) = (Arc::clone(&front), Arc::clone(&acceptor));
            actix_web::rt::spawn(async move {
                lock(&front.line).logging_on += 1;
                let served = acceptor.serve_stream(wire).await;
                let generation = {
                    let mut line = lock(&front.line);
                    line.logging_on -= 1;
                    match &served {
                        Ok(connection) => {
                            line.generation += 1;
                            line.up = Some((line.generation, connection.clone(), cut));
                            Some(line.generation)
                        }
                        Err(_) => None,
                    }
                };
                match (served, generation) {
                    (Ok(connection), Some(generation)) => {
                        tracing::info!("FIX session logged on");
                        connection.wait_closed().await;
                        front.down(generation);
                        tracing::info!("FIX session ended");
                    }
                    (Err(e), _) => tracing::info!(error = %e, "FIX logon refused"),
                    _ => {}
                }
            });
        }
    });
    Ok((port, outlet))
}

/// One connection to the session's store, opened as the engine's own are (`busy_timeout`, WAL):
/// the session layer and the filing of reports write it from two, and a pool may still be opening
/// its own as they start.
fn open_store(store_url: &str, session: &str) -> std::io::Result<SessionStore> {
    let io = |e: String| std::io::Error::other(e);
    let connector = crate::db::pool::Connector::new(store_url).map_err(|e| io(e.to_string()))?;
    let conn = connector.open().map_err(|e| io(e.to_string()))?;
    SessionStore::open(conn, session).map_err(|e| io(e.to_string()))
}

/// The venue's side of the session: requests in, answers out through the outlet.
struct Venue {
    shared: Shared,
    subscription: Arc<Mutex<Option<String>>>,
    /// Webhook pushes, for the simulator's thread to deliver (the session's callbacks run on
    /// the session layer's own tasks).
    pushes: mpsc::UnboundedSender<Vec<Planned>>,
}

impl Venue {
    /// Runs `work` unless the dice refuse the request (a BusinessMessageReject, nothing done);
    /// saves the book, then sends what `work` announced, its answer lost when the dice say so.
    fn with_faults(
        &self,
        message: &RawMessage<'_>,
        ref_id: &str,
        work: impl FnOnce(&mut SimState) -> Announcements,
    ) {
        let pushes = {
            let mut s = self.shared.lock();
            let faults = s.faults;
            let fault = s.dice.rest(&faults);
            if fault == RestFault::Error {
                let seq = message.get_field_str(tag::MSG_SEQ_NUM).unwrap_or_default();
                let refused = reports::unavailable(seq, message.msg_type().as_str(), ref_id);
                s.tell(Announcements::of(vec![refused]))
            } else {
                let mut announced = work(&mut s);
                if let Err(e) = s.save() {
                    tracing::error!(error = %e, "the book could not be saved");
                }
                announced.lose_first = fault == RestFault::LostResponse;
                s.tell(announced)
            }
        };
        if !pushes.is_empty() {
            let _ = self.pushes.send(pushes);
        }
    }

    fn new_order(&self, message: &RawMessage<'_>) -> Result<(), RejectReason> {
        let request = read_new_order(message)?;
        let cid = request.client_order_id.clone();
        self.with_faults(message, &cid, |s| {
            let placed = s.book.place(request, &s.market);
            if placed.created {
                return s.announce(placed.events, true);
            }
            // The same order again: acknowledged again, as it stands.
            let Some(terms) = s.book.terms(&cid).cloned() else {
                return Announcements::default();
            };
            let id = s.event_id();
            let again = Report::of(&placed.order, id, "0", &terms.symbol, terms.side);
            Announcements::of(vec![again.body(Vec::new())])
        });
        Ok(())
    }

    fn cancel(&self, message: &RawMessage<'_>) {
        let field = |t| message.get_field_str(t).unwrap_or_default().to_owned();
        let (cid, orig) = (field(tag::CL_ORD_ID), field(tag::ORIG_CL_ORD_ID));
        self.with_faults(message, &cid, |s| {
            let known = s.book.terms(&orig).cloned();
            let (order, events) = s.book.cancel(&orig);
            let ended = !events.is_empty();
            // Pushes for the webhook; the session hears the answer below.
            let mut announced = s.announce(events, false);
            let answer = match known {
                None => reports::cancel_reject(&cid, &orig, None, "1", "1", "unknown order"),
                Some(_) if !ended => {
                    let text = "too late to cancel";
                    reports::cancel_reject(&cid, &orig, Some(&order), "1", "0", text)
                }
                Some(terms) => {
                    let id = s.event_id();
                    Report {
                        client_order_id: &cid,
                        orig_client_order_id: Some(&orig),
                        ..Report::of(&order, id, "4", &terms.symbol, terms.side)
                    }
                    .body(Vec::new())
                }
            };
            announced.reports = vec![answer];
            announced
        });
    }

    fn replace(&self, message: &RawMessage<'_>) {
        let field = |t| message.get_field_str(t).unwrap_or_default().to_owned();
        let (cid, orig) = (field(tag::CL_ORD_ID), field(tag::ORIG_CL_ORD_ID));
        let qty = field(tag::ORDER_QTY).parse::<i64>().unwrap_or(0);
        let limit_price = messages::price(&field(tag::PRICE));
        self.with_faults(message, &cid, |s| {
            let terms = ReplaceOrder {
                new_client_order_id: cid.clone(),
                qty,
                limit_price,
            };
            let (reason, text) = match s.book.replace(&orig, terms) {
                Ok(order) => {
                    let Some(terms) = s.book.terms(&cid).cloned() else {
                        return Announcements::default();
                    };
                    let id = s.event_id();
                    let report = Report {
                        orig_client_order_id: order.orig_client_order_id.as_deref(),
                        ..Report::of(&order, id, "5", &terms.symbol, terms.side)
                    };
                    return Announcements::of(vec![report.body(Vec::new())]);
                }
                Err(ReplaceRefused::TooLate) => ("0", "too late to replace"),
                Err(ReplaceRefused::NotFound) => ("1", "unknown order"),
                Err(ReplaceRefused::IdTaken) => ("6", "the new ClOrdID is taken"),
            };
            let order = s.book.get(&orig);
            let refused = reports::cancel_reject(&cid, &orig, order.as_ref(), "2", reason, text);
            Announcements::of(vec![refused])
        });
    }

    fn status(&self, message: &RawMessage<'_>) {
        let field = |t| message.get_field_str(t).unwrap_or_default().to_owned();
        let cid = field(tag::CL_ORD_ID);
        let symbol = field(tag::SYMBOL);
        let side = messages::side_of(&field(tag::SIDE)).unwrap_or(Side::Buy);
        let echo = message
            .get_field_str(tag::ORD_STATUS_REQ_ID)
            .map(|id| (tag::ORD_STATUS_REQ_ID, id.to_owned()));
        self.with_faults(message, &cid, |s| {
            let id = s.event_id();
            // The order under its latest version's id, whichever of its ids was asked.
            let report = match s.book.get(&cid) {
                Some(order) => {
                    Report::of(&order, id, "I", &symbol, side).body(echo.into_iter().collect())
                }
                None => {
                    let mut unknown = vec![
                        (tag::ORD_REJ_REASON, "5".to_owned()),
                        (tag::TEXT, "unknown order".to_owned()),
                    ];
                    unknown.extend(echo);
                    let never = never_held(&cid);
                    Report::of(&never, id, "I", &symbol, side).body(unknown)
                }
            };
            Announcements::of(vec![report])
        });
    }

    fn mass_status(&self, message: &RawMessage<'_>) {
        let request = message
            .get_field_str(tag::MASS_STATUS_REQ_ID)
            .unwrap_or_default()
            .to_owned();
        self.with_faults(message, &request, |s| {
            let orders = s.book.all();
            let total = orders.len();
            let part = |n: usize| {
                let last = if n + 1 >= total { "Y" } else { "N" };
                vec![
                    (tag::MASS_STATUS_REQ_ID, request.clone()),
                    (tag::TOT_NUM_REPORTS, total.to_string()),
                    (tag::LAST_RPT_REQUESTED, last.to_owned()),
                ]
            };
            if orders.is_empty() {
                // One report that names no order says there is none.
                let id = s.event_id();
                let never = never_held("NONE");
                let none = Report::of(&never, id, "I", "NONE", Side::Buy);
                return Announcements::of(vec![none.body(part(0))]);
            }
            let mut reports = Vec::with_capacity(total);
            for (n, order) in orders.iter().enumerate() {
                let Some(terms) = s.book.terms(&order.client_order_id).cloned() else {
                    continue;
                };
                let id = s.event_id();
                let report = Report::of(order, id, "I", &terms.symbol, terms.side);
                reports.push(report.body(part(n)));
            }
            Announcements::of(reports)
        });
    }

    fn security_list(&self, message: &RawMessage<'_>) {
        let request = message
            .get_field_str(tag::SECURITY_REQ_ID)
            .unwrap_or_default();
        let mut s = self.shared.lock();
        let response = s.event_id();
        let symbols: Vec<&String> = s.market.prices().keys().collect();
        let answer = reports::security_list(request, &response, &symbols);
        s.tell(Announcements::of(vec![answer]));
    }

    fn market_data(&self, message: &RawMessage<'_>) {
        let request = message
            .get_field_str(tag::MD_REQ_ID)
            .unwrap_or_default()
            .to_owned();
        let mut s = self.shared.lock();
        *lock(&self.subscription) = Some(request.clone());
        let snapshots = s
            .market
            .prices()
            .iter()
            .map(|(symbol, price)| reports::snapshot(&request, symbol, *price))
            .collect();
        s.tell(Announcements::of(snapshots));
    }
}

/// An order the venue never held, as a status report names it.
fn never_held(client_order_id: &str) -> ExchangeOrder {
    ExchangeOrder {
        client_order_id: client_order_id.to_owned(),
        orig_client_order_id: None,
        exchange_order_id: None,
        status: ExchangeStatus::Rejected,
        qty: 0,
        filled_qty: 0,
        fills: Vec::new(),
        updated_at: None,
    }
}

/// A NewOrderSingle as the book takes it; what cannot be read is a session-level Reject.
fn read_new_order(message: &RawMessage<'_>) -> Result<PlaceOrder, RejectReason> {
    let field = |t| message.get_field_str(t);
    // Reject (3) reasons: 1 a required tag missing, 5 a value incorrect for its tag.
    let missing = |t: u32| RejectReason::new(1, format!("tag {t} is required")).with_ref_tag(t);
    let wrong =
        |t: u32| RejectReason::new(5, format!("tag {t} has a value not taken")).with_ref_tag(t);
    let client_order_id = field(tag::CL_ORD_ID).ok_or_else(|| missing(tag::CL_ORD_ID))?;
    let symbol = field(tag::SYMBOL).ok_or_else(|| missing(tag::SYMBOL))?;
    let side = field(tag::SIDE).ok_or_else(|| missing(tag::SIDE))?;
    let side = messages::side_of(side).ok_or_else(|| wrong(tag::SIDE))?;
    let qty = field(tag::ORDER_QTY).ok_or_else(|| missing(tag::ORDER_QTY))?;
    let qty = qty.parse::<i64>().map_err(|_| wrong(tag::ORDER_QTY))?;
    let (order_type, limit_price) = match field(tag::ORD_TYPE) {
        Some("1") => (OrderType::Market, None),
        Some("2") => {
            let price = field(tag::PRICE).ok_or_else(|| missing(tag::PRICE))?;
            let price = messages::price(price).ok_or_else(|| wrong(tag::PRICE))?;
            (OrderType::Limit, Some(price))
        }
        Some(_) => return Err(wrong(tag::ORD_TYPE)),
        None => return Err(missing(tag::ORD_TYPE)),
    };
    let time_in_force = messages::time_in_force_of(field(tag::TIME_IN_FORCE))
        .ok_or_else(|| wrong(tag::TIME_IN_FORCE))?;
    Ok(PlaceOrder {
        client_order_id: client_order_id.to_owned(),
        symbol: symbol.to_owned(),
        side,
        order_type,
        qty,
        limit_price,
        time_in_force,
    })
}

#[async_trait]
impl Application for Venue {
    async fn on_create(&self, _: &SessionId) {}
    async fn on_logon(&self, _: &SessionId) {}
    async fn on_logout(&self, _: &SessionId) {}
    async fn to_admin(&self, _: &mut OutboundMessage, _: &SessionId) {}
    async fn from_admin(&self, _: &RawMessage<'_>, _: &SessionId) -> Result<(), RejectReason> {
        Ok(())
    }
    async fn to_app(&self, _: &mut OutboundMessage, _: &SessionId) {}

    async fn from_app(&self, message: &RawMessage<'_>, _: &SessionId) -> Result<(), RejectReason> {
        match message.msg_type().as_str() {
            "D" => self.new_order(message)?,
            "F" => self.cancel(message),
            "G" => self.replace(message),
            "H" => self.status(message),
            "AF" => self.mass_status(message),
            "x" => self.security_list(message),
            "V" => self.market_data(message),
            other => {
                // Reject (3) reason 11: a message type not supported.
                return Err(RejectReason::new(11, format!("{other} is not served here")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::connection::establish;

    /// A store opened while another connection writes the file waits its turn; without
    /// `busy_timeout` it failed at once ("the database is busy"), and the simulator with it.
    #[test]
    fn a_store_opened_while_another_connection_writes_waits_its_turn() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("fix.db").display().to_string();
        crate::db::connect(&url, 1).unwrap();
        let mut writer = establish(&url).unwrap();
        writer.batch_execute("BEGIN IMMEDIATE").unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            writer.batch_execute("COMMIT").unwrap();
        });
        let opened = open_store(&url, "FIX.4.4:EXCH->OK");
        release.join().unwrap();
        assert!(opened.is_ok(), "{:?}", opened.err());
    }
}
