//! Limits that keep one client from hurting the others: the order rate, the cap on stored keys,
//! the cap on feed sessions, and the replay window of the push channel.

use std::time::Duration;

use orderkeeper::testing::db::{self, idempotency};
use serde_json::json;

use crate::feed_client::*;
use crate::helpers::*;

#[actix_web::test]
async fn past_the_order_rate_an_account_gets_429_and_nothing_is_stored() {
    // 2 a second, in bursts of 4.
    let app = spawn_app_with(|args| args.order_rate_limit = 2).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let bob = app.create_account("100000.00", json!({})).await;
    let body = limit_buy("INFY", 1, "10.00");
    for i in 0..4 {
        let answer = app
            .submit(&alice.token, Some(&format!("r{i}")), &body)
            .await;
        assert_eq!(answer.status, 201, "{:?}", answer.json());
    }
    let refused = app.submit(&alice.token, Some("r4"), &body).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.error_code(), "rate_limited");
    let wait: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!((1..=2).contains(&wait), "Retry-After: {wait}");
    assert_eq!(app.count_orders(), 4);
    assert_eq!(
        app.count_idempotency_keys(),
        4,
        "nothing under the refused key"
    );
    // Another account has its own allowance.
    assert_eq!(app.submit(&bob.token, Some("r0"), &body).await.status, 201);

    actix_web::rt::time::sleep(Duration::from_secs(wait)).await;
    let later = app.submit(&alice.token, Some("r4"), &body).await;
    assert_eq!(later.status, 201, "{:?}", later.json());
    assert_eq!(
        later.header("idempotent-replayed"),
        None,
        "a new order, not a replay"
    );
}

#[actix_web::test]
async fn past_the_stored_key_cap_a_new_key_gets_429_and_nothing_moves() {
    let app = spawn_app_with(|args| {
        args.max_stored_keys = 2;
        args.idempotency_ttl = 1;
    })
    .await;
    let alice = app.create_account("100000.00", json!({})).await;
    let body = limit_buy("INFY", 1, "10.00");
    assert_eq!(
        app.submit(&alice.token, Some("k1"), &body).await.status,
        201
    );
    // A business refusal is stored under its key too, and counts.
    let broke = limit_buy("INFY", 1_000_000, "10.00");
    assert_eq!(
        app.submit(&alice.token, Some("k2"), &broke).await.status,
        422
    );
    let before = app.balances(&alice.token).await;

    let refused = app.submit(&alice.token, Some("k3"), &body).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.error_code(), "too_many_stored_keys");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(app.count_orders(), 1);
    assert_eq!(app.count_idempotency_keys(), 2);
    assert_eq!(app.balances(&alice.token).await, before, "nothing reserved");
    // A stored key still answers.
    let replay = app.submit(&alice.token, Some("k1"), &body).await;
    assert_eq!(
        replay.header("idempotent-replayed").as_deref(),
        Some("true")
    );

    // Expired keys are reaped and give their places back.
    actix_web::rt::time::sleep(Duration::from_millis(1100)).await;
    // A chunk at a time (here one key), each giving its places back.
    let mut conn = app.pool.get().unwrap();
    let now = db::now_micros();
    for expected in [1, 1, 0] {
        assert_eq!(
            idempotency::delete_expired(&mut conn, now, 1).unwrap(),
            expected
        );
    }
    drop(conn);
    assert_eq!(
        app.submit(&alice.token, Some("k3"), &body).await.status,
        201
    );
    assert_eq!(
        app.submit(&alice.token, Some("k4"), &body).await.status,
        201
    );
    assert_eq!(
        app.submit(&alice.token, Some("k5"), &body).await.status,
        429
    );
}

#[actix_web::test]
async fn past_the_session_cap_a_new_feed_is_closed_with_4429() {
    let app = spawn_app_with(|args| args.max_stream_sessions = 2).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let bob = app.create_account("100000.00", json!({})).await;
    let mut first = connect(&app.address).await;
    auth(&mut first, &alice.token, None).await;
    let mut second = connect(&app.address).await;
    auth(&mut second, &alice.token, None).await;
    // Both are live before a third one tries.
    app.submit(&alice.token, Some("s1"), &limit_buy("INFY", 1, "10.00"))
        .await;
    assert_eq!(seqs(&events(&mut first, 1).await), vec![1]);
    assert_eq!(seqs(&events(&mut second, 1).await), vec![1]);

    let mut third = connect(&app.address).await;
    auth(&mut third, &alice.token, None).await;
    assert!(matches!(
        next(&mut third, Duration::from_secs(5)).await,
        Next::Closed(Some(4429))
    ));
    // Another account has places of its own.
    let mut bobs = connect(&app.address).await;
    auth(&mut bobs, &bob.token, None).await;
    app.submit(&bob.token, Some("s1"), &limit_buy("INFY", 1, "10.00"))
        .await;
    assert_eq!(seqs(&events(&mut bobs, 1).await), vec![1]);

    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect(&app.address).await;
        auth(&mut again, &alice.token, Some(0)).await;
        match next(&mut again, Duration::from_secs(2)).await {
            Next::Event(event, _) => {
                assert_eq!(event["seq"], 1);
                break;
            }
            _ => assert!(
                std::time::Instant::now() < deadline,
                "the closed session's place never came back"
            ),
        }
    }
}

#[actix_web::test]
async fn a_pushed_fill_older_than_the_replay_window_is_refused() {
    let app = spawn_app_with(|args| args.push_replay_window = 60).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let order = app.resting_order(&alice.token, "w", 5).await;
    let cid = order["client_order_id"].as_str().unwrap();
    let id = order["id"].as_str().unwrap();

    let mut stale = fill_event("E-old", cid, "F-old", 1, "10.00");
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    stale["fill"]["ts"] = json!(an_hour_ago.to_rfc3339());
    assert_eq!(app.push(&stale).await, 422);
    let fresh = fill_event("E-new", cid, "F-new", 1, "10.00");
    assert_eq!(app.push(&fresh).await, 200);

    let fills = app
        .get(&alice.token, &format!("/v1/orders/{id}/fills"))
        .await
        .json();
    let ids: Vec<&str> = fills
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fill_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["F-new"], "only the fresh fill is recorded");
}
