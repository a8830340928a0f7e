use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;
use orderkeeper::config::{DuplicatePlacement, FaultArgs};
use orderkeeper::domain::{
    Cents, OrderRef, OrderToPlace, OrderType, ReplaceTerms, Side, VenueStatus,
};
use orderkeeper::exchange::client::RetryPolicy;
use orderkeeper::exchange::{ExchangeClient, ExchangeError, HttpExchange};
use serde_json::json;

use crate::helpers::*;

/// An order as the REST venue is asked about it: by its client order id alone.
fn named(client_order_id: &str) -> OrderRef<'_> {
    OrderRef {
        client_order_id,
        symbol: "INFY",
        side: Side::Buy,
    }
}

fn fast_client(url: &str) -> HttpExchange {
    // Many quick retries: at 80% failure per attempt, 60 retries leave about one chance in a
    // million that an order's outcome stays unknown.
    HttpExchange::new(url, Duration::from_secs(2)).with_retry(RetryPolicy {
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
        max_retries: 60,
    })
}

fn place_order(cid: &str) -> OrderToPlace {
    OrderToPlace {
        client_order_id: cid.to_owned(),
        symbol: "TCS".to_owned(),
        side: Side::Buy,
        order_type: OrderType::Limit,
        qty: 5,
        limit_price: Some(Cents(100)),
        time_in_force: Default::default(),
    }
}

#[actix_web::test]
async fn two_hundred_placements_through_lost_responses_and_503s_make_exactly_two_hundred_orders() {
    let faults = FaultArgs {
        lost_response_rate: 0.5,
        error_rate: 0.3,
        ..FaultArgs::default()
    };
    let seed = 2024;
    let sim = spawn_sim(faults, None, seed);
    let exchange = fast_client(&sim);
    let ids: Vec<String> = (0..200).map(|i| format!("ok-order-{i:03}")).collect();

    let mut outcomes = Vec::new();
    for batch in ids.chunks(20) {
        let orders: Vec<_> = batch.iter().map(|cid| place_order(cid)).collect();
        outcomes.extend(join_all(orders.iter().map(|o| exchange.place(o))).await);
    }

    for (cid, outcome) in ids.iter().zip(&outcomes) {
        let ack = outcome
            .as_ref()
            .unwrap_or_else(|e| panic!("seed {seed}: {cid}: {e}"));
        assert_eq!(&ack.client_order_id, cid);
        assert_eq!(ack.status, VenueStatus::New);
    }
    send_json(
        "PUT",
        &format!("{sim}/admin/faults"),
        &json!({"lost_response_rate": 0.0, "error_rate": 0.0}),
    )
    .await;
    let (_, held) = get_json(&format!("{sim}/orders")).await;
    let held = held.as_array().expect("a list").clone();
    assert_eq!(held.len(), 200, "seed {seed}");
    let distinct: HashSet<_> = held
        .iter()
        .map(|o| o["client_order_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(distinct, ids.into_iter().collect::<HashSet<_>>());
}

#[actix_web::test]
async fn lookups_and_cancels_survive_faults_and_tell_unknown_from_refused() {
    let faults = FaultArgs {
        lost_response_rate: 0.4,
        error_rate: 0.3,
        ..FaultArgs::default()
    };
    let sim = spawn_sim(faults, None, 77);
    let exchange = fast_client(&sim);

    assert_eq!(exchange.order(named("ok-nobody")).await, Ok(None));
    let ack = exchange.place(&place_order("ok-a")).await.expect("placed");
    let seen = exchange
        .order(named("ok-a"))
        .await
        .expect("looked up")
        .expect("known");
    assert_eq!(seen.venue_order_id, ack.venue_order_id);
    let canceled = exchange.cancel(named("ok-a")).await.expect("canceled");
    assert_eq!(canceled.status, VenueStatus::Canceled);
    let tomb = exchange
        .cancel(named("ok-never-placed"))
        .await
        .expect("tombstoned");
    assert_eq!((tomb.status, tomb.filled_qty), (VenueStatus::Canceled, 0));

    // Nothing listening: the outcome is unknown, never a refusal.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let nowhere = HttpExchange::new(
        &format!("http://127.0.0.1:{closed}"),
        Duration::from_millis(200),
    )
    .with_retry(RetryPolicy {
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        max_retries: 2,
    });
    assert!(matches!(
        nowhere.place(&place_order("ok-b")).await,
        Err(ExchangeError::Unknown(_))
    ));
}

#[actix_web::test]
async fn a_malformed_placement_is_a_definitive_refusal() {
    let sim = spawn_sim(FaultArgs::default(), None, 5);
    // The simulator refuses a body it cannot read with 400: no retry can change that.
    let (status, _) = send_json(
        "POST",
        &format!("{sim}/orders"),
        &json!({"client_order_id": "x"}),
    )
    .await;
    assert_eq!(status, 400);
    let exchange = fast_client(&sim);
    let unknown_symbol = OrderToPlace {
        symbol: "NOPE".into(),
        ..place_order("ok-c")
    };
    let ack = exchange.place(&unknown_symbol).await.expect("answered");
    assert_eq!(ack.status, VenueStatus::Rejected);
}

#[actix_web::test]
async fn a_409_after_a_lost_placement_is_never_taken_for_a_refusal() {
    let faults = FaultArgs {
        lost_response_rate: 0.5,
        duplicate_placement: DuplicatePlacement::Conflict,
        ..FaultArgs::default()
    };
    let sim = spawn_sim(faults, None, 9);
    let exchange = fast_client(&sim);
    let orders: Vec<OrderToPlace> = (0..60)
        .map(|i| place_order(&format!("ok-dup-{i}")))
        .collect();

    let outcomes = join_all(orders.iter().map(|o| exchange.place(o))).await;

    let ambiguous = outcomes
        .iter()
        .filter(|o| matches!(o, Err(ExchangeError::AmbiguousRefusal(_))))
        .count();
    assert!(
        ambiguous > 0,
        "some placements were lost and then refused as duplicates"
    );
    for outcome in &outcomes {
        assert!(
            !matches!(outcome, Err(ExchangeError::Refused(_))),
            "a 409 after a lost placement is no refusal: {outcome:?}"
        );
    }
    // The venue holds every order, whatever the client was told.
    send_json(
        "PUT",
        &format!("{sim}/admin/faults"),
        &json!({"lost_response_rate": 0.0}),
    )
    .await;
    let (_, held) = get_json(&format!("{sim}/orders")).await;
    assert_eq!(held.as_array().map(Vec::len), Some(60));
}

#[actix_web::test]
async fn a_replace_through_lost_responses_and_503s_takes_effect_once_and_too_late_is_an_answer() {
    let faults = FaultArgs {
        lost_response_rate: 0.4,
        error_rate: 0.3,
        ..FaultArgs::default()
    };
    let sim = spawn_sim(faults, None, 91);
    let exchange = fast_client(&sim);
    exchange.place(&place_order("ok-r")).await.expect("placed");
    let terms = |id: &str, qty| ReplaceTerms {
        new_client_order_id: id.to_owned(),
        qty,
        limit_price: Some(Cents(90)),
    };
    let replaced = exchange
        .replace(named("ok-r"), &terms("ok-r-v2", 8))
        .await
        .expect("replaced");
    assert_eq!(
        (
            replaced.client_order_id.as_str(),
            replaced.qty,
            replaced.status
        ),
        ("ok-r-v2", 8, VenueStatus::New)
    );
    // A repeat (a lost answer retried) is answered the same; the old id finds the new version.
    let again = exchange.replace(named("ok-r"), &terms("ok-r-v2", 8)).await;
    assert_eq!(again, Ok(replaced.clone()));
    assert_eq!(exchange.order(named("ok-r")).await, Ok(Some(replaced)));
    let canceled = exchange.cancel(named("ok-r-v2")).await.expect("canceled");
    assert_eq!(canceled.status, VenueStatus::Canceled);
    // Too late is the exchange's answer when no attempt was lost before it; after a lost one it
    // is no answer at all.
    match exchange
        .replace(named("ok-r-v2"), &terms("ok-r-v3", 9))
        .await
    {
        Err(ExchangeError::Refused(why)) => assert!(why.contains("too_late"), "{why}"),
        Err(ExchangeError::AmbiguousRefusal(_)) => {}
        other => panic!("a replace of a cancelled order: {other:?}"),
    }
    send_json(
        "PUT",
        &format!("{sim}/admin/faults"),
        &json!({"lost_response_rate": 0.0, "error_rate": 0.0}),
    )
    .await;
    let (_, held) = get_json(&format!("{sim}/orders")).await;
    assert_eq!(held.as_array().map(Vec::len), Some(1), "one order: {held}");
    assert_eq!(held[0]["client_order_id"], "ok-r-v2");
    assert_eq!(held[0]["qty"], 8);
}
