use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// Checks that cash and every position add up to `cash` and `shares`, and that the stored balances
/// equal the sum of the ledger's entries.
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
    // Every price is far from the market, so nothing fills and only reservations move.
    let bodies = [
        limit_buy("INFY", 10, "1000.00"),
        limit_buy("TCS", 3, "2000.00"),
        limit_sell("INFY", 15, "5000.00"),
        limit_sell("TCS", 5, "9000.00"),
        limit_buy("SBIN", 40, "500.00"),
        limit_buy("RELIANCE", 100, "2000.00"), // refused: not enough cash
        limit_sell("INFY", 6, "5000.00"),      // refused: only 5 INFY left unreserved
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
    assert_eq!(reserved["cash"]["reserved"], "36000.00");
    assert_eq!(reserved["positions"]["INFY"]["reserved"], 15);

    for id in &open {
        app.cancel_and_wait(&alice.token, id).await;
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

#[actix_web::test]
async fn fills_move_exactly_their_value_and_release_the_rest() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({"TCS": 10})).await;
    // Marketable: a buy limit far above the market, a market sell, a market buy.
    let bodies = [
        limit_buy("INFY", 5, "9999.00"),
        market("sell", "TCS", 7),
        market("buy", "SBIN", 9),
    ];
    let mut ids = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let answer = app.submit(&alice.token, Some(&format!("f{i}")), body).await;
        assert_eq!(answer.status, StatusCode::CREATED);
        ids.push(answer.json()["id"].as_str().unwrap().to_owned());
    }

    let mut cash = 10_000_000;
    let mut shares = std::collections::BTreeMap::from([("INFY", 0), ("TCS", 10), ("SBIN", 0)]);
    for (id, (symbol, sign)) in ids.iter().zip([("INFY", 1), ("TCS", -1), ("SBIN", 1)]) {
        let order = app.wait_for_status(&alice.token, id, "filled").await;
        let fills = app
            .get(&alice.token, &format!("/v1/orders/{id}/fills"))
            .await
            .json();
        let fills = fills.as_array().unwrap();
        let qty: i64 = fills.iter().map(|f| f["qty"].as_i64().unwrap()).sum();
        let value: i64 = fills
            .iter()
            .map(|f| f["qty"].as_i64().unwrap() * cents(&f["price"]))
            .sum();
        assert_eq!(qty, order["qty"].as_i64().unwrap());
        assert_eq!(order["filled_qty"], order["qty"]);
        cash -= sign * value;
        *shares.get_mut(symbol).unwrap() += sign * qty;
    }
    let end = app.balances(&alice.token).await;
    assert_eq!(cents(&end["cash"]["available"]), cash);
    assert_eq!(end["cash"]["reserved"], "0.00");
    for (symbol, qty) in shares {
        assert_eq!(
            end["positions"][symbol],
            json!({"available": qty, "reserved": 0}),
            "{symbol}"
        );
    }
    assert_eq!(app.stored_balances(&alice.id), app.ledger_sums(&alice.id));
    let seqs = app.event_seqs(&alice.id);
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "event seqs have no gap"
    );
}
