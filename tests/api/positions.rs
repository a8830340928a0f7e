//! `GET /v1/positions`: each symbol's position as the fold of the account's fills, exact to the
//! cent through the whole engine, and the audit that folds the fills again.

use serde_json::{json, Value};

use crate::helpers::*;

/// The check of that name in an audit report.
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name}: {report}"))
}

#[actix_web::test]
async fn positions_fold_the_fills_exactly_and_the_audit_folds_them_again() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let bob = app.create_account("100000.00", json!({})).await;

    // Ten bought in two fills: 5 at 99.00 and 5 at 98.01 average 98.505, a tie that rounds to the
    // even cent, 98.50.
    let buy = app.resting_order(&alice.token, "b1", 10).await;
    let (buy_id, buy_cid) = (
        buy["id"].as_str().unwrap(),
        buy["client_order_id"].as_str().unwrap(),
    );
    for (event, fill, price) in [("e1", "f1", "99.00"), ("e2", "f2", "98.01")] {
        assert_eq!(
            app.push(&fill_event(event, buy_cid, fill, 5, price)).await,
            200
        );
    }
    // A push is answered once its fill is committed. The venue never traded these fills, so the
    // orders stay open there and here: only the fills matter to a position.
    let bought = app
        .get(&alice.token, &format!("/v1/orders/{buy_id}"))
        .await
        .json();
    assert_eq!(bought["filled_qty"], 10);
    // Four sold at 2,000.00 realize (2,000.00 − 98.50) × 4.
    let sell = app
        .submit(&alice.token, Some("s1"), &limit_sell("INFY", 4, "2000.00"))
        .await
        .json();
    let (sell_id, sell_cid) = (
        sell["id"].as_str().unwrap(),
        sell["client_order_id"].as_str().unwrap(),
    );
    app.wait_for_status(&alice.token, sell_id, "new").await;
    assert_eq!(
        app.push(&fill_event("e3", sell_cid, "f3", 4, "2000.00"))
            .await,
        200
    );

    let answer = app.get(&alice.token, "/v1/positions").await;
    assert_eq!(answer.status, 200);
    let positions = answer.json();
    let position = &positions[0];
    assert_eq!(positions.as_array().map(Vec::len), Some(1), "{positions}");
    assert_eq!(
        (
            &position["symbol"],
            &position["qty"],
            &position["avg_cost"],
            &position["realized_pnl"]
        ),
        (
            &json!("INFY"),
            &json!(6),
            &json!("98.50"),
            &json!("7606.00")
        ),
        "{position}"
    );
    // Marked at the venue's last price.
    let last = position["last_price"].as_str().expect("a last price");
    let cents = |text: &str| -> i64 {
        let (sign, digits) = text.strip_prefix('-').map_or((1, text), |rest| (-1, rest));
        sign * orderkeeper::domain::Cents::parse(digits)
            .expect("money text")
            .0
    };
    assert_eq!(
        cents(position["unrealized_pnl"].as_str().unwrap()),
        (cents(last) - 9_850) * 6,
        "{position}"
    );
    // Another account's fills are not in them; and no token, no positions.
    assert_eq!(app.get(&bob.token, "/v1/positions").await.json(), json!([]));
    assert_eq!(app.get("no-such-token", "/v1/positions").await.status, 401);

    let report = app.get(ADMIN_TOKEN, "/v1/admin/audit").await.json();
    let positions_check = check(&report, "positions_equal_fills");
    assert_eq!(positions_check["rows"], 1, "{report}");
    assert_eq!(positions_check["violations"], json!([]), "{report}");

    // A position changed behind the engine's back is named.
    let mut conn = app.conn();
    let sql = format!(
        "UPDATE positions SET realized_pnl = realized_pnl + 1 WHERE account_id = '{}'",
        alice.id
    );
    orderkeeper::with_conn!(conn, |c| diesel::RunQueryDsl::execute(
        diesel::sql_query(&sql),
        c
    ))
    .unwrap();
    let report = app.get(ADMIN_TOKEN, "/v1/admin/audit").await.json();
    let violations = check(&report, "positions_equal_fills")["violations"].clone();
    assert_eq!(violations.as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(violations[0]["account_id"], json!(alice.id), "{report}");
}
