use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use orderkeeper::testing::db::{self, idempotency};
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
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut ready = loop {
        let ready = client().get(app.url("/readyz")).send().await.unwrap();
        if ready.status() == StatusCode::OK || Instant::now() > deadline {
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

/// The reaper as it runs, not its delete function: an expired key disappears on its own, and the
/// key then starts a new request.
#[actix_web::test]
async fn the_running_reaper_deletes_an_expired_key() {
    // Keys live 1 s; a 2 s outbox retention makes the reaper pass every second.
    let app = spawn_app_with(|args| {
        args.idempotency_ttl = 1;
        args.outbox_retention = 2;
    })
    .await;
    let alice = app.create_account("100000.00", json!({})).await;
    let body = limit_buy("INFY", 1, "10.00");
    let first = app.submit(&alice.token, Some("k"), &body).await.json();
    assert_eq!(app.count_idempotency_keys(), 1);
    let mut reaped = false;
    for _ in 0..300 {
        if app.count_idempotency_keys() == 0 {
            reaped = true;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reaped, "the expired key is still stored after 15 s");
    let again = app.submit(&alice.token, Some("k"), &body).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), None);
    assert_ne!(again.json()["id"], first["id"]);
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
        idempotency::delete_expired(&mut app.pool.get().unwrap(), db::now_micros(), i64::MAX)
            .unwrap();

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

/// Every series the engine registers, as `/metrics` names it.
const EVERY_METRIC: &[&str] = &[
    "orderkeeper_http_requests",
    "orderkeeper_orders_created",
    "orderkeeper_submit_batch_orders",
    "orderkeeper_status_batch_orders",
    "orderkeeper_fill_batch_pushes",
    "orderkeeper_idempotent_replays",
    "orderkeeper_idempotency_conflicts",
    "orderkeeper_idempotency_keys",
    "orderkeeper_fills",
    "orderkeeper_fills_duplicate",
    "orderkeeper_exchange_requests",
    "orderkeeper_exchange_retries",
    "orderkeeper_open_orders",
    "orderkeeper_outbox_pending",
    "orderkeeper_outbox_lag_seconds",
    "orderkeeper_ws_sessions",
    "orderkeeper_rehydration_seconds",
    "orderkeeper_recovery_actions",
    "orderkeeper_alarms",
    "orderkeeper_actor_restarts",
    "orderkeeper_order_steps",
    "orderkeeper_orders_taken_over",
    "orderkeeper_fenced_steps",
    "orderkeeper_broker_published",
    "orderkeeper_invariant_violations",
];

#[actix_web::test]
async fn every_metric_is_exported_from_start_up() {
    let app = spawn_app().await;
    let text = app.scrape().await;
    // The names the engine exports are exactly these, and each has a sample before anything
    // happened (a counter's `_total`, a histogram's `_count`, a gauge's value).
    let mut exported: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    exported.sort_unstable();
    let mut expected = EVERY_METRIC.to_vec();
    expected.sort_unstable();
    assert_eq!(exported, expected, "{text}");
    for name in EVERY_METRIC {
        let sampled = text.lines().any(|line| {
            !line.starts_with('#')
                && [
                    format!("{name}_total"),
                    format!("{name}_count"),
                    name.to_string(),
                ]
                .iter()
                .any(|series| {
                    line.strip_prefix(series.as_str())
                        .is_some_and(|rest| rest.starts_with([' ', '{']))
                })
        });
        assert!(sampled, "{name} has no sample at start-up:\n{text}");
    }
    for series in [
        "orderkeeper_idempotency_conflicts_total{kind=\"in_use\"} 0",
        "orderkeeper_fills_duplicate_total{source=\"push\"} 0",
        "orderkeeper_order_steps_total{reason=\"push\"} 0",
        "orderkeeper_fenced_steps_total 0",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
}

#[actix_web::test]
async fn metrics_count_orders_replays_conflicts_fills_and_requests() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let body = market("buy", "INFY", 6);
    let order = app.submit(&alice.token, Some("m"), &body).await.json();
    app.submit(&alice.token, Some("m"), &body).await;
    app.submit(&alice.token, Some("m"), &body).await;
    let reused = app
        .submit(&alice.token, Some("m"), &market("buy", "INFY", 7))
        .await;
    assert_eq!(reused.status, 422);
    let id = order["id"].as_str().unwrap();
    app.wait_for_status(&alice.token, id, "filled").await;

    let text = app.scrape().await;
    assert_eq!(
        sum_of(&text, "orderkeeper_orders_created_total", ""),
        1.0,
        "{text}"
    );
    assert!(
        sum_of(&text, "orderkeeper_idempotent_replays_total", "") >= 2.0,
        "{text}"
    );
    assert_eq!(
        sum_of(
            &text,
            "orderkeeper_idempotency_conflicts_total",
            "kind=\"reused\""
        ),
        1.0,
        "{text}"
    );
    assert!(
        sum_of(&text, "orderkeeper_idempotency_keys", "") >= 1.0,
        "{text}"
    );
    let recorded = app
        .get(&alice.token, &format!("/v1/orders/{id}/fills"))
        .await
        .json();
    assert_eq!(
        sum_of(&text, "orderkeeper_fills_total", ""),
        recorded.as_array().unwrap().len() as f64,
        "{text}"
    );
    assert_eq!(
        sum_of(
            &text,
            "orderkeeper_http_requests_total",
            "route=\"/v1/orders\",status=\"201\""
        ),
        3.0,
        "{text}"
    );
    // Counted by pattern, not by path: every order's reads land in one series.
    assert!(
        sum_of(
            &text,
            "orderkeeper_http_requests_total",
            "route=\"/v1/orders/{id}\",status=\"200\""
        ) >= 1.0,
        "{text}"
    );
    assert!(!text.contains(id), "no order id in a label: {text}");
    assert!(
        sum_of(
            &text,
            "orderkeeper_exchange_requests_total",
            "op=\"place\",outcome=\"ok\""
        ) >= 1.0,
        "{text}"
    );
    assert!(text.contains("orderkeeper_open_orders "), "{text}");
}

#[actix_web::test]
async fn duplicate_pushes_and_exchange_retries_are_counted() {
    let app = spawn_app().await;
    let faults = json!({"duplicate_rate": 1.0, "error_rate": 0.5});
    let answer = app
        .put_json("/v1/exchange/faults", ADMIN_TOKEN, &faults.to_string())
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    let alice = app.create_account("100000.00", json!({})).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let key = format!("dup-{i}");
        let order = app
            .submit(&alice.token, Some(&key), &market("buy", "INFY", 9))
            .await
            .json();
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        app.wait_for_status(&alice.token, id, "filled").await;
    }
    // Every push is sent at least twice; give the copies time to arrive.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = app.scrape().await;
        if sum_of(
            &text,
            "orderkeeper_fills_duplicate_total",
            "source=\"push\"",
        ) >= 1.0
            || Instant::now() > deadline
        {
            break text;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        sum_of(
            &text,
            "orderkeeper_fills_duplicate_total",
            "source=\"push\""
        ) >= 1.0,
        "{text}"
    );
    let unknown = sum_of(
        &text,
        "orderkeeper_exchange_requests_total",
        "outcome=\"unknown\"",
    );
    let retries = sum_of(&text, "orderkeeper_exchange_retries_total", "");
    assert!(retries >= 1.0, "{text}");
    assert!(
        unknown >= retries,
        "every retry follows an unknown outcome: {text}"
    );
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
        "time_in_force",
        "status",
        "filled_qty",
        "filled_avg_price",
        "created_at",
        "updated_at",
    ] {
        assert!(order[field].is_object(), "Order.{field}");
    }
    // An account's token and the admin token are schemes of their own, each route naming one.
    for scheme in ["account", "admin"] {
        assert_eq!(
            doc["components"]["securitySchemes"][scheme]["scheme"],
            "bearer"
        );
    }
    let scheme_of = |path: &str, method: &str| {
        let security = &doc["paths"][path][method]["security"][0];
        let names: Vec<String> = security
            .as_object()
            .map_or(Vec::new(), |o| o.keys().cloned().collect());
        names
    };
    for (path, method) in [
        ("/v1/admin/accounts", "post"),
        ("/v1/admin/audit", "get"),
        ("/v1/admin/accounts/{id}/limits", "put"),
        ("/v1/admin/accounts/{id}/trading", "put"),
        ("/v1/admin/trading", "put"),
        ("/v1/exchange/faults", "put"),
    ] {
        assert_eq!(scheme_of(path, method), ["admin"], "{method} {path}");
    }
    for (path, method) in [
        ("/v1/orders", "post"),
        ("/v1/orders/{id}", "patch"),
        ("/v1/orders", "delete"),
        ("/v1/balances", "get"),
        ("/v1/positions", "get"),
        ("/v1/trading", "get"),
    ] {
        assert_eq!(scheme_of(path, method), ["account"], "{method} {path}");
    }

    // Spelled as the API takes them, with the constraints the API holds requests to.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Side"]["enum"], json!(["buy", "sell"]));
    assert_eq!(
        schemas["OrderStatus"]["enum"].as_array().map(Vec::len),
        Some(10),
        "held among them"
    );
    assert_eq!(
        schemas["OrderType"]["enum"],
        json!(["limit", "market", "stop", "stop_limit"])
    );
    assert_eq!(
        schemas["TimeInForce"]["enum"],
        json!(["gtc", "day", "ioc", "fok"])
    );
    let shapes = schemas["OrderRequest"]["oneOf"]
        .as_array()
        .expect("two shapes");
    assert_eq!(shapes[0]["properties"]["qty"]["minimum"], 1);
    assert!(shapes[0]["properties"]["limit_price"]["pattern"].is_string());
    let key = &doc["paths"]["/v1/orders"]["post"]["parameters"][0];
    assert_eq!(key["schema"]["maxLength"], 255, "{key}");
    // Every operation that takes a token says 401, every one that reads a body 413 and 415.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let answers = &operation["responses"];
            if operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
            {
                assert!(answers["401"].is_object(), "{method} {path}: 401");
            }
            if operation["requestBody"].is_object() {
                for status in ["400", "413", "415"] {
                    assert!(answers[status].is_object(), "{method} {path}: {status}");
                }
            }
            // A generated client parses every JSON answer into a typed model: each has a schema.
            for (status, answer) in answers.as_object().unwrap() {
                if let Some(content) = answer["content"].as_object() {
                    for (media, body) in content {
                        if media.contains("json") {
                            assert!(
                                body["schema"].is_object(),
                                "{method} {path} {status}: {media} has no schema"
                            );
                        }
                    }
                } else if status.starts_with('2') {
                    assert!(
                        path == "/metrics" || path == "/v1/stream",
                        "{method} {path} {status}: no body described"
                    );
                }
            }
        }
    }
    let report = &schemas["AuditReport"]["properties"];
    for field in ["ok", "duration_ms", "checks"] {
        assert!(report[field].is_object(), "AuditReport.{field}");
    }
    assert!(schemas["Faults"]["properties"]["drop_rate"].is_object());
    assert!(schemas["Health"]["properties"]["recovery"].is_object());
}

#[actix_web::test]
async fn a_method_not_allowed_says_which_are() {
    let app = spawn_app().await;
    for (method, path, allowed) in [
        ("TRACE", "/v1/orders", "GET, POST, DELETE"),
        (
            "PUT",
            "/v1/orders/0190f5a2-0000-7000-8000-000000000000",
            "GET, PATCH, DELETE",
        ),
        ("POST", "/healthz", "GET"),
        ("DELETE", "/v1/exchange/faults", "GET, PUT"),
    ] {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut response = client()
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        let allow = response
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(allow.as_deref(), Some(allowed), "{method} {path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed");
    }
}
