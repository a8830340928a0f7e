//! The money audit: it passes on books kept by the engine, and a balance changed behind the
//! engine's back fails it, naming the account and the check.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

fn corrupt_cash(app: &TestApp, account: &str) {
    let mut conn = app.conn();
    let sql = format!(
        "UPDATE balances SET available = available + 1 WHERE account_id = '{account}' AND asset = 'CASH'"
    );
    orderkeeper::with_conn!(conn, |c| diesel::RunQueryDsl::execute(
        diesel::sql_query(&sql),
        c
    ))
    .unwrap();
}

/// An action of an order that does not exist, written behind the engine's back (SQLite's foreign
/// key is lifted for it; PostgreSQL's append-only tables have none).
fn write_orphan_action(app: &TestApp) {
    let mut conn = app.conn();
    let insert = "INSERT INTO order_actions (order_id, seq, kind, detail, at) \
                  VALUES ('no-such-order', 1, 'accepted', '{}', 0)";
    let sql = match &conn.inner {
        orderkeeper::testing::db::Inner::Sqlite(_) => {
            format!("PRAGMA foreign_keys = OFF; {insert}; PRAGMA foreign_keys = ON;")
        }
        orderkeeper::testing::db::Inner::Postgres(_) => insert.to_owned(),
    };
    conn.batch_execute(&sql).unwrap();
}

fn failing_check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report}"))
}

#[actix_web::test]
async fn the_audit_passes_on_the_engines_books_and_names_a_corrupted_balance() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({"INFY": 20})).await;
    let bob = app.create_account("50000.00", json!({})).await;
    let bought = app
        .submit(&alice.token, Some("a1"), &market("buy", "INFY", 4))
        .await
        .json();
    let sold = app
        .submit(&alice.token, Some("a2"), &market("sell", "INFY", 3))
        .await
        .json();
    let resting = app.resting_order(&bob.token, "b1", 5).await;
    for (token, order) in [(&alice.token, &bought), (&alice.token, &sold)] {
        app.wait_for_status(token, order["id"].as_str().unwrap(), "filled")
            .await;
    }

    let report = app.get(ADMIN_TOKEN, "/v1/admin/audit").await;
    assert_eq!(
        report.status,
        200,
        "{}",
        String::from_utf8_lossy(&report.body)
    );
    let report = report.json();
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["duration_ms"].is_u64());
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for name in [
        "balances_equal_ledger",
        "filled_qty_equals_fills",
        "terminal_orders_hold_nothing",
        "reserved_equals_open_orders",
        "cash_and_shares_conserved",
        "fills_equal_exchange",
        "no_unknown_exchange_orders",
        "every_row_names_its_parent",
    ] {
        assert!(names.contains(&name), "{name} missing: {names:?}");
    }
    assert_eq!(failing_check(&report, "fills_equal_exchange")["rows"], 3);
    // Only the operator may ask.
    assert_eq!(app.get(&alice.token, "/v1/admin/audit").await.status, 401);

    corrupt_cash(&app, &bob.id);
    let report = app.get(ADMIN_TOKEN, "/v1/admin/audit").await.json();
    assert_eq!(report["ok"], false);
    for name in ["balances_equal_ledger", "cash_and_shares_conserved"] {
        let violations = failing_check(&report, name)["violations"]
            .as_array()
            .unwrap();
        assert_eq!(violations.len(), 1, "{name}: {report}");
        assert_eq!(violations[0]["account_id"], bob.id.as_str(), "{name}");
    }
    let untouched = failing_check(&report, "reserved_equals_open_orders");
    assert_eq!(untouched["violations"], json!([]), "{report}");
    assert_eq!(
        failing_check(&report, "every_row_names_its_parent")["violations"],
        json!([]),
        "{report}"
    );

    write_orphan_action(&app);
    let report = app.get(ADMIN_TOKEN, "/v1/admin/audit").await.json();
    let orphans = failing_check(&report, "every_row_names_its_parent")["violations"]
        .as_array()
        .unwrap();
    assert_eq!(orphans.len(), 1, "{report}");
    assert!(
        orphans[0]["detail"]
            .as_str()
            .unwrap()
            .contains("order_actions names no-such-order"),
        "{report}"
    );
    assert_eq!(resting["status"], "new");
}

#[actix_web::test]
async fn the_engine_audits_itself_on_a_timer_and_alarms() {
    let app = spawn_app_with(|args| args.audit_interval = 1).await;
    let alice = app.create_account("100000.00", json!({})).await;
    app.resting_order(&alice.token, "t1", 2).await;
    let health = |app: &TestApp| {
        let url = app.url("/healthz");
        async move {
            let mut response = client().get(url).send().await.unwrap();
            response.json::<Value>().await.unwrap()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while health(&app).await["audit"]["ok"] != true {
        assert!(Instant::now() < deadline, "the timer never audited");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }

    corrupt_cash(&app, &alice.id);
    let deadline = Instant::now() + Duration::from_secs(10);
    let verdict = loop {
        let verdict = health(&app).await["audit"].clone();
        if verdict["ok"] == false {
            break verdict;
        }
        assert!(Instant::now() < deadline, "the corruption went unseen");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    let failing = verdict["failing"].as_array().unwrap();
    assert!(
        failing.contains(&json!("balances_equal_ledger")),
        "{verdict}"
    );
    let mut response = client().get(app.url("/metrics")).send().await.unwrap();
    let text = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
    assert!(
        text.contains("orderkeeper_invariant_violations 2"),
        "{text}"
    );
    assert!(
        text.contains("orderkeeper_alarms_total{kind=\"invariant_violation\"} "),
        "{text}"
    );
    let raised = orderkeeper::testing::db::alarms::count(
        &mut app.conn(),
        orderkeeper::testing::db::alarms::AlarmKind::InvariantViolation,
    )
    .unwrap();
    assert_eq!(
        raised, 2,
        "one alarm per failing check, counted up on each run"
    );
}
