use std::time::Duration;

use awc::ws;
use futures_util::SinkExt;
use serde_json::{json, Value};

use crate::feed_client::*;
use crate::helpers::*;

#[actix_web::test]
async fn a_missing_or_bad_auth_closes_with_4401() {
    let app = spawn_app().await;

    let mut bad_token = connect(&app.address).await;
    auth(&mut bad_token, "nope.nope", None).await;
    assert!(matches!(
        next(&mut bad_token, Duration::from_secs(5)).await,
        Next::Closed(Some(4401))
    ));

    let mut not_auth = connect(&app.address).await;
    not_auth
        .send(ws::Message::Text("hello".into()))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut not_auth, Duration::from_secs(5)).await,
        Next::Closed(Some(4401))
    ));

    let mut silent = connect(&app.address).await;
    let started = std::time::Instant::now();
    assert!(matches!(
        next(&mut silent, Duration::from_secs(8)).await,
        Next::Closed(Some(4401))
    ));
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "closed only after the auth window"
    );
}

#[actix_web::test]
async fn events_arrive_live_with_contiguous_seqs_from_one_and_only_for_their_account() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let bob = app.create_account("100000.00", json!({})).await;
    let mut alice_feed = connect(&app.address).await;
    auth(&mut alice_feed, &alice.token, None).await;
    let mut bob_feed = connect(&app.address).await;
    auth(&mut bob_feed, &bob.token, None).await;

    let order = app
        .submit(&alice.token, Some("k"), &limit_buy("INFY", 2, "100.00"))
        .await
        .json();
    let id = order["id"].as_str().unwrap();
    app.wait_for_status(&alice.token, id, "new").await;
    app.delete(&alice.token, &format!("/v1/orders/{id}")).await;

    let seen = events(&mut alice_feed, 4).await;
    assert_eq!(seqs(&seen), [1, 2, 3, 4]);
    let kinds: Vec<_> = seen
        .iter()
        .map(|(e, _)| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "order.created",
            "order.accepted",
            "order.cancel_requested",
            "order.canceled"
        ]
    );
    assert!(seen
        .iter()
        .all(|(e, _)| e["type"] == "event" && e["order"]["id"] == order["id"]));
    assert_eq!(
        seen[0].0["order"]["status"], "pending_new",
        "each event carries the order as it was then"
    );
    assert_eq!(seen[3].0["order"]["status"], "canceled");
    assert!(
        matches!(
            next(&mut bob_feed, Duration::from_millis(500)).await,
            Next::Nothing
        ),
        "bob sees nothing of alice's"
    );

    // A late joiner asking from the start is replayed the very same frames.
    let mut replay = connect(&app.address).await;
    auth(&mut replay, &alice.token, Some(0)).await;
    let replayed = events(&mut replay, 4).await;
    let raw =
        |events: &[(Value, String)]| events.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>();
    assert_eq!(raw(&replayed), raw(&seen));
    let mut tail = connect(&app.address).await;
    auth(&mut tail, &alice.token, Some(2)).await;
    assert_eq!(seqs(&events(&mut tail, 2).await), [3, 4]);
}

#[actix_web::test]
async fn a_consumer_that_stops_reading_is_closed_with_4008_and_loses_nothing() {
    let app = spawn_app_with(|args| args.poll_interval_ms = 5_000).await;
    let alice = app.create_account("100000000.00", json!({})).await;
    let mut lazy = connect(&app.address).await;
    auth(&mut lazy, &alice.token, None).await;

    // Market orders fill in many chunks: each makes a handful of events. The lazy client reads
    // none of them while they pile up.
    let mut ids = Vec::new();
    for i in 0..150 {
        let order = app
            .submit(
                &alice.token,
                Some(&format!("k{i}")),
                &market("buy", "INFY", 30),
            )
            .await
            .json();
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        app.wait_for_status(&alice.token, id, "filled").await;
    }
    let total = *app.event_seqs(&alice.id).last().unwrap();

    let mut received = Vec::new();
    let close = loop {
        match next(&mut lazy, Duration::from_secs(10)).await {
            Next::Event(event, _) => received.push(event["seq"].as_i64().unwrap()),
            Next::Closed(code) => break code,
            Next::Nothing => break None,
        }
    };
    assert_eq!(
        close,
        Some(4008),
        "closed as too slow after {} of {total} events",
        received.len()
    );
    assert_eq!(
        received,
        (1..=received.len() as i64).collect::<Vec<_>>(),
        "what came before the close is in order"
    );
    assert!((received.len() as i64) < total);

    let last = received.last().copied().unwrap_or(0);
    let mut resumed = connect(&app.address).await;
    auth(&mut resumed, &alice.token, Some(last)).await;
    let rest = events(&mut resumed, (total - last) as usize).await;
    assert_eq!(seqs(&rest), (last + 1..=total).collect::<Vec<_>>());
}

#[actix_web::test]
async fn a_resume_from_before_what_is_kept_gets_resync_then_goes_on() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let order = app.resting_order(&alice.token, "p1", 1).await;
    app.submit(&alice.token, Some("p2"), &limit_buy("INFY", 1, "100.00"))
        .await;
    // created and accepted for each order: seqs 1 to 4, all committed before the cut below.
    let mut watcher = connect(&app.address).await;
    auth(&mut watcher, &alice.token, None).await;
    assert_eq!(seqs(&events(&mut watcher, 4).await), vec![1, 2, 3, 4]);
    let pruned = orderkeeper::testing::db::outbox::prune(
        &mut app.pool.get().unwrap(),
        orderkeeper::testing::db::now_micros() + 1,
        false,
        i64::MAX,
    )
    .unwrap();
    assert_eq!(pruned, 4);

    // From the start, or from 2: events 1..=4 are gone, so the client must reload.
    for since in [0, 2] {
        let mut resumed = connect(&app.address).await;
        auth(&mut resumed, &alice.token, Some(since)).await;
        match next(&mut resumed, Duration::from_secs(5)).await {
            Next::Event(frame, _) => {
                assert_eq!(
                    frame,
                    json!({"type": "resync", "latest_seq": 4}),
                    "since {since}"
                )
            }
            _ => panic!("since {since}: no resync"),
        }
    }
    // From the latest seq nothing is missing: no resync, and the session goes on live.
    let mut current = connect(&app.address).await;
    auth(&mut current, &alice.token, Some(4)).await;
    let mut after_resync = connect(&app.address).await;
    auth(&mut after_resync, &alice.token, Some(1)).await;
    assert!(matches!(
        next(&mut after_resync, Duration::from_secs(5)).await,
        Next::Event(frame, _) if frame["type"] == "resync"
    ));
    app.cancel_and_wait(&alice.token, order["id"].as_str().unwrap())
        .await;
    for socket in [&mut current, &mut after_resync] {
        let live = events(socket, 2).await;
        assert_eq!(seqs(&live), vec![5, 6], "cancel requested, canceled");
    }
}

#[actix_web::test]
async fn pruning_keeps_what_the_broker_has_not_acknowledged() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    app.resting_order(&alice.token, "b1", 1).await;
    let mut conn = app.pool.get().unwrap();
    let later = orderkeeper::testing::db::now_micros() + 1;
    assert_eq!(
        orderkeeper::testing::db::outbox::prune(&mut conn, later, true, 100).unwrap(),
        0,
        "nothing was acknowledged by a broker"
    );
    // A chunk at a time: never more than asked for.
    for _ in 0..2 {
        assert_eq!(
            orderkeeper::testing::db::outbox::prune(&mut conn, later, false, 1).unwrap(),
            1
        );
    }
    assert_eq!(
        orderkeeper::testing::db::outbox::prune(&mut conn, later, false, 1).unwrap(),
        0
    );
}

#[actix_web::test]
async fn a_since_beyond_the_store_gets_resync_and_holds_no_other_session_back() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let order = app.resting_order(&alice.token, "ahead", 1).await;
    // created and accepted: seqs 1 and 2 are stored. A client remembers seq 1000 (a restored or
    // lagging database): it is told to reload, and goes on from 2.
    let mut ahead = connect(&app.address).await;
    auth(&mut ahead, &alice.token, Some(1000)).await;
    match next(&mut ahead, Duration::from_secs(5)).await {
        Next::Event(frame, _) => assert_eq!(frame, json!({"type": "resync", "latest_seq": 2})),
        _ => panic!("no resync for a since beyond the store"),
    }
    let mut current = connect(&app.address).await;
    auth(&mut current, &alice.token, Some(2)).await;
    app.cancel_and_wait(&alice.token, order["id"].as_str().unwrap())
        .await;
    for socket in [&mut ahead, &mut current] {
        let live = events(socket, 2).await;
        assert_eq!(seqs(&live), vec![3, 4], "cancel requested, canceled");
    }
}
