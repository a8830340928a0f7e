//! Day orders expire at the session's close, exactly once, even when the engine dies right after
//! it recorded the expiry, and when another engine has taken the order over. The engines' wall
//! clocks are moved (Debian's libfaketime) to seconds before a close, so the test waits seconds,
//! not a day.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::processes::{self, Engine, Simulator};

/// How long before the close the engine's clock starts: room to open an account, place two
/// orders, kill the engine and start it again.
const BEFORE_CLOSE_S: u64 = 12;

/// A clock offset that puts the process `before_close` seconds before the next UTC midnight.
fn seconds_before_midnight(before_close: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let midnight = (now / 86_400 + 1) * 86_400;
    format!("+{}s", midnight - now - before_close)
}

/// The order's expiry is recorded once (whichever engine carried it, and across crashes), and
/// it was cancelled on the venue.
async fn expired_once(engine: &Engine, token: &str, id: &str, venue: &[serde_json::Value]) {
    let (actions, kinds) = engine.actions(token, id).await;
    assert_eq!(
        kinds,
        [
            "created",
            "placement_sent",
            "accepted",
            "expiry_requested",
            "expired"
        ],
        "{id}: the expiry is recorded once"
    );
    let cid = &actions[1]["detail"]["client_order_id"];
    let at_venue = venue.iter().find(|o| &o["client_order_id"] == cid);
    assert_eq!(
        at_venue.map(|o| o["status"].clone()),
        Some(json!("canceled")),
        "{id} is cancelled on the venue before it is recorded expired: {venue:?}"
    );
}

#[actix_web::test]
async fn a_day_order_expires_at_the_close_once_across_a_crash_and_a_gtc_order_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let port = processes::free_port();
    let sim = Simulator::start(port, 7, false);
    let offset = seconds_before_midnight(BEFORE_CLOSE_S);
    let session = ["--session-close", "00:00", "--session-tz", "UTC"];
    let mut engine = Engine::start_sharing_skewed(dir.path(), port, &sim.url(), &session, &offset);
    let (_, token) = engine.open_account("alice", "100000.00").await;
    let far = |tif: &str| {
        json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 10,
               "limit_price": "10.00", "time_in_force": tif})
    };
    let (status, day) = engine.submit(&token, "day", &far("day")).await;
    assert_eq!(status, 201, "{day}");
    assert_eq!(day["time_in_force"], "day");
    let (_, gtc) = engine.submit(&token, "gtc", &far("gtc")).await;
    let (day, gtc) = (day["id"].as_str().unwrap(), gtc["id"].as_str().unwrap());
    engine.wait_for_status(&token, day, "new").await;
    engine.wait_for_status(&token, gtc, "new").await;

    // The next start dies the moment its expiry phase commits.
    engine.kill();
    engine.arm_next_start("expiry.after_commit=return");
    engine.restart().await;
    assert!(
        engine.exited_within(Duration::from_secs(30)).await,
        "the engine never reached the close"
    );
    engine.restart().await;
    engine.wait_for_status(&token, day, "expired").await;

    expired_once(&engine, &token, day, &sim.orders().await).await;
    let live = engine.get(&token, &format!("/v1/orders/{gtc}")).await;
    assert_eq!(live["status"], "new", "a gtc order outlives the close");
    let balances = engine.get(&token, "/v1/balances").await;
    assert_eq!(
        balances["cash"],
        json!({"available": "99900.00", "reserved": "100.00"}),
        "the day order's reservation is released, the gtc order's is kept"
    );
}

/// Two engines share the database; each places day orders of one account. One engine is killed
/// before the close, and the other takes its orders over: at the close every day order expires
/// exactly once, whichever engine carried it, and the killed engine's return changes nothing.
#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[actix_web::test]
async fn day_orders_expire_once_across_two_engines_and_a_takeover() {
    crate::database::require_postgres();
    let dir = tempfile::tempdir().unwrap();
    let ports = [processes::free_port(), processes::free_port()];
    let sim = Simulator::start(ports[0], 5, false);
    let offset = seconds_before_midnight(BEFORE_CLOSE_S + 3);
    let flags = [
        "--session-close",
        "00:00",
        "--session-tz",
        "UTC",
        "--lease-ttl-ms",
        "1500",
    ];
    let mut victim =
        Engine::start_sharing_skewed(dir.path(), ports[0], &sim.url(), &flags, &offset);
    let mut survivor =
        Engine::start_sharing_skewed(dir.path(), ports[1], &sim.url(), &flags, &offset);
    survivor.leave_database();
    let (_, token) = victim.open_account("bob", "100000.00").await;
    let far = |tif: &str| {
        json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 10,
               "limit_price": "10.00", "time_in_force": tif})
    };
    let mut day = Vec::new();
    for (i, engine) in [&victim, &victim, &survivor, &survivor]
        .into_iter()
        .enumerate()
    {
        let (status, order) = engine
            .submit(&token, &format!("day-{i}"), &far("day"))
            .await;
        assert_eq!(status, 201, "{order}");
        day.push(order["id"].as_str().unwrap().to_owned());
    }
    let (_, gtc) = victim.submit(&token, "gtc", &far("gtc")).await;
    let gtc = gtc["id"].as_str().unwrap().to_owned();
    for id in day.iter().chain([&gtc]) {
        survivor.wait_for_status(&token, id, "new").await;
    }

    // The victim dies with its orders before the close; the survivor takes them over.
    victim.kill();
    for id in &day {
        let deadline = std::time::Instant::now() + Duration::from_secs(BEFORE_CLOSE_S + 30);
        while survivor.get(&token, &format!("/v1/orders/{id}")).await["status"] != "expired" {
            assert!(
                std::time::Instant::now() < deadline,
                "{id} never expired: {}",
                survivor.get(&token, &format!("/v1/orders/{id}")).await
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
    victim.restart().await;
    // Room for the returning engine's sweep to run (it sweeps every second) and find nothing.
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;

    let venue = sim.orders().await;
    for id in &day {
        expired_once(&survivor, &token, id, &venue).await;
    }
    let live = victim.get(&token, &format!("/v1/orders/{gtc}")).await;
    assert_eq!(
        live["status"], "new",
        "a gtc order outlives the close and the takeover"
    );
    let balances = victim.get(&token, "/v1/balances").await;
    assert_eq!(
        balances["cash"],
        json!({"available": "99900.00", "reserved": "100.00"}),
        "every day order's reservation is released once, the gtc order's is kept"
    );
}
