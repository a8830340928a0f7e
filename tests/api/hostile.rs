//! Hostile input: what a broken or malicious client sends to the API, the push endpoint and the live
//! feed. Each case expects a precise answer; afterwards the process is still up and no cash, share,
//! order or key has moved.

use std::time::Duration;

use actix_web::http::StatusCode;
use awc::ws;
use futures_util::SinkExt;
use orderkeeper::exchange::signature;
use serde_json::json;

use crate::feed_client::{self, Next};
use crate::helpers::*;

const GOOD: &str =
    r#"{"symbol":"INFY","side":"buy","type":"limit","qty":1,"limit_price":"100.00"}"#;

/// How a case authenticates.
#[derive(Clone, Copy)]
enum Auth {
    Customer,
    Admin,
    Raw(&'static str),
    None,
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    auth: Auth,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: StatusCode,
    /// The error code the answer must carry (None: only the status is checked).
    code: Option<&'static str>,
}

/// `POST /v1/orders` with a fresh key and a JSON content type, carrying `body`.
fn order(
    name: &'static str,
    body: impl Into<Vec<u8>>,
    status: StatusCode,
    code: &'static str,
) -> Case {
    Case {
        name,
        method: "POST",
        path: "/v1/orders".into(),
        auth: Auth::Customer,
        headers: vec![
            ("Content-Type", "application/json".into()),
            ("Idempotency-Key", format!("hostile-{name}")),
        ],
        body: body.into(),
        status,
        code: Some(code),
    }
}

fn with_headers(mut case: Case, headers: Vec<(&'static str, String)>) -> Case {
    case.headers = headers;
    case
}

fn request(
    name: &'static str,
    method: &'static str,
    path: &str,
    auth: Auth,
    status: StatusCode,
    code: Option<&'static str>,
) -> Case {
    Case {
        name,
        method,
        path: path.into(),
        auth,
        headers: Vec::new(),
        body: Vec::new(),
        status,
        code,
    }
}

/// A request with a JSON body.
fn json_request(
    name: &'static str,
    method: &'static str,
    path: &str,
    auth: Auth,
    status: StatusCode,
    code: Option<&'static str>,
    body: &[u8],
) -> Case {
    Case {
        headers: vec![("Content-Type", "application/json".into())],
        body: body.to_vec(),
        ..request(name, method, path, auth, status, code)
    }
}

fn body(fields: &str) -> String {
    format!("{{{fields}}}")
}

fn http_cases() -> Vec<Case> {
    use StatusCode as S;
    let bad = S::BAD_REQUEST;
    let json_type = || ("Content-Type", "application/json".to_string());
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    vec![
        order("malformed_json", "{\"symbol\":", bad, "invalid_request"),
        order("empty_body", "", bad, "invalid_request"),
        order("json_null", "null", bad, "invalid_request"),
        order("json_array", "[1,2]", bad, "invalid_request"),
        order("nested_ten_thousand_deep", nested, bad, "invalid_request"),
        order(
            "invalid_utf8",
            b"{\"symbol\":\"IN\xff\xfeFY\"}".to_vec(),
            bad,
            "invalid_request",
        ),
        order(
            "qty_as_string",
            body(r#""symbol":"INFY","side":"buy","type":"market","qty":"1""#),
            bad,
            "invalid_request",
        ),
        order(
            "qty_fractional",
            body(r#""symbol":"INFY","side":"buy","type":"market","qty":1.5"#),
            bad,
            "invalid_request",
        ),
        order(
            "qty_beyond_i64",
            body(r#""symbol":"INFY","side":"buy","type":"market","qty":99999999999999999999"#),
            bad,
            "invalid_request",
        ),
        order(
            "qty_over_the_cap",
            body(r#""symbol":"INFY","side":"buy","type":"market","qty":1000000001"#),
            bad,
            "invalid_request",
        ),
        order(
            "price_with_exponent",
            body(r#""symbol":"INFY","side":"buy","type":"limit","qty":1,"limit_price":"1e3""#),
            bad,
            "invalid_request",
        ),
        order(
            "price_with_spaces",
            body(r#""symbol":"INFY","side":"buy","type":"limit","qty":1,"limit_price":" 100.00""#),
            bad,
            "invalid_request",
        ),
        order(
            "price_beyond_i64",
            body(
                r#""symbol":"INFY","side":"buy","type":"limit","qty":1,"limit_price":"999999999999999999999.00""#,
            ),
            bad,
            "invalid_request",
        ),
        order(
            "value_overflows",
            body(
                r#""symbol":"INFY","side":"buy","type":"limit","qty":1000000000,"limit_price":"92233720368547758.07""#,
            ),
            bad,
            "invalid_request",
        ),
        order(
            "side_upper_case",
            body(r#""symbol":"INFY","side":"BUY","type":"market","qty":1"#),
            bad,
            "invalid_request",
        ),
        order(
            "symbol_lower_case",
            body(r#""symbol":"infy","side":"buy","type":"market","qty":1"#),
            bad,
            "invalid_request",
        ),
        order(
            "symbol_homoglyph",
            body("\"symbol\":\"\u{406}NFY\",\"side\":\"buy\",\"type\":\"market\",\"qty\":1"),
            bad,
            "invalid_request",
        ),
        order(
            "symbol_with_nul",
            body(r#""symbol":"INFY\u0000","side":"buy","type":"market","qty":1"#),
            bad,
            "invalid_request",
        ),
        order(
            "symbol_sql",
            body(r#""symbol":"INFY'; DROP TABLE orders;--","side":"buy","type":"market","qty":1"#),
            bad,
            "invalid_request",
        ),
        order(
            "symbol_unlisted",
            body(r#""symbol":"ZZZZ","side":"buy","type":"market","qty":1"#),
            S::UNPROCESSABLE_ENTITY,
            "unknown_symbol",
        ),
        order(
            "buy_beyond_cash",
            body(
                r#""symbol":"INFY","side":"buy","type":"limit","qty":1000000,"limit_price":"100.00""#,
            ),
            S::UNPROCESSABLE_ENTITY,
            "insufficient_funds",
        ),
        order(
            "sell_beyond_shares",
            body(r#""symbol":"INFY","side":"sell","type":"market","qty":11"#),
            S::UNPROCESSABLE_ENTITY,
            "insufficient_position",
        ),
        order(
            "body_over_64_kib",
            format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000)),
            S::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        with_headers(
            order(
                "no_content_type",
                GOOD,
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            vec![("Idempotency-Key", "k-type".into())],
        ),
        with_headers(
            order(
                "content_type_text",
                GOOD,
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            vec![
                ("Content-Type", "text/plain".into()),
                ("Idempotency-Key", "k-text".into()),
            ],
        ),
        with_headers(
            order("no_idempotency_key", GOOD, bad, "idempotency_key_missing"),
            vec![json_type()],
        ),
        with_headers(
            order(
                "empty_idempotency_key",
                GOOD,
                bad,
                "invalid_idempotency_key",
            ),
            vec![json_type(), ("Idempotency-Key", String::new())],
        ),
        with_headers(
            order(
                "idempotency_key_256_chars",
                GOOD,
                bad,
                "invalid_idempotency_key",
            ),
            vec![json_type(), ("Idempotency-Key", "k".repeat(256))],
        ),
        with_headers(
            order(
                "idempotency_key_with_space",
                GOOD,
                bad,
                "invalid_idempotency_key",
            ),
            vec![json_type(), ("Idempotency-Key", "a b".into())],
        ),
        with_headers(
            order("two_idempotency_keys", GOOD, bad, "invalid_idempotency_key"),
            vec![
                json_type(),
                ("Idempotency-Key", "a".into()),
                ("Idempotency-Key", "b".into()),
            ],
        ),
        Case {
            auth: Auth::None,
            ..order("no_token", GOOD, S::UNAUTHORIZED, "unauthorized")
        },
        Case {
            auth: Auth::Raw("Bearer"),
            ..order(
                "bearer_without_token",
                GOOD,
                S::UNAUTHORIZED,
                "unauthorized",
            )
        },
        Case {
            auth: Auth::Raw("Basic YWRtaW46YWRtaW4="),
            ..order("basic_auth", GOOD, S::UNAUTHORIZED, "unauthorized")
        },
        Case {
            auth: Auth::Raw("Bearer 00000000000000000000000000000000.forged"),
            ..order("forged_token", GOOD, S::UNAUTHORIZED, "unauthorized")
        },
        Case {
            auth: Auth::Admin,
            ..order(
                "admin_token_is_not_an_account",
                GOOD,
                S::UNAUTHORIZED,
                "unauthorized",
            )
        },
        request(
            "list_limit_not_a_number",
            "GET",
            "/v1/orders?limit=ten",
            Auth::Customer,
            bad,
            Some("invalid_request"),
        ),
        request(
            "list_limit_zero",
            "GET",
            "/v1/orders?limit=0",
            Auth::Customer,
            bad,
            Some("invalid_request"),
        ),
        request(
            "list_status_unknown",
            "GET",
            "/v1/orders?status=everything",
            Auth::Customer,
            bad,
            Some("invalid_request"),
        ),
        request(
            "order_id_path_traversal",
            "GET",
            "/v1/orders/..%2F..%2Fetc%2Fpasswd",
            Auth::Customer,
            S::NOT_FOUND,
            Some("not_found"),
        ),
        request(
            "order_id_not_a_uuid",
            "DELETE",
            "/v1/orders/42",
            Auth::Customer,
            S::NOT_FOUND,
            Some("not_found"),
        ),
        request(
            "order_id_unknown",
            "GET",
            "/v1/orders/01a20d28-c4b7-72f0-ab3a-9a998c9dda34/fills",
            Auth::Customer,
            S::NOT_FOUND,
            Some("not_found"),
        ),
        request(
            "method_not_allowed",
            "PUT",
            "/v1/orders",
            Auth::Customer,
            S::METHOD_NOT_ALLOWED,
            Some("method_not_allowed"),
        ),
        request(
            "unknown_route",
            "GET",
            "/v1/../../admin",
            Auth::Customer,
            S::NOT_FOUND,
            Some("not_found"),
        ),
        json_request(
            "customer_creates_an_account",
            "POST",
            "/v1/admin/accounts",
            Auth::Customer,
            S::UNAUTHORIZED,
            Some("unauthorized"),
            br#"{"name":"mallory","cash":"100.00"}"#,
        ),
        json_request(
            "account_with_negative_cash",
            "POST",
            "/v1/admin/accounts",
            Auth::Admin,
            bad,
            Some("invalid_request"),
            br#"{"name":"mallory","cash":"-100.00"}"#,
        ),
        json_request(
            "account_with_negative_shares",
            "POST",
            "/v1/admin/accounts",
            Auth::Admin,
            bad,
            Some("invalid_request"),
            br#"{"name":"mallory","cash":"1.00","positions":{"INFY":-5}}"#,
        ),
        json_request(
            "fault_rate_above_one",
            "PUT",
            "/v1/exchange/faults",
            Auth::Admin,
            bad,
            Some("invalid_request"),
            br#"{"drop_rate":2}"#,
        ),
    ]
}

/// Pushes that are not the exchange, or not a well-formed event: (name, body, signature, status).
fn push_cases() -> Vec<(&'static str, Vec<u8>, Option<String>, StatusCode)> {
    let event = |body: &str| body.as_bytes().to_vec();
    let signed = |body: &[u8]| Some(signature::sign(EXCHANGE_SECRET, body));
    let fill = br#"{"event_id":"E1","type":"fill","client_order_id":"ok-x","exchange_order_id":"X","fill":{"fill_id":"F","qty":5,"price":"1.00","ts":"t"}}"#;
    let malformed = event("{\"event_id\":");
    let bad_type = event(
        r#"{"event_id":"E2","type":"explode","client_order_id":"ok-x","exchange_order_id":null}"#,
    );
    let bad_qty = event(
        r#"{"event_id":"E3","type":"fill","client_order_id":"ok-x","exchange_order_id":"X","fill":{"fill_id":"F","qty":"5","price":"1.00","ts":"t"}}"#,
    );
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000)).into_bytes();
    vec![
        (
            "push_unsigned",
            fill.to_vec(),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "push_signed_with_another_secret",
            fill.to_vec(),
            Some(signature::sign("guess", fill)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "push_signature_of_another_body",
            fill.to_vec(),
            signed(b"{}"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "push_malformed",
            malformed.clone(),
            signed(&malformed),
            StatusCode::BAD_REQUEST,
        ),
        (
            "push_unknown_type",
            bad_type.clone(),
            signed(&bad_type),
            StatusCode::BAD_REQUEST,
        ),
        (
            "push_qty_as_string",
            bad_qty.clone(),
            signed(&bad_qty),
            StatusCode::BAD_REQUEST,
        ),
        (
            "push_for_an_unknown_order",
            fill.to_vec(),
            signed(fill),
            StatusCode::OK,
        ),
        (
            "push_over_64_kib",
            huge.clone(),
            signed(&huge),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ]
}

async fn send(app: &TestApp, token: &str, case: &Case) -> Answer {
    let method = awc::http::Method::from_bytes(case.method.as_bytes()).unwrap();
    let mut request = client().request(method, app.url(&case.path));
    let authorization = match case.auth {
        Auth::Customer => Some(format!("Bearer {token}")),
        Auth::Admin => Some(format!("Bearer {ADMIN_TOKEN}")),
        Auth::Raw(value) => Some(value.to_owned()),
        Auth::None => None,
    };
    if let Some(value) = authorization {
        request = request.insert_header(("Authorization", value));
    }
    for (name, value) in &case.headers {
        request = request.append_header((*name, value.as_str()));
    }
    let mut response = request
        .send_body(case.body.clone())
        .await
        .unwrap_or_else(|e| panic!("{}: no answer: {e}", case.name));
    let body = response.body().limit(1 << 20).await.unwrap();
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        body: body.to_vec(),
    }
}

#[actix_web::test]
async fn hostile_requests_get_precise_answers_and_move_nothing() {
    let app = spawn_app().await;
    let alice = app.create_account("1000.00", json!({"INFY": 10})).await;
    let opening = app.balances(&alice.token).await;
    let mut cases = 0;

    for case in http_cases() {
        let answer = send(&app, &alice.token, &case).await;
        assert_eq!(
            answer.status,
            case.status,
            "{}: {:?}",
            case.name,
            String::from_utf8_lossy(&answer.body)
        );
        if let Some(code) = case.code {
            assert_eq!(answer.error_code(), code, "{}", case.name);
        }
        cases += 1;
    }
    for (name, body, signature, status) in push_cases() {
        let mut request = client()
            .post(app.url("/v1/exchange/events"))
            .insert_header(("Content-Type", "application/json"));
        if let Some(signature) = signature {
            request = request.insert_header(("X-Signature", signature));
        }
        let answered = request.send_body(body).await.expect("answered").status();
        assert_eq!(answered, status, "{name}");
        cases += 1;
    }
    cases += hostile_feed_clients(&app, &alice.token).await;
    // The README names this count: a case dropped or added shows here.
    assert_eq!(cases, 61, "{cases} cases");

    // Still up, and nothing moved.
    let health = client()
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(health, StatusCode::OK);
    assert_eq!(app.count_orders(), 0);
    assert_eq!(app.balances(&alice.token).await, opening);
    // Business refusals are kept under their key (the contract says so); nothing else is.
    assert_eq!(app.count_idempotency_keys(), 2);
    assert_eq!(app.stored_balances(&alice.id), app.ledger_sums(&alice.id));
}

/// WebSocket clients that misbehave before or after they authenticate; returns how many.
async fn hostile_feed_clients(app: &TestApp, token: &str) -> usize {
    let closes_with =
        |code: u16| move |next: Next| matches!(next, Next::Closed(Some(c)) if c == code);
    let first_messages: Vec<(&str, ws::Message)> = vec![
        (
            "feed_binary_first",
            ws::Message::Binary(vec![0, 1, 2].into()),
        ),
        ("feed_not_json", ws::Message::Text("hello".into())),
        (
            "feed_wrong_type",
            ws::Message::Text(
                json!({"type": "subscribe", "token": token})
                    .to_string()
                    .into(),
            ),
        ),
        (
            "feed_since_as_text",
            ws::Message::Text(
                json!({"type": "auth", "token": token, "since": "0"})
                    .to_string()
                    .into(),
            ),
        ),
        (
            "feed_admin_token",
            ws::Message::Text(
                json!({"type": "auth", "token": ADMIN_TOKEN})
                    .to_string()
                    .into(),
            ),
        ),
    ];
    let count = first_messages.len() + 1;
    for (name, message) in first_messages {
        let mut socket = feed_client::connect(&app.address).await;
        socket.send(message).await.unwrap();
        let next = feed_client::next(&mut socket, Duration::from_secs(5)).await;
        assert!(closes_with(4401)(next), "{name}");
    }
    // A frame over the 4 KiB limit is a protocol error: the session ends.
    let mut socket = feed_client::connect(&app.address).await;
    socket
        .send(ws::Message::Text("x".repeat(10_000).into()))
        .await
        .unwrap();
    let next = feed_client::next(&mut socket, Duration::from_secs(5)).await;
    assert!(matches!(next, Next::Closed(_)), "feed_frame_over_4_kib");
    count
}
