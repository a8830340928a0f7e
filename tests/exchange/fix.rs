//! FIX against an independent engine (QuickFIX). The session's store over the engine's database
//! keeps what it is told across a reopen (as after a restart, or on the engine that takes the
//! session over), and a session resumed from it is taken by QuickFIX, which a session starting over
//! is not. Every message the engine builds passes QuickFIX's own FIX 4.4 dictionary, and its
//! ExecutionReports read back exactly. One engine of a fleet holds a session at a time, and one that
//! lost it writes nothing to it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ironfix_core::error::StoreError;
use ironfix_core::message::{MsgType, RawMessage};
use ironfix_core::types::CompId;
use ironfix_engine::application::{Application, RejectReason, SessionId};
use ironfix_engine::SessionConfig;
use ironfix_engine::{Initiator, OutboundMessage};
use ironfix_store::{MemoryStore, MessageStore, SyncMessageStore};
use orderkeeper::domain::{
    Cents, OrderRef, OrderToPlace, OrderType, Side, TimeInForce, VenueStatus,
};
use orderkeeper::exchange::fix::messages::{self, BadReport, ExecType, ExecutionReport};
use orderkeeper::exchange::fix::store::{Opened, SessionStore};
use orderkeeper::testing::db;

use crate::database;
use crate::quickfix::Executor;

/// Prices that stay put for the length of a test.
const STILL: f64 = 3600.0;
/// INFY's last price at the executor, where both orders fill.
const LAST: Cents = Cents(152_050);

const SESSION: &str = "FIX.4.4:ORDERKEEPER->VENUE";

fn open(url: &str, session: &str) -> SessionStore {
    SessionStore::open(db::establish(url).expect("connects"), session).expect("opens")
}

fn kept(store: &SessionStore, begin: u64, end: u64) -> Vec<(u64, String, Vec<u8>)> {
    store
        .get_range(begin, end)
        .expect("a range held")
        .into_iter()
        .map(|m| {
            (
                m.seq_num(),
                m.msg_type().as_str().to_owned(),
                m.payload().to_vec(),
            )
        })
        .collect()
}

#[test]
fn a_session_store_keeps_what_it_was_told_across_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = database::url_for(dir.path());
    db::connect(&url, 2).expect("migrated");
    let first = open(&url, SESSION);
    assert_eq!((first.next_sender_seq(), first.next_target_seq()), (1, 1));

    first
        .file_outbound(1, &MsgType::NewOrderSingle, b"one", 2)
        .expect("filed");
    first
        .store(2, &MsgType::OrderCancelRequest, b"two")
        .expect("stored");
    first
        .store(2, &MsgType::OrderCancelRequest, b"two, again")
        .expect("a number sent again replaces its message");
    first.set_next_sender_seq(3).expect("set");
    first.set_next_target_seq(7).expect("set");
    first.set_reset_owed(true).expect("set");
    first.set_app_watermark(6).expect("set");
    let both = vec![
        (1, "D".to_owned(), b"one".to_vec()),
        (2, "F".to_owned(), b"two, again".to_vec()),
    ];
    assert_eq!(kept(&first, 1, 0), both, "0 is to the last one");
    assert_eq!(kept(&first, 2, 2), both[1..]);
    assert!(matches!(
        first.get_range(3, 0),
        Err(StoreError::RangeNotAvailable { .. })
    ));
    for (begin, end) in [(0, 5), (5, 2)] {
        assert!(matches!(
            first.get_range(begin, end),
            Err(StoreError::InvalidRange { .. })
        ));
    }

    // A restart: a new store on a new connection finds all of it.
    let again = open(&url, SESSION);
    assert_eq!((again.next_sender_seq(), again.next_target_seq()), (3, 7));
    assert!(again.reset_owed());
    assert_eq!(again.app_watermark(), 6);
    assert_eq!(again.creation_time(), first.creation_time());
    assert_eq!(kept(&again, 1, 0), both);
    let other = open(&url, "FIX.4.4:ORDERKEEPER->ELSEWHERE");
    assert_eq!((other.next_sender_seq(), other.next_target_seq()), (1, 1));
    assert!(other.get_range(1, 0).is_err(), "sessions share nothing");

    // What one store changed, the other reads on a refresh.
    again.set_next_target_seq(12).expect("set");
    assert_eq!(first.next_target_seq(), 7);
    first.refresh().expect("refreshed");
    assert_eq!(first.next_target_seq(), 12);

    // A reset forgets the messages and the watermark, and keeps the owed reset.
    first.reset_to(5, 9).expect("reset");
    let after = open(&url, SESSION);
    assert_eq!((after.next_sender_seq(), after.next_target_seq()), (5, 9));
    assert_eq!(after.app_watermark(), 0);
    assert!(after.reset_owed());
    assert!(after.get_range(1, 0).is_err());
}

fn claim(url: &str, engine: &str) -> Result<SessionStore, String> {
    let conn = db::establish(url).expect("connects");
    match SessionStore::claim(conn, SESSION, engine).expect("claimed or not") {
        Opened::Held(store) => Ok(*store),
        Opened::HeldBy(holder) => Err(holder),
    }
}

#[test]
fn one_engine_holds_a_session_at_a_time_and_one_that_lost_it_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = database::url_for(dir.path());
    db::connect(&url, 2).expect("migrated");
    let mut conn = db::establish(&url).expect("connects");
    let minute = 60_000_000;
    let a = db::leases::join(&mut conn, "engine-a", minute).expect("a joins");
    db::leases::join(&mut conn, "engine-b", minute).expect("b joins");

    let held_by_a = claim(&url, "engine-a").expect("a free session is claimed");
    held_by_a.set_next_sender_seq(4).expect("the holder writes");
    assert_eq!(claim(&url, "engine-b").err().as_deref(), Some("engine-a"));

    // A's lease runs out (paused, say): B claims the session and carries it on from A's numbers.
    db::leases::expire(&mut conn, &a).expect("expired");
    let held_by_b = claim(&url, "engine-b").expect("a dead holder's session is claimed");
    assert_eq!(held_by_b.next_sender_seq(), 4);
    held_by_b
        .file_outbound(4, &MsgType::NewOrderSingle, b"b's", 5)
        .expect("filed");

    // A wakes: every write it tries is refused, and B's numbers and messages stand.
    assert!(held_by_a.set_next_sender_seq(9).is_err());
    assert!(held_by_a.set_next_target_seq(9).is_err());
    assert!(held_by_a.set_app_watermark(9).is_err());
    assert!(held_by_a
        .file_outbound(4, &MsgType::OrderCancelRequest, b"a's", 5)
        .is_err());
    assert!(held_by_a
        .store(4, &MsgType::OrderCancelRequest, b"a's")
        .is_err());
    assert!(held_by_a.reset_to(1, 1).is_err());
    assert_eq!(claim(&url, "engine-a").err().as_deref(), Some("engine-b"));
    let read = open(&url, SESSION);
    assert_eq!((read.next_sender_seq(), read.next_target_seq()), (5, 1));
    assert_eq!(kept(&read, 4, 4), [(4, "D".to_owned(), b"b's".to_vec())]);

    // B restarted under its own id takes its session again, under a new epoch.
    let b_again = claim(&url, "engine-b").expect("the holder's own restart claims it");
    assert!(held_by_b.set_next_sender_seq(6).is_err());
    b_again
        .set_next_sender_seq(6)
        .expect("the new holding writes");
}

/// What the session heard: logons, each ExecutionReport's ClOrdID, ExecType and CumQty, every
/// ExecutionReport as the engine reads it, and the type of each reject.
#[derive(Default)]
struct Heard {
    logons: Mutex<usize>,
    reports: Mutex<Vec<(String, String, String)>>,
    read: Mutex<Vec<Result<ExecutionReport, BadReport>>>,
    rejects: Mutex<Vec<String>>,
}

#[async_trait]
impl Application for Heard {
    async fn on_create(&self, _: &SessionId) {}
    async fn on_logon(&self, _: &SessionId) {
        *self.logons.lock().unwrap() += 1;
    }
    async fn on_logout(&self, _: &SessionId) {}
    async fn to_admin(&self, _: &mut OutboundMessage, _: &SessionId) {}
    async fn from_admin(&self, m: &RawMessage<'_>, _: &SessionId) -> Result<(), RejectReason> {
        if m.msg_type().as_str() == "3" {
            let why = m.get_field_str(58).unwrap_or_default().to_owned();
            self.rejects.lock().unwrap().push(format!("3: {why}"));
        }
        Ok(())
    }
    async fn to_app(&self, _: &mut OutboundMessage, _: &SessionId) {}
    async fn from_app(&self, m: &RawMessage<'_>, _: &SessionId) -> Result<(), RejectReason> {
        if m.msg_type().as_str() != "8" {
            let why = m.get_field_str(58).unwrap_or_default().to_owned();
            let rejected = format!("{}: {why}", m.msg_type().as_str());
            self.rejects.lock().unwrap().push(rejected);
            return Ok(());
        }
        let field = |tag| m.get_field_str(tag).unwrap_or_default().to_owned();
        self.reports
            .lock()
            .unwrap()
            .push((field(11), field(150), field(14)));
        let read = ExecutionReport::read(|tag| m.get_field_str(tag));
        self.read.lock().unwrap().push(read);
        Ok(())
    }
}

fn config() -> SessionConfig {
    let id = |s| CompId::new(s).expect("a CompID");
    SessionConfig::new(id("ORDERKEEPER"), id("VENUE"), "FIX.4.4")
        .with_heartbeat_interval(Duration::from_secs(5))
}

fn new_order(cl_ord_id: &str) -> OutboundMessage {
    let mut order = OutboundMessage::new(MsgType::NewOrderSingle);
    order
        .push_str(11, cl_ord_id)
        .push_char(21, '1')
        .push_str(55, "INFY")
        .push_char(54, '1')
        .push_str(60, "20261207-09:15:00.000")
        .push_uint(38, 10)
        .push_char(40, '2')
        .push_str(44, "1520.50")
        .push_char(59, '1');
    order
}

/// Logs on with `store`, sends one order, waits for its three reports, and logs out. Returns
/// whether the logon was taken.
async fn one_order(port: u16, store: Arc<dyn MessageStore>, cl_ord_id: &str) -> bool {
    let heard = Arc::new(Heard::default());
    let initiator = Initiator::new(config(), heard.clone()).with_store(store);
    let Ok(connection) = initiator.connect(format!("127.0.0.1:{port}")).await else {
        return false;
    };
    // QuickFIX answers a logon it refuses with a logout; give it the time to.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    if connection.is_closed() {
        return false;
    }
    connection.send(new_order(cl_ord_id)).await.expect("sent");
    let deadline = Instant::now() + Duration::from_secs(10);
    while heard.reports.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "no fill for {cl_ord_id}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let reports = heard.reports.lock().unwrap().clone();
    let expected = [("0", "0"), ("F", "5"), ("F", "10")];
    for ((id, exec_type, cum), (want_type, want_cum)) in reports.iter().zip(expected) {
        assert_eq!(
            (id.as_str(), exec_type.as_str(), cum.as_str()),
            (cl_ord_id, want_type, want_cum)
        );
    }
    connection.logout().await.expect("logged out");
    connection.wait_closed().await;
    let logons = *heard.logons.lock().unwrap();
    logons == 1
}

#[ignore = "needs python3 with quickfix (pip install quickfix): run with -- --include-ignored"]
#[actix_web::test]
async fn a_session_resumed_from_the_database_is_taken_by_quickfix_and_one_started_over_is_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = database::url_for(dir.path());
    db::connect(&url, 2).expect("migrated");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("bound").port()
    };
    let _venue = Executor::start(port, dir.path(), "VENUE", "ORDERKEEPER", STILL);

    assert!(one_order(port, open(&url, SESSION).into_message_store(), "ok-1").await);
    let stored = open(&url, SESSION);
    // Logon, the order and the logout went out; the venue's logon, three reports and logout came.
    assert_eq!((stored.next_sender_seq(), stored.next_target_seq()), (4, 6));
    assert_eq!(
        kept(&stored, 2, 2)[0].1,
        "D",
        "the order is kept for a resend"
    );

    // A restart: the session goes on from the database, and QuickFIX takes it.
    assert!(one_order(port, stored.into_message_store(), "ok-2").await);
    let stored = open(&url, SESSION);
    assert_eq!(
        (stored.next_sender_seq(), stored.next_target_seq()),
        (7, 11)
    );

    // The control: a session that starts over at 1 is refused (its MsgSeqNum is too low).
    let forgetful: Arc<dyn MessageStore> = Arc::new(MemoryStore::new());
    assert!(!one_order(port, forgetful, "ok-3").await);
}

#[ignore = "needs python3 with quickfix (pip install quickfix): run with -- --include-ignored"]
#[actix_web::test]
async fn every_message_the_engine_builds_passes_quickfixs_dictionary_and_its_reports_read_exactly()
{
    let dir = tempfile::tempdir().expect("temp dir");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("bound").port()
    };
    let _venue = Executor::start(port, dir.path(), "VENUE", "ORDERKEEPER", STILL);
    let heard = Arc::new(Heard::default());
    let initiator = Initiator::new(config(), heard.clone());
    let connection = initiator
        .connect(format!("127.0.0.1:{port}"))
        .await
        .expect("logged on");
    let now = orderkeeper::testing::db::now_micros();
    let market = OrderToPlace {
        client_order_id: "ok-m1".into(),
        symbol: "INFY".into(),
        side: Side::Buy,
        order_type: OrderType::Market,
        qty: 10,
        limit_price: Some(Cents(160_000)),
        time_in_force: TimeInForce::Day,
    };
    let limit = OrderToPlace {
        client_order_id: "ok-l1".into(),
        order_type: OrderType::Limit,
        side: Side::Sell,
        limit_price: Some(Cents(152_050)),
        time_in_force: TimeInForce::Ioc,
        ..market.clone()
    };
    let named = OrderRef {
        client_order_id: "ok-l1",
        symbol: "INFY",
        side: Side::Sell,
    };
    let bodies = [
        messages::new_order_single(&market, now),
        messages::new_order_single(&limit, now),
        messages::cancel_request(&named, now),
        messages::replace_request(&named, "ok-l1-v2", 12, Cents(151_000), now),
        messages::status_request(&named),
        messages::mass_status_request("mass-1"),
    ];
    for body in bodies {
        connection
            .send(body.outbound().expect("a type"))
            .await
            .expect("sent");
    }
    // The venue fills both orders in two executions each at its last price, refuses the cancel
    // and the replace of a filled order, and answers the status and the mass status (two orders).
    let deadline = Instant::now() + Duration::from_secs(10);
    while heard.read.lock().unwrap().len() < 9 || heard.rejects.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "reports missing: {:?}",
            heard.reports.lock().unwrap()
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    // Room for a late reject of the last messages sent.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let rejects = heard.rejects.lock().unwrap().clone();
    assert_eq!(
        rejects,
        ["9: too late to cancel", "9: too late to replace"],
        "no session or business reject"
    );
    let read: Vec<ExecutionReport> = heard
        .read
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.clone().expect("read exactly"))
        .collect();
    let of = |id: &str| -> Vec<&ExecutionReport> {
        read.iter().filter(|r| r.client_order_id == id).collect()
    };
    for id in ["ok-m1", "ok-l1"] {
        let (executions, statuses): (Vec<_>, Vec<_>) = of(id)
            .into_iter()
            .partition(|r| r.exec_type != ExecType::Status);
        // ok-l1 was asked about once, and each order was in the mass status.
        let asked = if id == "ok-l1" { 2 } else { 1 };
        assert_eq!(statuses.len(), asked, "{id}: {statuses:?}");
        let reports = executions;
        assert_eq!(reports.len(), 3, "{reports:?}");
        let pushes: Vec<_> = reports.iter().filter_map(|r| r.as_push("s")).collect();
        let fills: Vec<(i64, Cents)> = pushes
            .iter()
            .filter_map(|p| p.fill.as_ref().map(|f| (f.qty, f.price)))
            .collect();
        assert_eq!(fills, [(5, LAST), (5, LAST)], "{id}");
        let last = reports[2].as_copy();
        assert_eq!(
            (last.status, last.qty, last.filled_qty),
            (VenueStatus::Filled, 10, 10),
            "{id}"
        );
    }
    connection.logout().await.expect("logged out");
}
