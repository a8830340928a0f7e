use std::time::Duration;

use actix_web::http::StatusCode;
use orderkeeper::db::{self, idempotency};
use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn health_and_readiness_answer_json() {
    let app = spawn_app().await;
    let health = client()
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    for field in ["live_order_actors", "outbox_lag_ms", "alarms_raised"] {
        assert!(health[field].is_number(), "{field} in {health}");
    }
    let mut ready = client().get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );
}

#[actix_web::test]
async fn the_reaper_deletes_expired_keys_only() {
    let app = spawn_app_with(|args| args.idempotency_ttl = 1).await;
    let alice = app.create_account("100000.00", json!({})).await;
    app.submit(&alice.token, Some("old"), &limit_buy("INFY", 1, "10.00"))
        .await;
    actix_web::rt::time::sleep(Duration::from_millis(1100)).await;
    app.submit(&alice.token, Some("young"), &limit_buy("INFY", 1, "10.00"))
        .await;

    let deleted =
        idempotency::delete_expired(&mut app.pool.get().unwrap(), db::now_micros()).unwrap();

    assert_eq!(deleted, 1);
    assert_eq!(app.count_idempotency_keys(), 1);
    let replay = app
        .submit(&alice.token, Some("young"), &limit_buy("INFY", 1, "10.00"))
        .await;
    assert_eq!(
        replay.header("idempotent-replayed").as_deref(),
        Some("true")
    );
}
