//! The database as a part that fails: the engine reaches PostgreSQL through the tests' own TCP
//! proxy, which cuts every connection (a restart, a failover, an idle-connection killer) or stalls
//! them (a network that stops answering). `/readyz` must say so while it lasts, nothing answered
//! may be lost, and the engine must carry on once the database is back.

use std::future::Future;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::*;
use crate::proxy::{through, Proxy};

async fn within<T>(seconds: u64, what: &str, work: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(seconds), work)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {seconds} s"))
}

/// `/readyz`'s status and body once it answers `status`, within `seconds`.
async fn readyz_becomes(app: &TestApp, status: StatusCode, seconds: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let answer = within(5, "/readyz", app.get("", "/readyz")).await;
        if answer.status == status {
            return answer.json();
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {} ({}), expected {status}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits under `key` until the engine answers something other than 503, as a client retrying
/// with its key would.
async fn submit_until_taken(app: &TestApp, token: &str, key: &str, body: &str) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = within(15, key, app.submit(token, Some(key), body)).await;
        if answer.status != StatusCode::SERVICE_UNAVAILABLE {
            return answer;
        }
        assert!(Instant::now() < deadline, "{key}: 503 for 30 s");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[actix_web::test]
async fn a_lost_database_is_told_by_readyz_and_the_engine_carries_on_when_it_is_back() {
    crate::database::require_postgres();
    let dir = tempfile::tempdir().expect("temp dir");
    let direct = database_url(&dir);
    let (_, upstream) = through(&direct, 0);
    let proxy = Proxy::start(upstream);
    let (proxied, _) = through(&direct, proxy.port);
    let app = spawn_app_in(dir, |args| args.database_url = proxied).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let first = app.resting_order(&alice.token, "before", 1).await;
    readyz_becomes(&app, StatusCode::OK, 10).await;

    // Every connection is cut, and new ones refused: the database is gone.
    proxy.cut();
    let said = readyz_becomes(&app, StatusCode::SERVICE_UNAVAILABLE, 10).await;
    assert_eq!(said["status"], "database_unreachable", "{said}");
    let body = limit_buy("INFY", 1, "100.00");
    let refused = within(
        15,
        "a submit while cut",
        app.submit(&alice.token, Some("cut"), &body),
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );

    // It comes back: ready again, and every part of the engine works.
    proxy.heal();
    readyz_becomes(&app, StatusCode::OK, 20).await;
    let taken = submit_until_taken(&app, &alice.token, "cut", &body).await;
    assert_eq!(taken.status, StatusCode::CREATED);
    let id = taken.json()["id"].as_str().expect("id").to_owned();
    app.wait_for_status(&alice.token, &id, "new").await;
    let first_id = first["id"].as_str().expect("id");
    app.cancel_and_wait(&alice.token, first_id).await;

    // The connections stall: nothing answers, nothing is closed. Then they are cut and it heals.
    proxy.stall();
    let said = readyz_becomes(&app, StatusCode::SERVICE_UNAVAILABLE, 10).await;
    assert_eq!(said["status"], "database_unreachable", "{said}");
    proxy.cut();
    proxy.heal();
    readyz_becomes(&app, StatusCode::OK, 20).await;
    let after = submit_until_taken(&app, &alice.token, "after-stall", &body).await;
    assert_eq!(after.status, StatusCode::CREATED);
    app.cancel_and_wait(&alice.token, &id).await;
    let after_id = after.json()["id"].as_str().expect("id").to_owned();
    app.cancel_and_wait(&alice.token, &after_id).await;

    // The server ends every session of the engine (a restart, a failover, an idle killer).
    crate::database::terminate_every_session(&direct);
    let after_restart = submit_until_taken(&app, &alice.token, "after-terminate", &body).await;
    assert_eq!(after_restart.status, StatusCode::CREATED);
    let restart_id = after_restart.json()["id"].as_str().expect("id").to_owned();
    app.wait_for_status(&alice.token, &restart_id, "new").await;
    app.cancel_and_wait(&alice.token, &restart_id).await;
    readyz_becomes(&app, StatusCode::OK, 20).await;

    let audit = within(15, "the audit", app.get(ADMIN_TOKEN, "/v1/admin/audit")).await;
    assert_eq!(audit.json()["ok"], true, "{}", audit.json());
    let balances = app.get(&alice.token, "/v1/balances").await.json();
    assert_eq!(balances["cash"]["available"], "100000.00", "{balances}");
    assert_eq!(balances["cash"]["reserved"], "0.00", "{balances}");
}

#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[actix_web::test]
async fn rows_held_by_a_stalled_transaction_cost_their_account_a_bounded_wait_and_no_one_else_anything(
) {
    crate::database::require_postgres();
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let app = spawn_app_with(|args| args.db_lock_timeout_ms = 1000).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let bob = app.create_account("100000.00", json!({})).await;
    let body = limit_buy("INFY", 1, "100.00");
    // Another process (an engine paused in the middle of a phase) holds alice's rows.
    let url = std::fs::read_to_string(app.dir().join("database_url")).expect("the url");
    let mut paused = diesel::PgConnection::establish(&url).expect("connects");
    paused
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM balances WHERE account_id = '{}' FOR UPDATE",
            alice.id
        ))
        .expect("rows held");

    let started = Instant::now();
    let bobs = within(5, "bob's submit", app.submit(&bob.token, Some("b"), &body)).await;
    assert_eq!(
        bobs.status,
        StatusCode::CREATED,
        "another account never waits"
    );
    let alices = within(
        10,
        "alice's submit",
        app.submit(&alice.token, Some("a"), &body),
    )
    .await;
    assert_eq!(
        alices.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a bounded wait, then 503"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    paused.batch_execute("ROLLBACK").expect("released");
    let again = submit_until_taken(&app, &alice.token, "a", &body).await;
    assert_eq!(again.status, StatusCode::CREATED);
}

#[actix_web::test]
async fn a_retry_is_answered_while_the_writer_waits_on_held_rows() {
    use orderkeeper::testing::db::Backend;
    let app = spawn_app_with(|args| args.db_lock_timeout_ms = 8000).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let body = limit_buy("INFY", 1, "100.00");
    let first = app.submit(&alice.token, Some("k"), &body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    // Another process holds what a phase of alice's would wait for: SQLite's write lock, or
    // alice's rows on PostgreSQL.
    let mut held = app.conn();
    let hold = match held.backend() {
        Backend::Sqlite => "BEGIN IMMEDIATE".to_owned(),
        Backend::Postgres => format!(
            "BEGIN; SELECT 1 FROM balances WHERE account_id = '{}' FOR UPDATE",
            alice.id
        ),
    };
    held.batch_execute(&hold).expect("held");

    let retry = within(3, "the retry", app.submit(&alice.token, Some("k"), &body)).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.header("idempotent-replayed").as_deref(), Some("true"));
    let other = limit_buy("INFY", 2, "100.00");
    let reused = within(3, "the reuse", app.submit(&alice.token, Some("k"), &other)).await;
    assert_eq!(reused.error_code(), "idempotency_key_reused");

    held.batch_execute("ROLLBACK").expect("released");
    assert_eq!(app.count_orders(), 1);
}
