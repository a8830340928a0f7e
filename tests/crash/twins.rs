//! Two processes started under one engine id: the second refuses to start, naming the holder,
//! while the first carries on; and a restart after a crash gets its id back at once.

use std::time::Duration;

use serde_json::json;

use crate::processes::{self, Engine, Simulator};

#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[actix_web::test]
async fn a_second_process_under_a_live_engine_id_refuses_to_start() {
    crate::database::require_postgres();
    let dir = tempfile::tempdir().expect("temp dir");
    let (first_port, twin_port) = (processes::free_port(), processes::free_port());
    let sim = Simulator::start(first_port, 3, false);
    let id = ["--engine-id", "the-same-id"];
    let mut first = Engine::start_sharing(dir.path(), first_port, &sim.url(), &id);
    let (_, token) = first.open_account("t", "1000.00").await;

    let mut twin = Engine::start_sharing(dir.path(), twin_port, &sim.url(), &id);
    assert!(
        twin.exited_within(Duration::from_secs(20)).await,
        "the twin is still running"
    );
    let said = std::fs::read_to_string(twin.log_path()).unwrap_or_default();
    assert!(said.contains("is held by another live process"), "{said}");
    assert!(
        said.contains("orderkeeper the-same-id"),
        "the holder is named: {said}"
    );

    // The first carries on alone.
    let body = json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 1, "limit_price": "100.00"});
    let (status, order) = first.submit(&token, "after-the-twin", &body).await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().expect("id").to_owned();
    first.wait_for_status(&token, &id, "new").await;

    // Killed, it starts again under its id at once: the dead session's lock went with it.
    first.kill();
    first.restart().await;
    let answer = first.delete(&token, &format!("/v1/orders/{id}")).await;
    assert!(matches!(answer, Some((202, _))), "{answer:?}");
    first.wait_for_status(&token, &id, "canceled").await;
}
