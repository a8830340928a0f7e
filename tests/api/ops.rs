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
    // Ready once recovery has looked at every open order (none here): at once, or nearly.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut ready = loop {
        let ready = client().get(app.url("/readyz")).send().await.unwrap();
        if ready.status() == StatusCode::OK || std::time::Instant::now() > deadline {
            break ready;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    };
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

#[actix_web::test]
async fn metrics_count_orders_replays_and_fills() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let body = market("buy", "INFY", 6);
    let order = app.submit(&alice.token, Some("m"), &body).await.json();
    app.submit(&alice.token, Some("m"), &body).await;
    app.wait_for_status(&alice.token, order["id"].as_str().unwrap(), "filled")
        .await;

    let mut response = client().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
    assert!(
        text.contains("orderkeeper_orders_created_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains("orderkeeper_idempotent_replays_total 1\n"),
        "{text}"
    );
    let fills: u64 = text
        .lines()
        .filter(|l| l.starts_with("orderkeeper_fills_recorded_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    let recorded = app
        .get(
            &alice.token,
            &format!("/v1/orders/{}/fills", order["id"].as_str().unwrap()),
        )
        .await
        .json();
    assert_eq!(fills, recorded.as_array().unwrap().len() as u64, "{text}");
    assert!(text.contains("orderkeeper_live_order_actors "), "{text}");
}

#[actix_web::test]
async fn the_api_is_described_at_openapi_json() {
    let app = spawn_app().await;
    let mut response = client().get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: serde_json::Value = response.json().limit(1 << 20).await.unwrap();

    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (path, method) in [
        ("/v1/orders", "post"),
        ("/v1/orders", "get"),
        ("/v1/orders/{id}", "delete"),
        ("/v1/orders/{id}/fills", "get"),
        ("/v1/balances", "get"),
        ("/v1/admin/accounts", "post"),
        ("/v1/exchange/events", "post"),
        ("/v1/stream", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is described"
        );
    }
    let order = &doc["components"]["schemas"]["Order"]["properties"];
    for field in [
        "id",
        "client_order_id",
        "symbol",
        "side",
        "type",
        "qty",
        "limit_price",
        "status",
        "filled_qty",
        "filled_avg_price",
        "created_at",
        "updated_at",
    ] {
        assert!(order[field].is_object(), "Order.{field}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}
