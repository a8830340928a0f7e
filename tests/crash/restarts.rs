//! Restarts: the live feed resumed with `since` across a SIGKILL (exactly what happened meanwhile,
//! as the same frames a full replay gives), and a clean stop on SIGTERM.

use std::time::Duration;

use serde_json::json;

use crate::feed_client::*;
use crate::processes::{self, Engine, Simulator};

#[actix_web::test]
async fn a_client_resumes_with_since_after_the_engine_was_killed() {
    let dir = tempfile::tempdir().unwrap();
    let engine_port = processes::free_port();
    let sim = Simulator::start(engine_port, 7, false);
    let mut engine = Engine::start(dir.path(), engine_port, &sim.url());
    let account = engine
        .admin_post(
            "/v1/admin/accounts",
            &json!({"name": "alice", "cash": "100000.00"}),
        )
        .await;
    let token = account["token"].as_str().unwrap().to_owned();
    let far = |i: usize| json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 1 + i, "limit_price": "10.00"});

    let mut feed = connect(&engine.url()).await;
    auth(&mut feed, &token, None).await;
    let mut first = Vec::new();
    for i in 0..3 {
        let (_, order) = engine.submit(&token, &format!("k{i}"), &far(i)).await;
        first.push(order["id"].as_str().unwrap().to_owned());
    }
    // created and accepted for each.
    let before = events(&mut feed, 6).await;
    assert_eq!(seqs(&before), (1..=6).collect::<Vec<_>>());
    let last = 6;

    engine.kill();
    assert!(
        matches!(
            next(&mut feed, Duration::from_secs(5)).await,
            Next::Closed(_)
        ),
        "the feed ends with the process"
    );
    engine.restart().await;

    // While the client is away: two new orders and a cancel.
    for i in 3..5 {
        engine.submit(&token, &format!("k{i}"), &far(i)).await;
    }
    engine
        .delete(&token, &format!("/v1/orders/{}", first[0]))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let open = engine.get(&token, "/v1/orders?status=open").await;
        let all_new = open
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] == "new");
        if all_new && open.as_array().unwrap().len() == 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "orders never settled: {open}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }

    // created + accepted twice, cancel_requested + canceled: 6 events while away.
    let mut everything = connect(&engine.url()).await;
    auth(&mut everything, &token, Some(0)).await;
    let all = events(&mut everything, 12).await;
    assert!(
        matches!(
            next(&mut everything, Duration::from_millis(500)).await,
            Next::Nothing
        ),
        "nothing beyond 12"
    );
    let mut resumed = connect(&engine.url()).await;
    auth(&mut resumed, &token, Some(last)).await;
    let missed = events(&mut resumed, 6).await;

    assert_eq!(seqs(&missed), (7..=12).collect::<Vec<_>>());
    let raw = |events: &[(serde_json::Value, String)]| {
        events.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        raw(&missed),
        raw(&all[6..]),
        "a resumed event is the same frame as a replayed one"
    );
    assert_eq!(raw(&before), raw(&all[..6]), "and as the live one");

    let text = processes::metrics_text(&engine.url()).await;
    assert!(
        processes::metric(&text, "orderkeeper_rehydration_seconds") > 0.0,
        "{text}"
    );
    assert_eq!(
        processes::metric(&text, "orderkeeper_ws_sessions"),
        2.0,
        "two feeds are open: {text}"
    );
}

#[actix_web::test]
async fn sigterm_stops_the_engine_cleanly_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine_port = processes::free_port();
    let sim = Simulator::start(engine_port, 8, false);
    let mut engine = Engine::start(dir.path(), engine_port, &sim.url());
    let account = engine
        .admin_post(
            "/v1/admin/accounts",
            &json!({"name": "alice", "cash": "1000.00"}),
        )
        .await;
    let token = account["token"].as_str().unwrap().to_owned();
    let body =
        json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 2, "limit_price": "10.00"});
    let (status, order) = engine.submit(&token, "k", &body).await;
    assert_eq!(status, 201);

    assert!(engine.terminate().await, "exit status 0 after SIGTERM");
    engine.restart().await;

    let kept = engine
        .get(
            &token,
            &format!("/v1/orders/{}", order["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(kept["id"], order["id"]);
    let (_, replay) = engine.submit(&token, "k", &body).await;
    assert_eq!(replay, order, "the stored answer survives the restart");
}
