//! A replace whose answer dies with the engine: the venue took the new terms, and the engine was
//! killed before it heard so. Restarted, it sends the replace again, the venue answers it the same,
//! and the order goes on under the new terms with exactly what they need held.

use serde_json::json;

use crate::processes::{self, Engine, Simulator};

#[actix_web::test]
async fn a_replace_taken_by_the_venue_as_the_engine_died_is_learned_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = processes::free_port();
    let sim = Simulator::start(port, 7, false);
    let mut engine = Engine::start(dir.path(), port, &sim.venue());
    let (_, token) = engine.open_account("alice", "100000.00").await;
    let far = json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 10, "limit_price": "10.00"});
    let (_, order) = engine.submit(&token, "buy", &far).await;
    let id = order["id"].as_str().unwrap().to_owned();
    engine.wait_for_status(&token, &id, "new").await;

    // The next start dies the moment the venue has answered its replace.
    engine.kill();
    engine.arm_next_start("exchange.after_replace=return");
    engine.restart().await;
    let (status, answer) = processes::patch(
        &engine.url(),
        &token,
        &format!("/v1/orders/{id}"),
        "raise",
        &json!({"qty": 20, "limit_price": "12.00"}),
    )
    .await
    .expect("answered before the crash");
    assert_eq!(status, 202, "{answer}");
    assert!(
        engine
            .exited_within(std::time::Duration::from_secs(30))
            .await,
        "the engine never sent the replace"
    );
    let at_venue = sim.orders().await;
    assert_eq!(at_venue[0]["qty"], 20, "the venue took it: {at_venue:?}");

    engine.restart().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let replaced = loop {
        let order = engine.get(&token, &format!("/v1/orders/{id}")).await;
        if order["version"] == 2 {
            break order;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never replaced: {order}"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        (
            replaced["status"].clone(),
            replaced["qty"].clone(),
            replaced["limit_price"].clone()
        ),
        (json!("new"), json!(20), json!("12.00"))
    );
    let (_, kinds) = engine.actions(&token, &id).await;
    assert_eq!(
        kinds,
        [
            "created",
            "placement_sent",
            "accepted",
            "replace_requested",
            "replaced"
        ],
        "each recorded once, before and after the crash"
    );
    assert_eq!(sim.orders().await.len(), 1, "one order at the venue");
    let balances = engine.get(&token, "/v1/balances").await;
    assert_eq!(
        balances["cash"],
        json!({"available": "99760.00", "reserved": "240.00"})
    );
}
