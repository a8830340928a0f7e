//! Modifying a resting order on the embedded simulator: the new terms are held for before anything
//! is sent, the venue's answer sets the terms, and the hold follows them exactly.

use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::*;
use crate::venue::Venue;

/// A buy of `qty` INFY at `limit`, acknowledged: (its id, its client order id).
async fn resting_buy(app: &TestApp, token: &str, qty: i64, limit: &str) -> (String, String) {
    let order = app
        .submit(token, Some("buy"), &limit_buy("INFY", qty, limit))
        .await
        .json();
    let id = order["id"].as_str().unwrap().to_owned();
    app.wait_for_status(token, &id, "new").await;
    (id, order["client_order_id"].as_str().unwrap().to_owned())
}

#[actix_web::test]
async fn a_raise_is_held_before_it_is_sent_and_the_new_terms_are_the_venues() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    // Far below the market: it rests.
    let (id, _) = resting_buy(&app, &alice.token, 10, "10.00").await;

    let asked = app
        .patch(
            &alice.token,
            &id,
            Some("more"),
            &json!({"qty": 20, "limit_price": "12.00"}),
        )
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.json());
    assert_eq!(asked.json()["status"], "pending_replace");
    let replaced = app
        .wait_for_order(&alice.token, &id, |o| {
            o["version"] == 2 && o["status"] == "new"
        })
        .await;
    assert_eq!(
        (replaced["qty"].clone(), replaced["limit_price"].clone()),
        (json!(20), json!("12.00"))
    );
    assert!(replaced["client_order_id"]
        .as_str()
        .unwrap()
        .ends_with("-v2"));
    let actions = app
        .get(&alice.token, &format!("/v1/orders/{id}/actions"))
        .await
        .json();
    assert_eq!(
        action_kinds(&actions),
        [
            "created",
            "placement_sent",
            "accepted",
            "replace_requested",
            "replaced"
        ]
    );
    assert_eq!(
        app.balances(&alice.token).await["cash"],
        json!({"available": "99760.00", "reserved": "240.00"})
    );
    // The feed tells it as the log does, without a gap.
    assert_eq!(
        app.event_kinds(&alice.id),
        [
            "order.created",
            "order.accepted",
            "order.replace_requested",
            "order.replaced"
        ]
    );
    assert_eq!(app.event_seqs(&alice.id), [1, 2, 3, 4]);
    // The same request under its key is answered as it was; another request under it is not.
    let again = app
        .patch(
            &alice.token,
            &id,
            Some("more"),
            &json!({"limit_price": "12.00", "qty": 20}),
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.header("Idempotent-Replayed").as_deref(), Some("true"));
    let other = app
        .patch(&alice.token, &id, Some("more"), &json!({"qty": 21}))
        .await;
    assert_eq!(other.error_code(), "idempotency_key_reused");

    // A cut is released once the venue took it.
    let cut = app
        .patch(
            &alice.token,
            &id,
            Some("less"),
            &json!({"qty": 5, "limit_price": "9.00"}),
        )
        .await;
    assert_eq!(cut.status, StatusCode::ACCEPTED, "{}", cut.json());
    app.wait_for_order(&alice.token, &id, |o| {
        o["version"] == 3 && o["status"] == "new"
    })
    .await;
    assert_eq!(
        app.balances(&alice.token).await["cash"],
        json!({"available": "99955.00", "reserved": "45.00"})
    );
    app.delete(&alice.token, &format!("/v1/orders/{id}")).await;
    app.wait_for_status(&alice.token, &id, "canceled").await;
    assert_eq!(
        app.balances(&alice.token).await["cash"],
        json!({"available": "100000.00", "reserved": "0.00"})
    );
}

#[actix_web::test]
async fn a_raise_the_account_cannot_cover_changes_nothing_and_is_kept_under_its_key() {
    let app = spawn_app().await;
    let alice = app.create_account("150.00", json!({})).await;
    // Far below the market: it rests.
    let (id, _) = resting_buy(&app, &alice.token, 10, "10.00").await;
    let body = json!({"qty": 20});
    let refused = app.patch(&alice.token, &id, Some("k"), &body).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.error_code(), "insufficient_funds");
    let again = app.patch(&alice.token, &id, Some("k"), &body).await;
    assert_eq!(
        (again.status, again.json()),
        (refused.status, refused.json())
    );
    let order = app
        .get(&alice.token, &format!("/v1/orders/{id}"))
        .await
        .json();
    assert_eq!(
        (
            order["status"].clone(),
            order["qty"].clone(),
            order["version"].clone()
        ),
        (json!("new"), json!(10), json!(1))
    );
    assert_eq!(
        app.balances(&alice.token).await["cash"],
        json!({"available": "50.00", "reserved": "100.00"})
    );
}

#[actix_web::test]
async fn only_a_resting_limit_order_can_be_modified_and_bad_bodies_are_refused() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({"INFY": 10})).await;
    // Far below the market: it rests.
    let (id, _) = resting_buy(&app, &alice.token, 10, "10.00").await;
    for (body, code) in [
        (json!({}), "invalid_request"),
        (json!({"qty": 0}), "invalid_request"),
        (json!({"qty": null}), "invalid_request"),
        (json!({"qty": 1.5}), "invalid_request"),
        (json!({"limit_price": "1.001"}), "invalid_request"),
        (json!({"qty": 5, "side": "sell"}), "invalid_request"),
    ] {
        let answer = app.patch(&alice.token, &id, Some("bad"), &body).await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (StatusCode::BAD_REQUEST, code.to_owned()),
            "{body}"
        );
    }
    let keyless = app.patch(&alice.token, &id, None, &json!({"qty": 5})).await;
    assert_eq!(keyless.error_code(), "idempotency_key_missing");
    let nobody = app
        .patch(
            &alice.token,
            "0190f5a2-0000-7000-8000-000000000000",
            Some("n"),
            &json!({"qty": 5}),
        )
        .await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);

    // A market order has no terms to change; an order being cancelled is busy.
    let market = app
        .submit(&alice.token, Some("m"), &market("sell", "INFY", 1))
        .await
        .json();
    let market_id = market["id"].as_str().unwrap();
    app.wait_for_order(&alice.token, market_id, |o| o["status"] == "filled")
        .await;
    let not = app
        .patch(&alice.token, market_id, Some("mk"), &json!({"qty": 2}))
        .await;
    assert_eq!(not.error_code(), "order_not_modifiable");
    app.delete(&alice.token, &format!("/v1/orders/{id}")).await;
    let during = app
        .patch(&alice.token, &id, Some("late"), &json!({"qty": 12}))
        .await;
    assert!(
        ["order_busy", "order_not_modifiable"].contains(&during.error_code().as_str()),
        "{}",
        during.json()
    );
    app.wait_for_status(&alice.token, &id, "canceled").await;
    let ended = app
        .patch(&alice.token, &id, Some("after"), &json!({"qty": 12}))
        .await;
    assert_eq!(ended.error_code(), "order_not_modifiable");
}

/// A replace raced by fills: the venue fills the order in chunks while the replace is in flight.
/// Whichever way the race goes (taken with fills of both versions, too late, or filled before the
/// replace went out, when the end answers it), the order ends with the venue's terms, every fill is
/// paid for once, and the audit finds nothing wrong.
#[actix_web::test]
async fn a_replace_raced_by_fills_ends_with_the_venues_terms_and_exact_money() {
    let app = spawn_app().await;
    let alice = app.create_account("10000000.00", json!({})).await;
    let mut taken = 0;
    for round in 0..6 {
        // Far above the market: it fills at once, in chunks of at most a third.
        let order = app
            .submit(
                &alice.token,
                Some(&format!("b{round}")),
                &limit_buy("INFY", 30, "99999.00"),
            )
            .await
            .json();
        let id = order["id"].as_str().unwrap().to_owned();
        app.wait_for_order(&alice.token, &id, |o| o["status"] != "pending_new")
            .await;
        let asked = app
            .patch(
                &alice.token,
                &id,
                Some(&format!("r{round}")),
                &json!({"qty": 60}),
            )
            .await;
        // Not yet acknowledged (busy), or already ended (not modifiable), or taken in.
        let code = asked.json()["error"]["code"].as_str().map(str::to_owned);
        assert!(
            asked.status == StatusCode::ACCEPTED
                || ["order_busy", "order_not_modifiable"].contains(&code.as_deref().unwrap_or("")),
            "{}",
            asked.json()
        );
        let ended = app
            .wait_for_order(&alice.token, &id, |o| o["status"] == "filled")
            .await;
        assert_eq!(ended["filled_qty"], ended["qty"], "{ended}");
        let actions = app
            .get(&alice.token, &format!("/v1/orders/{id}/actions"))
            .await
            .json();
        let kinds = action_kinds(&actions);
        if ended["qty"] == 60 {
            assert!(kinds.iter().any(|k| k == "replaced"), "{kinds:?}");
            taken += 1;
        } else if asked.status == StatusCode::ACCEPTED {
            // Too late at the venue, or the order filled before the replace went out: its end
            // answers the replace, on the old terms.
            let answered = kinds.iter().any(|k| k == "replace_rejected");
            let asked_at = kinds.iter().position(|k| k == "replace_requested");
            let ended_pending = asked_at.is_some_and(|at| {
                let after = &kinds[at + 1..];
                after.last().map(String::as_str) == Some("filled")
                    && !after.iter().any(|k| k.starts_with("replace"))
            });
            assert!(answered || ended_pending, "{kinds:?}");
            assert!(!kinds.iter().any(|k| k == "replaced"), "{kinds:?}");
        }
    }
    assert!(taken > 0, "no replace was taken while its order filled");
    let fills_paid: i64 = {
        let mut paid = 0;
        for order in app.orders(&alice.token, "all").await {
            let id = order["id"].as_str().unwrap();
            for fill in app
                .get(&alice.token, &format!("/v1/orders/{id}/fills"))
                .await
                .json()
                .as_array()
                .unwrap()
            {
                paid += fill["qty"].as_i64().unwrap() * cents(&fill["price"]);
            }
        }
        paid
    };
    let balances = app.balances(&alice.token).await;
    assert_eq!(cents(&balances["cash"]["reserved"]), 0);
    assert_eq!(
        cents(&balances["cash"]["available"]),
        1_000_000_000 - fills_paid
    );
    let audit = app.get(ADMIN_TOKEN, "/v1/admin/audit").await.json();
    assert_eq!(audit["ok"], true, "{audit}");
}

/// A venue that loses the first answer and then says too late: the refusal after a lost attempt
/// is no answer, so the replace is sent again; refused outright, the old terms stand, and the hold
/// for the new ones is released.
#[actix_web::test]
async fn too_late_keeps_the_old_terms_and_a_refusal_after_a_lost_answer_is_asked_again() {
    let venue = Venue::start();
    venue.state().replace_answers = [503, 409, 409].into();
    let app = spawn_app_with(|args| args.exchange = venue.url.clone()).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let (id, cid) = resting_buy(&app, &alice.token, 5, "100.00").await;

    let asked = app
        .patch(&alice.token, &id, Some("r"), &json!({"qty": 8}))
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.json());
    let kept = app
        .wait_for_order(&alice.token, &id, |o| o["status"] == "new")
        .await;
    assert_eq!(
        (kept["qty"].clone(), kept["version"].clone()),
        (json!(5), json!(1))
    );
    assert_eq!(
        venue.state().replaces,
        3,
        "sent again after the ambiguous refusal"
    );
    let actions = app
        .get(&alice.token, &format!("/v1/orders/{id}/actions"))
        .await
        .json();
    assert_eq!(
        action_kinds(&actions),
        [
            "created",
            "placement_sent",
            "accepted",
            "replace_requested",
            "replace_rejected"
        ]
    );
    assert_eq!(actions[3]["detail"]["reserved_more"], 30_000);
    assert_eq!(actions[4]["detail"]["released"], 30_000);
    assert_eq!(
        app.balances(&alice.token).await["cash"],
        json!({"available": "99500.00", "reserved": "500.00"})
    );
    // The old version goes on filling, and ends the order.
    venue.fill(&cid, "F1", 5, "99.00");
    app.wait_for_status(&alice.token, &id, "filled").await;
    assert_eq!(
        app.balances(&alice.token).await["cash"],
        json!({"available": "99505.00", "reserved": "0.00"})
    );
}

/// A cancel that comes while the venue has not answered a replace wins: the replace's answer,
/// when it comes, changes nothing, the order ends cancelled, and everything it held comes back.
#[actix_web::test]
async fn a_cancel_during_a_replace_ends_the_order_and_releases_all_it_held() {
    let venue = Venue::start();
    venue.state().hold_replaces = true;
    let app = spawn_app_with(|args| args.exchange = venue.url.clone()).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let (id, _) = resting_buy(&app, &alice.token, 5, "100.00").await;
    let asked = app
        .patch(
            &alice.token,
            &id,
            Some("r"),
            &json!({"qty": 8, "limit_price": "110.00"}),
        )
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.json());
    // What either version may need: 8 at 110.00.
    assert_eq!(
        app.balances(&alice.token).await["cash"]["reserved"],
        "880.00"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while venue.state().replaces == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the replace never reached the venue"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let cancel = app.delete(&alice.token, &format!("/v1/orders/{id}")).await;
    assert_eq!(cancel.status, StatusCode::ACCEPTED);
    assert_eq!(cancel.json()["status"], "pending_cancel");
    venue.state().hold_replaces = false;
    let ended = app.wait_for_status(&alice.token, &id, "canceled").await;
    assert_eq!(ended["filled_qty"], 0);
    let actions = app
        .get(&alice.token, &format!("/v1/orders/{id}/actions"))
        .await
        .json();
    let kinds = action_kinds(&actions);
    // The venue took the replace before the cancel: the order ends under its new terms.
    assert_eq!(
        kinds,
        [
            "created",
            "placement_sent",
            "accepted",
            "replace_requested",
            "cancel_requested",
            "replaced",
            "canceled"
        ]
    );
    assert_eq!(
        (&ended["qty"], &ended["limit_price"]),
        (&json!(8), &json!("110.00")),
        "{ended}"
    );
    assert_eq!(
        app.balances(&alice.token).await["cash"],
        json!({"available": "100000.00", "reserved": "0.00"})
    );
    assert!(
        app.alarms_of(&id).is_empty(),
        "a race, not a fault: {:?}",
        app.alarms_of(&id)
    );
}
