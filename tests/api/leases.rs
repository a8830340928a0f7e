//! Leases and fencing, in one engine and its database: a write under a lease that was taken over
//! is refused, and the engine that lost the order stops acting on it.

use std::time::Duration;

use diesel::RunQueryDsl;
use serde_json::json;

use orderkeeper::domain::OrderId;
use orderkeeper::testing::db::leases;

use crate::helpers::*;

/// This engine's lease runs out and another, `engine@elsewhere`, takes its one open order over:
/// the fence it had, and the other's.
fn taken_over_by_another_engine(app: &TestApp) -> (leases::Fence, leases::Fence) {
    let old = app.engine.fence();
    let mut conn = app.pool.get().unwrap();
    let expire = format!(
        "UPDATE engines SET expires_at = 0 WHERE id = '{}'",
        old.engine
    );
    orderkeeper::with_conn!(conn, |c| diesel::sql_query(&expire).execute(c)).unwrap();
    let other = leases::join(&mut conn, "engine@elsewhere", 60_000_000).unwrap();
    assert_eq!(
        leases::take_over(&mut conn, &old.engine, &other).unwrap(),
        1
    );
    (old, other)
}

#[actix_web::test]
async fn an_engine_whose_lease_was_taken_over_may_not_write_to_the_order() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let placed = app
        .submit(&alice.token, Some("rest"), &limit_buy("INFY", 2, "10.00"))
        .await;
    assert_eq!(placed.status, 201, "{}", placed.json());
    let id = placed.json()["id"].as_str().unwrap().to_owned();
    app.wait_for_status(&alice.token, &id, "new").await;
    let order: OrderId = id.parse().unwrap();

    // This engine's lease runs out, and another engine takes its open orders.
    let (old, other) = taken_over_by_another_engine(&app);
    let mut conn = app.pool.get().unwrap();

    // A phase under the old lease is refused; under the new one it passes.
    let (owner, epoch) = leases::lock_owner(&mut conn, order).unwrap();
    let fenced = leases::ensure_owner(order, &owner, epoch, &old).unwrap_err();
    assert_eq!((fenced.owner, fenced.fence), (other.clone(), old.clone()));
    assert!(leases::ensure_owner(order, &owner, epoch, &other).is_ok());
    drop(conn);

    // The engine's actor for the order stops at its next step, and a cancel through this engine
    // is recorded and left to the owner, which here never comes: nothing here acts on it.
    let mut gone = false;
    for _ in 0..100 {
        if !app.engine.registry().contains(order) {
            gone = true;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the fenced engine kept an actor for the order");
    let cancels_sent = || async {
        sum_of(
            &app.scrape().await,
            "orderkeeper_exchange_requests_total",
            r#"op="cancel""#,
        )
    };
    let cancel = app.delete(&alice.token, &format!("/v1/orders/{id}")).await;
    assert_eq!(cancel.status, 202, "{}", cancel.json());
    // The cancel was answered after its note for the owner was written: no actor here took it
    // (none exists) and no cancel went to the exchange.
    let after = app.get(&alice.token, &format!("/v1/orders/{id}")).await;
    assert_eq!(after.json()["status"], "pending_cancel");
    assert!(!app.engine.registry().contains(order));
    assert_eq!(cancels_sent().await, 0.0);
    // The note for the owner is waiting for it.
    let mut conn = app.pool.get().unwrap();
    assert_eq!(
        leases::take_notes(&mut conn, "engine@elsewhere").unwrap(),
        vec![order]
    );
    // And the engine, finding its lease lost at its next renewal, joins again under a newer epoch.
    let mut rejoined = false;
    for _ in 0..100 {
        if app.engine.fence().epoch > old.epoch {
            rejoined = true;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rejoined, "the engine never noticed its lost lease");
    // And through all that, it never acted on the order it lost.
    assert_eq!(cancels_sent().await, 0.0);
}

#[actix_web::test]
async fn fills_pushed_for_another_engines_order_are_recorded_and_not_remembered_here() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let placed = app.resting_order(&alice.token, "foreign", 2).await;
    let id = placed["id"].as_str().unwrap().to_owned();
    let order: OrderId = id.parse().unwrap();
    // Another engine takes the order over; this one's actor stops.
    taken_over_by_another_engine(&app);
    for _ in 0..100 {
        if !app.engine.registry().contains(order) {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!app.engine.registry().contains(order));

    // The venue pushes a fill of it here, as it may push to any engine.
    let body = json!({
        "event_id": "E-foreign", "type": "fill", "client_order_id": placed["client_order_id"], "exchange_order_id": "X-1",
        "fill": {"fill_id": "F-foreign", "qty": 1, "price": "10.00", "ts": chrono::Utc::now().to_rfc3339()}
    })
    .to_string();
    let signature = orderkeeper::exchange::signature::sign(EXCHANGE_SECRET, body.as_bytes());
    let pushed = client()
        .post(app.url("/v1/exchange/events"))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("X-Signature", signature))
        .send_body(body)
        .await
        .unwrap();
    assert_eq!(pushed.status(), 200);
    let fills = app
        .get(&alice.token, &format!("/v1/orders/{id}/fills"))
        .await
        .json();
    assert_eq!(fills.as_array().map(Vec::len), Some(1), "{fills}");
    assert_eq!(app.engine.registry().orders_with_remembered_fills(), 0);
}

/// A submit holds its engine's row from the read of the epoch it stamps on new orders until it
/// commits. A join or a takeover, which raise the epoch, wait for it; a renewal and a clean
/// expiry do not, so a stream of submits never holds up the lease.
#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[test]
fn a_submit_in_flight_holds_up_a_change_of_epoch_but_not_a_renewal() {
    use orderkeeper::testing::db;

    crate::database::require_postgres();
    let dir = tempfile::tempdir().unwrap();
    let url = database_url(&dir);
    let pool = db::connect(&url, 1).unwrap();
    let mut submitting = pool.get().unwrap();
    let fence = leases::join(&mut submitting, "engine@here", 60_000_000).unwrap();
    let other_engine = leases::join(&mut submitting, "engine@elsewhere", 60_000_000).unwrap();
    let mut other = db::establish(&url).unwrap();
    other.batch_execute("SET lock_timeout = '300ms'").unwrap();

    submitting
        .transaction(|conn| {
            // What a submit phase reads first, and holds to its commit.
            assert_eq!(leases::owner_now(conn, &fence)?, fence);
            assert!(leases::renew(&mut other, &fence, 60_000_000)?, "renewed");
            let joined = leases::join(&mut other, &fence.engine, 60_000_000);
            assert!(
                joined.is_err(),
                "a join raised the epoch under a submit: {joined:?}"
            );
            leases::expire(&mut other, &fence)?;
            let taken = leases::take_over(&mut other, &fence.engine, &other_engine);
            assert!(
                taken.is_err(),
                "a takeover went ahead of a submit: {taken:?}"
            );
            Ok::<_, db::DbError>(())
        })
        .unwrap();
    // Once the submit committed, the takeover raises the epoch.
    leases::take_over(&mut other, &fence.engine, &other_engine).unwrap();
    assert_eq!(
        leases::owner_now(&mut other, &fence).unwrap().epoch,
        fence.epoch + 1
    );
    drop((submitting, pool));
    crate::database::drop_for(dir.path());
}
