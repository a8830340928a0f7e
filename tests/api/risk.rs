//! Pre-trade risk limits and halts, set by the operator: each limit at its edge, refusals kept
//! under their keys, concurrent submits against `max_open_orders`, halts of one account and of
//! every account (during a load, and across two engines on one PostgreSQL database).

use actix_web::http::StatusCode;
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::*;

async fn set_limits(app: &TestApp, account: &str, limits: Value) -> Answer {
    app.put_json(
        &format!("/v1/admin/accounts/{account}/limits"),
        ADMIN_TOKEN,
        &limits.to_string(),
    )
    .await
}

async fn halt(app: &TestApp, path: &str, body: Value) -> Value {
    let answer = app.put_json(path, ADMIN_TOKEN, &body.to_string()).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()
}

/// A limit buy of INFY under `key`.
async fn buy(app: &TestApp, token: &str, key: &str, qty: i64, price: &str) -> Answer {
    app.submit(token, Some(key), &limit_buy("INFY", qty, price))
        .await
}

fn refused_by(answer: &Answer, status: u16, code: &str, message_starts: &str) {
    assert_eq!(
        answer.status,
        status,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.error_code(), code);
    let message = answer.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.starts_with(message_starts), "{message}");
}

#[actix_web::test]
async fn each_limit_holds_at_its_edge_and_a_refusal_is_kept_under_its_key() {
    let app = spawn_app().await;
    let alice = app.create_account("1000000.00", json!({"INFY": 100})).await;

    // Worth exactly the limit goes through; a cent more is refused, and the refusal replays.
    let set = set_limits(&app, &alice.id, json!({"max_order_notional": "1000.00"})).await;
    assert_eq!(set.status, 200);
    assert_eq!(set.json()["max_order_notional"], "1000.00");
    let at_edge = buy(&app, &alice.token, "n1", 10, "100.00").await;
    assert_eq!(at_edge.status, 201);
    let past = buy(&app, &alice.token, "n2", 10, "100.01").await;
    refused_by(&past, 422, "risk_limit", "max_order_notional");
    let again = buy(&app, &alice.token, "n2", 10, "100.01").await;
    assert_eq!((again.status, &again.body), (past.status, &past.body));
    assert_eq!(again.header("Idempotent-Replayed").as_deref(), Some("true"));
    // A replace past the limit is refused the same way, and the order keeps its terms.
    let id = at_edge.json()["id"].as_str().unwrap().to_owned();
    app.wait_for_status(&alice.token, &id, "new").await;
    let raise = app
        .patch(&alice.token, &id, Some("r1"), &json!({"qty": 11}))
        .await;
    refused_by(&raise, 422, "risk_limit", "max_order_notional");
    let kept = app
        .get(&alice.token, &format!("/v1/orders/{id}"))
        .await
        .json();
    assert_eq!(
        (&kept["status"], &kept["qty"], &kept["version"]),
        (&json!("new"), &json!(10), &json!(1))
    );

    // Open orders: one is open; a second fits a cap of two, a third does not, until one ends.
    set_limits(&app, &alice.id, json!({"max_open_orders": 2})).await;
    let second = buy(&app, &alice.token, "o1", 1, "100.00").await;
    assert_eq!(second.status, 201);
    let third = buy(&app, &alice.token, "o2", 1, "100.00").await;
    refused_by(&third, 422, "risk_limit", "max_open_orders");
    app.wait_for_status(&alice.token, &id, "new").await;
    app.cancel_and_wait(&alice.token, &id).await;
    let after_cancel = buy(&app, &alice.token, "o3", 1, "100.00").await;
    assert_eq!(after_cancel.status, 201);

    // The band: a limit at the last price goes through, one at half of it does not (the exact
    // edge is the domain's unit test: the simulator's price moves between two reads here).
    set_limits(&app, &alice.id, json!({"price_band_percent": 10})).await;
    let prices = app.get(&alice.token, "/v1/prices").await.json();
    let last = prices["INFY"].as_str().unwrap().to_owned();
    let near = app
        .submit(&alice.token, Some("b1"), &limit_sell("INFY", 1, &last))
        .await;
    assert_eq!(near.status, 201, "{}", String::from_utf8_lossy(&near.body));
    let far = buy(&app, &alice.token, "b2", 1, "100.00").await;
    refused_by(&far, 422, "risk_limit", "price_band");

    // Lifted, every limit allows the order again; nothing refused moved any money.
    set_limits(&app, &alice.id, json!({})).await;
    let free = buy(&app, &alice.token, "f1", 10, "100.01").await;
    assert_eq!(free.status, 201);
    let report = app.get(ADMIN_TOKEN, "/v1/admin/audit").await.json();
    assert_eq!(report["ok"], true, "{report}");
}

#[actix_web::test]
async fn limits_are_the_operator_s_to_set_and_bad_ones_are_refused() {
    let app = spawn_app().await;
    let alice = app.create_account("1000.00", json!({})).await;
    let path = format!("/v1/admin/accounts/{}/limits", alice.id);
    let as_alice = app.put_json(&path, &alice.token, "{}").await;
    assert_eq!(as_alice.status, 401);
    for bad in [
        json!({"max_open_orders": -1}),
        json!({"price_band_percent": 10_001}),
        json!({"max_order_notional": "1.001"}),
        json!({"max_order_notional": 5}),
        json!({"max_open_orders": 1, "other": 1}),
    ] {
        let answer = set_limits(&app, &alice.id, bad.clone()).await;
        assert_eq!(answer.status, 400, "{bad}");
        assert_eq!(answer.error_code(), "invalid_request");
    }
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(
        set_limits(&app, &unknown.to_string(), json!({}))
            .await
            .status,
        404
    );
    let halted = app
        .put_json(
            &format!("/v1/admin/accounts/{unknown}/trading"),
            ADMIN_TOKEN,
            r#"{"halted":true}"#,
        )
        .await;
    assert_eq!(halted.status, 404);
}

/// Many submits of one account at once against a cap of one open order: exactly one order.
#[actix_web::test]
async fn concurrent_submits_never_both_slip_under_max_open_orders() {
    let app = spawn_app().await;
    let alice = app.create_account("1000000.00", json!({})).await;
    set_limits(&app, &alice.id, json!({"max_open_orders": 1})).await;
    let body = limit_buy("INFY", 1, "100.00");
    let keys: Vec<String> = (0..12).map(|i| format!("c{i}")).collect();
    let answers = join_all(
        keys.iter()
            .map(|key| app.submit(&alice.token, Some(key), &body)),
    )
    .await;
    let created = answers.iter().filter(|a| a.status == 201).count();
    let refused = answers
        .iter()
        .filter(|a| a.status == 422 && a.error_code() == "risk_limit")
        .count();
    assert_eq!((created, refused), (1, 11));
    assert_eq!(app.orders(&alice.token, "open").await.len(), 1);
}

#[actix_web::test]
async fn an_account_halt_refuses_orders_and_replaces_never_a_cancel() {
    let app = spawn_app().await;
    let alice = app.create_account("1000000.00", json!({})).await;
    let bob = app.create_account("1000000.00", json!({})).await;
    let resting = app.resting_order(&alice.token, "r1", 5).await;
    let id = resting["id"].as_str().unwrap().to_owned();

    let path = format!("/v1/admin/accounts/{}/trading", alice.id);
    let halted = halt(&app, &path, json!({"halted": true})).await;
    assert_eq!(
        halted,
        json!({"account_id": alice.id, "halted": true, "canceled": 0})
    );
    let trading = app.get(&alice.token, "/v1/trading").await.json();
    assert_eq!(
        trading,
        json!({"halted": true, "account_halted": true, "engine_halted": false})
    );
    let refused = buy(&app, &alice.token, "h1", 1, "100.00").await;
    refused_by(
        &refused,
        423,
        "trading_halted",
        "trading is halted for this account",
    );
    let replayed = buy(&app, &alice.token, "h1", 1, "100.00").await;
    assert_eq!(
        (replayed.status, &replayed.body),
        (refused.status, &refused.body)
    );
    let replace = app
        .patch(&alice.token, &id, Some("p1"), &json!({"qty": 6}))
        .await;
    refused_by(&replace, 423, "trading_halted", "trading is halted");
    // Bob trades on; alice may still cancel.
    let bobs = buy(&app, &bob.token, "b1", 1, "100.00").await;
    assert_eq!(bobs.status, 201);
    app.cancel_and_wait(&alice.token, &id).await;

    // Trading again, and halted once more with its open orders cancelled.
    halt(&app, &path, json!({"halted": false})).await;
    let again = app.resting_order(&alice.token, "r2", 5).await;
    let halted = halt(&app, &path, json!({"halted": true, "cancel_open": true})).await;
    assert_eq!(halted["canceled"], 1);
    app.wait_for_status(&alice.token, again["id"].as_str().unwrap(), "canceled")
        .await;
    let report = app.get(ADMIN_TOKEN, "/v1/admin/audit").await.json();
    assert_eq!(report["ok"], true, "{report}");
}

/// The halt of every account lands in the middle of a stream of orders: each order is either
/// created before it or refused after it, and with `cancel_open` none is left open.
#[actix_web::test]
async fn a_halt_of_every_account_during_a_load_leaves_no_order_open() {
    let app = spawn_app().await;
    let alice = app.create_account("1000000.00", json!({})).await;
    let bob = app.create_account("1000000.00", json!({})).await;
    let load = |token: String, prefix: &'static str| {
        let app = &app;
        async move {
            // Orders until a few after the first refusal (or far too many: the halt never came).
            let mut answers = Vec::new();
            for i in 0..5_000 {
                let key = format!("{prefix}{i}");
                let body = limit_buy("INFY", 1, "100.00");
                answers.push(app.submit(&token, Some(&key), &body).await.status);
                if answers.iter().filter(|s| s.as_u16() == 423).count() >= 5 {
                    break;
                }
            }
            answers
        }
    };
    let halting = async {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(150)).await;
        halt(
            &app,
            "/v1/admin/trading",
            json!({"halted": true, "cancel_open": true}),
        )
        .await
    };
    let (a, b, halted) = futures_util::join!(
        load(alice.token.clone(), "a"),
        load(bob.token.clone(), "b"),
        halting
    );
    for statuses in [&a, &b] {
        assert!(
            statuses.first() == Some(&StatusCode::CREATED),
            "{statuses:?}"
        );
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::CREATED || s.as_u16() == 423),
            "{statuses:?}"
        );
        // Once refused, refused to the end: the halt stands.
        let first_refused = statuses
            .iter()
            .position(|s| s.as_u16() == 423)
            .unwrap_or(statuses.len());
        assert!(
            statuses[first_refused..].iter().all(|s| s.as_u16() == 423),
            "{statuses:?}"
        );
    }
    let created = a
        .iter()
        .chain(&b)
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    assert!(halted["canceled"].as_u64().unwrap() as usize <= created);
    for account in [&alice, &bob] {
        let open = app.orders(&account.token, "open").await;
        assert!(
            open.iter().all(|o| o["status"] == "pending_cancel"),
            "{open:?}"
        );
        let refused = app
            .submit(
                &account.token,
                Some("after"),
                &limit_buy("INFY", 1, "100.00"),
            )
            .await;
        refused_by(
            &refused,
            423,
            "trading_halted",
            "trading is halted for every account",
        );
        let trading = app.get(&account.token, "/v1/trading").await.json();
        assert_eq!(trading["engine_halted"], true);
    }
    halt(&app, "/v1/admin/trading", json!({"halted": false})).await;
    let resumed = app
        .submit(
            &alice.token,
            Some("resumed"),
            &limit_buy("INFY", 1, "100.00"),
        )
        .await;
    assert_eq!(resumed.status, 201);
}

/// Two engines on one PostgreSQL database: a halt set through one refuses orders at the other.
#[actix_web::test]
#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
async fn a_halt_set_through_one_engine_holds_at_another() {
    crate::database::require_postgres();
    let first = spawn_app().await;
    let url = database_url_of(&first);
    let second = spawn_app_over(&url, "engine-two").await;
    let alice = first.create_account("1000000.00", json!({})).await;
    assert_eq!(
        buy(&second, &alice.token, "k1", 1, "100.00").await.status,
        201
    );
    halt(&first, "/v1/admin/trading", json!({"halted": true})).await;
    let refused = buy(&second, &alice.token, "k2", 1, "100.00").await;
    refused_by(
        &refused,
        423,
        "trading_halted",
        "trading is halted for every account",
    );
    let path = format!("/v1/admin/accounts/{}/trading", alice.id);
    halt(&first, "/v1/admin/trading", json!({"halted": false})).await;
    halt(&second, &path, json!({"halted": true})).await;
    let refused = buy(&first, &alice.token, "k3", 1, "100.00").await;
    refused_by(
        &refused,
        423,
        "trading_halted",
        "trading is halted for this account",
    );
}
