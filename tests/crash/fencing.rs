//! Fencing end to end, on PostgreSQL: an engine paused in the middle of a step loses its order to
//! another engine, and when it wakes its write is refused by the database, while the owner carries
//! the order on. A fill pushed to the paused engine afterwards is recorded once, as the venue's
//! fact, and a cancel sent through it is carried out by the owner.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::books::{self, Opening};
use crate::engines::open_orders_of;
use crate::processes::{self, Engine, SECRET};
use crate::venue::Venue;

/// Waits until `met` holds, for at most `most`; whether it did.
async fn until<F: AsyncFn() -> bool>(most: Duration, met: F) -> bool {
    let deadline = Instant::now() + most;
    while Instant::now() < deadline {
        if met().await {
            return true;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    met().await
}

async fn fenced_steps(engine: &Engine) -> f64 {
    let text = processes::metrics_text(&engine.url()).await;
    processes::metric(&text, "orderkeeper_fenced_steps_total")
}

/// The venue's orders, as its `GET /orders` would list them.
fn venue_orders(venue: &Venue) -> Vec<Value> {
    venue.state().orders.values().cloned().collect()
}

#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[actix_web::test]
async fn a_paused_engine_that_lost_its_order_has_its_write_refused() {
    crate::database::require_postgres();
    let dir = tempfile::tempdir().expect("temp dir");
    let venue = Venue::start();
    let (a_port, b_port) = (processes::free_port(), processes::free_port());
    // A short lease, so that the pause (and the answer the paused engine holds) stays well
    // within the engine's 3 s exchange timeout.
    let flags = ["--lease-ttl-ms", "800"];
    let paused = Engine::start_sharing(dir.path(), a_port, &venue.url, &flags);
    let mut owner = Engine::start_sharing(dir.path(), b_port, &venue.url, &flags);
    owner.leave_database();
    let (account, token) = paused.open_account("f", "10000.00").await;
    let openings = HashMap::from([(
        account,
        Opening {
            cash: 1_000_000,
            shares: BTreeMap::new(),
        },
    )]);

    // The placement reaches the venue and is held there, unanswered: the step is mid-flight.
    venue.state().hold_placements = true;
    let body = json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 2, "limit_price": "1500.00"});
    let (status, order) = paused.submit(&token, "fenced", &body).await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().expect("id").to_owned();
    let cid = order["client_order_id"].as_str().expect("cid").to_owned();
    assert!(
        until(Duration::from_secs(20), async || venue.state().placements
            >= 1)
        .await
    );

    // Paused past its lease: the other engine takes the order over and asks the venue itself.
    paused.signal("-STOP");
    let a_id = format!("engine@127.0.0.1:{a_port}");
    let url = paused.database_url().to_owned();
    let taken = until(Duration::from_secs(30), async || {
        open_orders_of(&url, &a_id).await == 0
    })
    .await;
    assert!(taken, "the paused engine kept its order");
    assert!(
        until(Duration::from_secs(20), async || venue.state().placements
            >= 2)
        .await
    );
    assert_eq!(fenced_steps(&owner).await, 0.0);

    // The venue answers both; the paused engine wakes with its answer in hand and writes.
    venue.state().hold_placements = false;
    paused.signal("-CONT");
    let refused = until(Duration::from_secs(20), async || {
        fenced_steps(&paused).await >= 1.0
    })
    .await;
    assert!(refused, "the woken engine's write was not refused");
    // Refused by the database's fence at the write, not merely noticed at a later step's start.
    let b_id = format!("engine@127.0.0.1:{b_port}");
    let log = std::fs::read_to_string(paused.log_path()).unwrap_or_default();
    assert!(
        log.contains(&format!("belongs to {b_id} (epoch")),
        "no write refused by the fence in the paused engine's log:\n{log}"
    );
    owner.wait_for_status(&token, &id, "new").await;
    let actions = owner.get(&token, &format!("/v1/orders/{id}/actions")).await;
    let accepted = actions
        .as_array()
        .map_or(0, |a| a.iter().filter(|x| x["kind"] == "accepted").count());
    assert_eq!(accepted, 1, "{actions}");

    // A fill pushed to the fenced engine: recorded there once, as the venue's fact.
    venue.fill(&cid, "F-1", 1, "1500.00");
    let push = json!({
        "event_id": "E-1", "type": "fill", "client_order_id": cid, "exchange_order_id": "V1",
        "fill": {"fill_id": "F-1", "qty": 1, "price": "1500.00", "ts": chrono::Utc::now().to_rfc3339()}
    })
    .to_string();
    let signature = orderkeeper::exchange::signature::sign(SECRET, push.as_bytes());
    let pushed = processes::client()
        .post(format!("{}/v1/exchange/events", paused.url()))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("X-Signature", signature))
        .send_body(push)
        .await
        .expect("the push is answered");
    assert_eq!(pushed.status(), 200);
    owner.wait_for_status(&token, &id, "partially_filled").await;

    // A cancel through the fenced engine is accepted there and carried out by the owner.
    let cancel = paused.delete(&token, &format!("/v1/orders/{id}")).await;
    assert!(matches!(cancel, Some((202, _))), "{cancel:?}");
    owner.wait_for_status(&token, &id, "canceled").await;
    let fills = owner.get(&token, &format!("/v1/orders/{id}/fills")).await;
    assert_eq!(fills.as_array().map(Vec::len), Some(1), "{fills}");
    let wrong = books::check(&url, &venue_orders(&venue), &openings);
    assert!(wrong.is_empty(), "{wrong:#?}");
}
