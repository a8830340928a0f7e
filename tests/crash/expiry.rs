//! Day orders expire at the session's close, exactly once, even when the engine dies right after
//! it recorded the expiry. The engine's wall clock is moved (Debian's libfaketime) to seconds
//! before a close, so the test waits seconds, not a day.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::processes::{self, Engine, Simulator};

/// How long before the close the engine's clock starts: room to open an account, place two
/// orders, kill the engine and start it again.
const BEFORE_CLOSE_S: u64 = 12;

#[actix_web::test]
async fn a_day_order_expires_at_the_close_once_across_a_crash_and_a_gtc_order_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let port = processes::free_port();
    let sim = Simulator::start(port, 7, false);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let midnight = (now / 86_400 + 1) * 86_400;
    let offset = format!("+{}s", midnight - now - BEFORE_CLOSE_S);
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

    let actions = engine
        .get(&token, &format!("/v1/orders/{day}/actions"))
        .await;
    let kinds: Vec<&str> = actions
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "created",
            "placement_sent",
            "accepted",
            "expiry_requested",
            "expired"
        ],
        "the expiry is recorded once, before and after the crash"
    );
    let venue = sim.orders().await;
    let cid = &actions[1]["detail"]["client_order_id"];
    let at_venue = venue.iter().find(|o| &o["client_order_id"] == cid);
    assert_eq!(
        at_venue.map(|o| o["status"].clone()),
        Some(json!("canceled")),
        "cancelled on the venue before it was recorded expired: {venue:?}"
    );
    let live = engine.get(&token, &format!("/v1/orders/{gtc}")).await;
    assert_eq!(live["status"], "new", "a gtc order outlives the close");
    let balances = engine.get(&token, "/v1/balances").await;
    assert_eq!(
        balances["cash"],
        json!({"available": "99900.00", "reserved": "100.00"}),
        "the day order's reservation is released, the gtc order's is kept"
    );
}
