use actix_web::http::StatusCode;
use diesel::prelude::*;
use orderkeeper::exchange::signature;
use orderkeeper::testing::db::schema::{alarms, exchange_events};
use serde_json::json;

use crate::helpers::*;

async fn push(app: &TestApp, body: &[u8], signature: Option<String>) -> Answer {
    let mut request = client()
        .post(app.url("/v1/exchange/events"))
        .insert_header(("Content-Type", "application/json"));
    if let Some(signature) = signature {
        request = request.insert_header(("X-Signature", signature));
    }
    let mut response = request.send_body(body.to_vec()).await.expect("answered");
    let bytes = response.body().limit(1 << 20).await.expect("body");
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        body: bytes.to_vec(),
    }
}

fn event(event_id: &str, cid: &str) -> Vec<u8> {
    json!({
        "event_id": event_id, "type": "fill", "client_order_id": cid, "exchange_order_id": "X1",
        "fill": {"fill_id": "F1", "qty": 1, "price": "1520.50", "ts": chrono::Utc::now().to_rfc3339()}
    })
    .to_string()
    .into_bytes()
}

#[actix_web::test]
async fn a_push_without_a_valid_signature_is_refused_and_not_recorded() {
    let app = spawn_app().await;
    let body = event("E1", "ok-x");
    let other = event("E2", "ok-x");

    let cases = [
        None,
        Some("sha256=".to_owned()),
        Some("sha256=00ff".to_owned()),
        Some(signature::sign("wrong-secret", &body)),
        Some(signature::sign(EXCHANGE_SECRET, &other)),
        Some(signature::sign(EXCHANGE_SECRET, &body).replace("sha256=", "sha1=")),
    ];
    for signature in cases {
        let answer = push(&app, &body, signature.clone()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{signature:?}");
        assert_eq!(answer.error_code(), "unauthorized");
    }
    let stored: i64 = orderkeeper::with_conn!(app.pool.get().unwrap(), |c| {
        exchange_events::table.count().get_result(c)
    })
    .unwrap();
    assert_eq!(stored, 0);
}

#[actix_web::test]
async fn a_signed_but_malformed_or_oversized_push_is_refused() {
    let app = spawn_app().await;
    for body in [
        b"{not json".to_vec(),
        br#"{"event_id":"E1"}"#.to_vec(),
        br#"{"event_id":"E1","type":"boom","client_order_id":"x"}"#.to_vec(),
    ] {
        let answer = push(&app, &body, Some(signature::sign(EXCHANGE_SECRET, &body))).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(answer.error_code(), "invalid_request");
    }
    let huge = vec![b' '; 70 * 1024];
    let answer = push(&app, &huge, Some(signature::sign(EXCHANGE_SECRET, &huge))).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[actix_web::test]
async fn a_valid_push_is_recorded_once_and_an_unknown_order_raises_an_alarm() {
    let app = spawn_app().await;
    let alice = app.create_account("100000.00", json!({})).await;
    let order = app
        .submit(&alice.token, Some("k"), &limit_buy("INFY", 5, "1.00"))
        .await
        .json();
    let cid = order["client_order_id"].as_str().unwrap();
    // An acknowledgement: harmless to the order, whatever the exchange itself says.
    let body = json!({"event_id": "E-known", "type": "accepted", "client_order_id": cid, "exchange_order_id": "X1"})
        .to_string()
        .into_bytes();

    let first = push(&app, &body, Some(signature::sign(EXCHANGE_SECRET, &body))).await;
    let again = push(&app, &body, Some(signature::sign(EXCHANGE_SECRET, &body))).await;
    assert_eq!(
        (first.status, again.status),
        (StatusCode::OK, StatusCode::OK)
    );
    assert_eq!(
        (
            first.json()["status"].as_str(),
            again.json()["status"].as_str()
        ),
        (Some("recorded"), Some("duplicate"))
    );

    let stranger = event("E-stranger", "ok-nobody");
    let unmatched = push(
        &app,
        &stranger,
        Some(signature::sign(EXCHANGE_SECRET, &stranger)),
    )
    .await;
    assert_eq!(unmatched.status, StatusCode::OK);
    assert_eq!(unmatched.json()["status"], "unmatched");

    let mut conn = app.pool.get().unwrap();
    // The embedded exchange pushes its own events for the order too; look only at ours.
    let recorded: Vec<(String, Option<String>)> = orderkeeper::with_conn!(conn, |c| {
        exchange_events::table
            .filter(exchange_events::event_id.eq_any(["E-known", "E-stranger"]))
            .order(exchange_events::event_id)
            .select((exchange_events::event_id, exchange_events::order_id))
            .load(c)
    })
    .unwrap();
    assert_eq!(
        recorded,
        vec![
            (
                "E-known".to_owned(),
                order["id"].as_str().map(str::to_owned)
            ),
            ("E-stranger".to_owned(), None)
        ]
    );
    let alarm_count: i64 = orderkeeper::with_conn!(conn, |c| {
        alarms::table
            .filter(alarms::kind.eq("unmatched_push_event"))
            .count()
            .get_result(c)
    })
    .unwrap();
    assert_eq!(alarm_count, 1);
}
