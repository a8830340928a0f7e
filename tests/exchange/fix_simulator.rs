//! The engine's FIX venue against the simulator's FIX acceptor, each fault at its extreme: every
//! report dropped on its first sending (the gaps are filled by resends), every report sent twice
//! (the copies are PossDup resends the session drops), every request refused as a 503 is (a
//! BusinessMessageReject: an unknown outcome, nothing done), and every answer lost with the line
//! (the answer comes later, resent on the next session, as a push).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orderkeeper::config::FaultArgs;
use orderkeeper::domain::{
    Cents, OrderRef, OrderToPlace, OrderType, ReportKind, Side, TimeInForce, VenueReport,
};
use orderkeeper::exchange::fix::{self, FixEndpoint, FixVenue};
use orderkeeper::exchange::sim;
use orderkeeper::exchange::ExchangeClient;
use orderkeeper::testing::db::{self, Connector};
use orderkeeper::testing::Shutdown;
use serde_json::json;

use crate::database;
use crate::helpers::{eventually, send_json, spawn_fix_sim};

/// The engine's side of a FIX session to the simulator, with every report it takes in recorded
/// (and acknowledged as recorded).
struct Session {
    venue: FixVenue,
    heard: Arc<Mutex<Vec<VenueReport>>>,
    _dir: tempfile::TempDir,
    shutdown: Shutdown,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

fn log_on(fix_port: u16) -> Session {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = database::url_for(dir.path());
    db::connect(&url, 1).expect("migrated");
    let endpoint = FixEndpoint::parse(&sim::fix_url(fix_port))
        .expect("a fix URL")
        .expect("valid");
    let shutdown = Shutdown::default();
    let connector = Connector::new(&url).expect("a connector");
    let (venue, mut deliveries) = fix::session::start(
        endpoint,
        "engine-under-test",
        connector,
        Duration::from_secs(3),
        shutdown.clone(),
    )
    .expect("the session starts");
    let heard: Arc<Mutex<Vec<VenueReport>>> = Arc::default();
    let recording = Arc::clone(&heard);
    actix_web::rt::spawn(async move {
        while let Some(delivery) = deliveries.recv().await {
            recording.lock().unwrap().push(delivery.report);
            let _ = delivery.recorded.send(true);
        }
    });
    Session {
        venue,
        heard,
        _dir: dir,
        shutdown,
    }
}

fn crossing_buy(id: &str) -> OrderToPlace {
    OrderToPlace {
        client_order_id: id.into(),
        symbol: "INFY".into(),
        side: Side::Buy,
        order_type: OrderType::Limit,
        qty: 9,
        limit_price: Some(Cents(1_000_000)),
        time_in_force: TimeInForce::Gtc,
    }
}

fn named(id: &str) -> OrderRef<'_> {
    OrderRef {
        client_order_id: id,
        symbol: "INFY",
        side: Side::Buy,
    }
}

/// The fills heard for `id`: their ids, and the shares they add up to.
fn fills_of(session: &Session, id: &str) -> (Vec<String>, i64) {
    let heard = session.heard.lock().unwrap();
    let fills: Vec<_> = heard
        .iter()
        .filter(|r| r.client_order_id == id)
        .filter_map(|r| r.fill.as_ref())
        .collect();
    (
        fills.iter().map(|f| f.fill_id.clone()).collect(),
        fills.iter().map(|f| f.qty).sum(),
    )
}

async fn set_faults(sim: &str, faults: serde_json::Value) {
    let (status, _) = send_json("PUT", &format!("{sim}/admin/faults"), &faults).await;
    assert_eq!(status, 200);
}

/// Places a crossing order and waits until its fills, heard as pushes, add up to it; each fill
/// heard once.
async fn placed_and_filled_once(session: &Session, id: &str) {
    let mut placed = session.venue.place(&crossing_buy(id)).await;
    for _ in 0..20 {
        if placed.is_ok() {
            break;
        }
        // The prices the session subscribes to come with its first logon.
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        placed = session.venue.place(&crossing_buy(id)).await;
    }
    let ack = placed.expect("the placement answered");
    assert_eq!(ack.client_order_id, id);
    let filled = eventually(Duration::from_secs(20), || fills_of(session, id).1 >= 9).await;
    let (ids, shares) = fills_of(session, id);
    assert!(filled, "fills heard: {ids:?}");
    assert_eq!(shares, 9, "{ids:?}");
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a fill heard twice: {ids:?}");
}

#[actix_web::test]
async fn over_fix_every_report_dropped_on_its_first_sending_still_arrives_once() {
    let faults = FaultArgs {
        drop_rate: 1.0,
        ..FaultArgs::default()
    };
    let (_, fix_port) = spawn_fix_sim(faults, 31);
    let session = log_on(fix_port);
    placed_and_filled_once(&session, "fx-drop-1").await;
}

#[actix_web::test]
async fn over_fix_every_report_sent_twice_is_heard_once() {
    let faults = FaultArgs {
        duplicate_rate: 1.0,
        ..FaultArgs::default()
    };
    let (_, fix_port) = spawn_fix_sim(faults, 32);
    let session = log_on(fix_port);
    placed_and_filled_once(&session, "fx-dup-1").await;
}

#[actix_web::test]
async fn over_fix_a_request_the_venue_cannot_take_is_an_unknown_outcome_and_changes_nothing() {
    let (sim, fix_port) = spawn_fix_sim(FaultArgs::default(), 33);
    let session = log_on(fix_port);
    placed_and_filled_once(&session, "fx-ok-1").await;
    set_faults(&sim, json!({"error_rate": 1.0})).await;
    let refused = session.venue.place(&crossing_buy("fx-503-1")).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.is_unknown()),
        "{refused:?}"
    );
    set_faults(&sim, json!({"error_rate": 0.0})).await;
    let looked_up = session.venue.order(named("fx-503-1")).await;
    assert!(
        matches!(looked_up, Ok(None)),
        "the venue never took it: {looked_up:?}"
    );
}

#[actix_web::test]
async fn over_fix_an_answer_lost_with_the_line_comes_on_the_next_session() {
    let (sim, fix_port) = spawn_fix_sim(FaultArgs::default(), 34);
    let session = log_on(fix_port);
    placed_and_filled_once(&session, "fx-ok-2").await;
    set_faults(&sim, json!({"lost_response_rate": 1.0})).await;
    let lost = session.venue.place(&crossing_buy("fx-lost-1")).await;
    assert!(lost.as_ref().is_err_and(|e| e.is_unknown()), "{lost:?}");
    set_faults(&sim, json!({"lost_response_rate": 0.0})).await;
    // The venue took it: its acknowledgement and fills come once the session is back.
    let heard = eventually(Duration::from_secs(20), || {
        let heard = session.heard.lock().unwrap();
        heard
            .iter()
            .any(|r| r.client_order_id == "fx-lost-1" && r.kind == ReportKind::Accepted)
    })
    .await;
    assert!(heard, "the lost acknowledgement never came");
    let filled = eventually(Duration::from_secs(20), || {
        fills_of(&session, "fx-lost-1").1 >= 9
    })
    .await;
    assert!(filled, "{:?}", fills_of(&session, "fx-lost-1"));
    let copy = session.venue.order(named("fx-lost-1")).await;
    assert!(
        matches!(&copy, Ok(Some(c)) if c.filled_qty == 9),
        "{copy:?}"
    );
}

#[actix_web::test]
async fn over_fix_reports_come_whole_through_lines_cut_in_the_middle_of_resends() {
    // Every report goes out only as a resend, and half the resent reports drop the line.
    let faults = FaultArgs {
        drop_rate: 1.0,
        lost_response_rate: 0.5,
        ..FaultArgs::default()
    };
    let (_, fix_port) = spawn_fix_sim(faults, 35);
    let session = log_on(fix_port);
    let id = "fx-cut-1";
    // Answered or not, the venue holds one order under the id.
    for _ in 0..100 {
        match session.venue.place(&crossing_buy(id)).await {
            Ok(_) => break,
            Err(e) => assert!(e.is_unknown(), "{e}"),
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let filled = eventually(Duration::from_secs(60), || fills_of(&session, id).1 >= 9).await;
    let (ids, shares) = fills_of(&session, id);
    assert!(filled && shares == 9, "{ids:?}");
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a fill heard twice: {ids:?}");
}
