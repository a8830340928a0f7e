use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

fn cents(text: &Value) -> i64 {
    let text = text.as_str().expect("a money string");
    let (whole, frac) = text.split_once('.').expect("two decimals");
    whole.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap()
}

/// Checks that cash and every position add up to what the account opened with, and that the
/// stored balances equal the sum of the ledger's entries.
async fn assert_conserved(app: &TestApp, account: &Account, cash: i64, shares: &[(&str, i64)]) {
    let balances = app.balances(&account.token).await;
    assert_eq!(
        cents(&balances["cash"]["available"]) + cents(&balances["cash"]["reserved"]),
        cash
    );
    for (symbol, qty) in shares {
        let position = &balances["positions"][symbol];
        assert_eq!(
            position["available"].as_i64().unwrap() + position["reserved"].as_i64().unwrap(),
            *qty
        );
    }
    assert_eq!(
        app.stored_balances(&account.id),
        app.ledger_sums(&account.id)
    );
}

#[actix_web::test]
async fn cash_and_shares_are_conserved_through_reservations_and_releases() {
    let app = spawn_app().await;
    let alice = app
        .create_account("100000.00", json!({"INFY": 20, "TCS": 5}))
        .await;
    let opening_cash = 10_000_000;
    let shares = [("INFY", 20), ("TCS", 5)];
    let bodies = [
        limit_buy("INFY", 10, "1520.50"),
        market("buy", "TCS", 3),
        limit_sell("INFY", 15, "1600.00"),
        market("sell", "TCS", 5),
        limit_buy("SBIN", 40, "780.05"),
        limit_buy("RELIANCE", 100, "2450.00"), // refused: not enough cash
        limit_sell("INFY", 6, "1.00"),         // refused: only 5 INFY left unreserved
    ];
    let mut open = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let answer = app.submit(&alice.token, Some(&format!("k{i}")), body).await;
        if answer.status == StatusCode::CREATED {
            open.push(answer.json()["id"].as_str().unwrap().to_owned());
        }
        assert_conserved(&app, &alice, opening_cash, &shares).await;
    }
    assert_eq!(open.len(), 5);
    let reserved = app.balances(&alice.token).await;
    assert!(cents(&reserved["cash"]["reserved"]) > 0);
    assert_eq!(reserved["positions"]["INFY"]["reserved"], 15);

    for id in &open {
        assert_eq!(
            app.delete(&alice.token, &format!("/v1/orders/{id}"))
                .await
                .status,
            StatusCode::ACCEPTED
        );
        assert_conserved(&app, &alice, opening_cash, &shares).await;
    }
    let end = app.balances(&alice.token).await;
    assert_eq!(
        end["cash"],
        json!({"available": "100000.00", "reserved": "0.00"})
    );
    assert_eq!(
        end["positions"]["INFY"],
        json!({"available": 20, "reserved": 0})
    );
    assert_eq!(
        end["positions"]["TCS"],
        json!({"available": 5, "reserved": 0})
    );
}
