use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn orders_are_listed_newest_first_with_status_filter_and_limit() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let order = app
            .submit(
                &alice.token,
                Some(&format!("k{i}")),
                &limit_buy("INFY", 1, "10.00"),
            )
            .await
            .json();
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    app.delete(&alice.token, &format!("/v1/orders/{}", ids[0]))
        .await;
    app.wait_for_status(&alice.token, &ids[0], "canceled").await;

    let listed = |orders: Vec<serde_json::Value>| -> Vec<String> {
        orders
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        listed(app.orders(&alice.token, "all").await),
        vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]
    );
    assert_eq!(
        listed(app.orders(&alice.token, "open").await),
        vec![ids[2].clone(), ids[1].clone()]
    );
    assert_eq!(
        listed(app.orders(&alice.token, "closed").await),
        vec![ids[0].clone()]
    );
    let default = app.get(&alice.token, "/v1/orders").await.json();
    assert_eq!(
        default.as_array().map(Vec::len),
        Some(2),
        "the default is open orders"
    );
    let limited = app
        .get(&alice.token, "/v1/orders?status=all&limit=1")
        .await
        .json();
    assert_eq!(limited.as_array().map(Vec::len), Some(1));
    let capped = app
        .get(&alice.token, "/v1/orders?status=all&limit=5000")
        .await;
    assert_eq!(
        capped.status,
        StatusCode::OK,
        "a limit over 1000 is capped, not refused"
    );
}

#[actix_web::test]
async fn cancelling_releases_the_reservation_and_is_idempotent() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({"TCS": 10})).await;
    // Far from the market: these rest on the exchange until cancelled.
    let buy = app
        .submit(&alice.token, Some("b"), &limit_buy("INFY", 10, "152.05"))
        .await
        .json();
    let sell = app
        .submit(&alice.token, Some("s"), &limit_sell("TCS", 4, "99999.00"))
        .await
        .json();
    let reserved = app.balances(&alice.token).await;
    assert_eq!(reserved["cash"]["reserved"], "1520.50");
    assert_eq!(
        reserved["positions"]["TCS"],
        json!({"available": 6, "reserved": 4})
    );

    for order in [&buy, &sell] {
        let id = order["id"].as_str().unwrap();
        let path = format!("/v1/orders/{id}");
        app.wait_for_status(&alice.token, id, "new").await;
        let first = app.delete(&alice.token, &path).await;
        assert_eq!(first.status, StatusCode::ACCEPTED);
        assert_eq!(first.json()["status"], "pending_cancel");
        app.wait_for_status(&alice.token, id, "canceled").await;
        let again = app.delete(&alice.token, &path).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.json()["status"], "canceled");

        let actions = app
            .get(&alice.token, &format!("{path}/actions"))
            .await
            .json();
        let kinds: Vec<_> = actions
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].clone())
            .collect();
        assert_eq!(
            kinds,
            vec![
                json!("created"),
                json!("placement_sent"),
                json!("accepted"),
                json!("cancel_requested"),
                json!("canceled")
            ]
        );
        let seqs: Vec<_> = actions
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        assert_eq!(
            app.get(&alice.token, &format!("{path}/fills")).await.json(),
            json!([])
        );
    }
    let released = app.balances(&alice.token).await;
    assert_eq!(
        released["cash"],
        json!({"available": "100000.00", "reserved": "0.00"})
    );
    assert_eq!(
        released["positions"]["TCS"],
        json!({"available": 10, "reserved": 0})
    );
    // created, accepted, cancel_requested, canceled for each order; nothing for the repeated cancels.
    assert_eq!(app.event_seqs(&alice.id), (1..=8).collect::<Vec<_>>());
}

#[actix_web::test]
async fn a_cancel_waits_for_the_exchanges_answer_before_refunding() {
    // Every order call to this exchange answers 503, so the order is never acknowledged.
    let exchange = spawn_slow_exchange(std::time::Duration::ZERO);
    let app = spawn_app_with(|args| args.exchange = exchange).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let order = app
        .submit(&alice.token, Some("k"), &limit_buy("INFY", 10, "10.00"))
        .await
        .json();
    let id = order["id"].as_str().unwrap();
    // Cancelled before its placement was recorded as sent, it would be released at once, rightly:
    // the test is about a cancel after the placement went out.
    app.wait_for_action(&alice.token, id, "placement_sent")
        .await;

    let answer = app.delete(&alice.token, &format!("/v1/orders/{id}")).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);

    // It was sent (and the answer was never known), so the engine must hear from the exchange
    // before it refunds: the order stays pending_cancel while the exchange keeps answering 503.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(600)).await;
    let held = app
        .get(&alice.token, &format!("/v1/orders/{id}"))
        .await
        .json();
    assert_eq!(held["status"], "pending_cancel");
    assert_eq!(
        app.balances(&alice.token).await["cash"]["reserved"],
        "100.00"
    );
}

#[actix_web::test]
async fn a_filled_order_cannot_be_canceled() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    // A limit far above the market fills at once, in chunks.
    let order = app
        .submit(&alice.token, Some("k"), &limit_buy("INFY", 3, "9999.00"))
        .await
        .json();
    let id = order["id"].as_str().unwrap();
    app.wait_for_status(&alice.token, id, "filled").await;

    let answer = app.delete(&alice.token, &format!("/v1/orders/{id}")).await;

    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.error_code(), "order_not_cancelable");
    assert_eq!(
        app.get(&alice.token, &format!("/v1/orders/{id}"))
            .await
            .json()["status"],
        "filled"
    );
}

#[actix_web::test]
async fn cancel_all_cancels_every_open_order_of_the_account_or_of_one_symbol() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({"TCS": 10})).await;
    let bob = app.create_account("100000.00", json!({})).await;
    // Far from the market: these rest on the exchange until cancelled.
    let mut infy = Vec::new();
    for key in ["i1", "i2"] {
        let order = app
            .submit(&alice.token, Some(key), &limit_buy("INFY", 2, "10.00"))
            .await
            .json();
        infy.push(order["id"].as_str().unwrap().to_owned());
    }
    let tcs = app
        .submit(&alice.token, Some("t"), &limit_sell("TCS", 4, "99999.00"))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bobs = app
        .submit(&bob.token, Some("i1"), &limit_buy("INFY", 1, "10.00"))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for id in infy.iter().chain([&tcs]) {
        app.wait_for_status(&alice.token, id, "new").await;
    }
    app.wait_for_status(&bob.token, &bobs, "new").await;

    let bad = app
        .delete(&alice.token, "/v1/orders?symbol=not%20one")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "invalid_request");
    // The cash ledger's name is well formed, and no order is of it.
    let cash = app.delete(&alice.token, "/v1/orders?symbol=CASH").await;
    assert_eq!(
        (cash.status, cash.json()),
        (StatusCode::ACCEPTED, json!([]))
    );

    let ids = |answer: &Answer| -> Vec<String> {
        answer
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = app.delete(&alice.token, "/v1/orders?symbol=INFY").await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(
        ids(&first),
        vec![infy[1].clone(), infy[0].clone()],
        "newest first"
    );
    for order in first.json().as_array().unwrap() {
        assert_eq!(order["status"], "pending_cancel");
    }
    for id in &infy {
        app.wait_for_status(&alice.token, id, "canceled").await;
    }
    // Idempotent: nothing open is left of that symbol, and nothing more is recorded.
    let seqs = app.event_seqs(&alice.id);
    let again = app.delete(&alice.token, "/v1/orders?symbol=INFY").await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.json(), json!([]));
    assert_eq!(app.event_seqs(&alice.id), seqs);
    let still = app
        .get(&alice.token, &format!("/v1/orders/{tcs}"))
        .await
        .json();
    assert_eq!(
        still["status"], "new",
        "another symbol's order is left alone"
    );

    let rest = app.delete(&alice.token, "/v1/orders").await;
    assert_eq!(ids(&rest), vec![tcs.clone()]);
    app.wait_for_status(&alice.token, &tcs, "canceled").await;

    let bobs_order = app
        .get(&bob.token, &format!("/v1/orders/{bobs}"))
        .await
        .json();
    assert_eq!(
        bobs_order["status"], "new",
        "another account's order is left alone"
    );
    let balances = app.balances(&alice.token).await;
    assert_eq!(
        balances["cash"],
        json!({"available": "100000.00", "reserved": "0.00"})
    );
    assert_eq!(
        balances["positions"]["TCS"],
        json!({"available": 10, "reserved": 0})
    );
    // created, accepted, cancel_requested and canceled of each of the three, without a gap.
    assert_eq!(app.event_seqs(&alice.id), (1..=12).collect::<Vec<_>>());
}

/// Cancel-all over an account holding an order in each state, staged at a scripted venue: every
/// open one (resting, partly filled, with a placement or a replace in flight) goes to
/// `pending_cancel` and ends cancelled, with what it filled kept; the ended ones are left alone.
#[actix_web::test]
async fn cancel_all_moves_every_open_order_whatever_its_state_and_leaves_the_ended_alone() {
    let venue = crate::venue::Venue::start();
    let app = spawn_app_with(|args| args.exchange = venue.url.clone()).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let resting = |key: &'static str, qty| {
        let app = &app;
        let token = alice.token.clone();
        async move {
            let order = app
                .submit(&token, Some(key), &limit_buy("INFY", qty, "10.00"))
                .await
                .json();
            let id = order["id"].as_str().unwrap().to_owned();
            app.wait_for_status(&token, &id, "new").await;
            (id, order["client_order_id"].as_str().unwrap().to_owned())
        }
    };
    let (new, _) = resting("new", 2).await;
    let (partly, partly_cid) = resting("partly", 2).await;
    venue.fill(&partly_cid, "F1", 1, "10.00");
    app.wait_for_status(&alice.token, &partly, "partially_filled")
        .await;
    let (filled, filled_cid) = resting("filled", 2).await;
    venue.fill(&filled_cid, "F2", 2, "10.00");
    app.wait_for_status(&alice.token, &filled, "filled").await;
    let (canceled, _) = resting("canceled", 2).await;
    app.delete(&alice.token, &format!("/v1/orders/{canceled}"))
        .await;
    app.wait_for_status(&alice.token, &canceled, "canceled")
        .await;
    let (replacing, _) = resting("replacing", 2).await;
    venue.state().hold_replaces = true;
    let asked = app
        .patch(&alice.token, &replacing, Some("r"), &json!({"qty": 3}))
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.json());
    venue.state().hold_placements = true;
    let in_flight = app
        .submit(
            &alice.token,
            Some("in-flight"),
            &limit_buy("INFY", 2, "10.00"),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while venue.state().replaces == 0 || venue.state().placements < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "the calls never reached the venue"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let all = app.delete(&alice.token, "/v1/orders").await;
    assert_eq!(all.status, StatusCode::ACCEPTED, "{}", all.json());
    let moved: std::collections::BTreeSet<String> = all
        .json()
        .as_array()
        .unwrap()
        .iter()
        .inspect(|o| assert_eq!(o["status"], "pending_cancel", "{o}"))
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    let open = [&new, &partly, &replacing, &in_flight];
    assert_eq!(moved, open.iter().map(|id| (*id).clone()).collect());
    {
        let mut s = venue.state();
        s.hold_replaces = false;
        s.hold_placements = false;
    }
    for id in open {
        app.wait_for_status(&alice.token, id, "canceled").await;
    }
    for (id, status) in [(&filled, "filled"), (&canceled, "canceled")] {
        let order = app
            .get(&alice.token, &format!("/v1/orders/{id}"))
            .await
            .json();
        assert_eq!(order["status"], status, "an ended order is left alone");
    }
    let partly = app
        .get(&alice.token, &format!("/v1/orders/{partly}"))
        .await
        .json();
    assert_eq!(partly["filled_qty"], 1, "what it filled is kept");
    assert_eq!(
        app.balances(&alice.token).await["cash"],
        json!({"available": "99970.00", "reserved": "0.00"}),
        "three shares paid for, nothing held"
    );
    let again = app.delete(&alice.token, "/v1/orders").await;
    assert_eq!(
        (again.status, again.json()),
        (StatusCode::ACCEPTED, json!([]))
    );
    let audit = app.get(ADMIN_TOKEN, "/v1/admin/audit").await.json();
    assert_eq!(audit["ok"], true, "{audit}");
}
