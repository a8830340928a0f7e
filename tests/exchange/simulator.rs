use std::collections::HashSet;
use std::time::Duration;

use orderkeeper::config::{DuplicatePlacement, FaultArgs};
use orderkeeper::exchange::signature;
use serde_json::{json, Value};

use crate::helpers::*;

/// Waits until the order is terminal on the exchange and returns it.
async fn until_terminal(sim: &str, cid: &str) -> Value {
    for _ in 0..500 {
        let (_, order) = get_json(&format!("{sim}/orders/{cid}")).await;
        if ["filled", "canceled", "rejected", "expired"]
            .contains(&order["status"].as_str().unwrap_or(""))
        {
            return order;
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{cid} never became terminal");
}

#[actix_web::test]
async fn placement_is_idempotent_by_client_order_id() {
    let sim = spawn_sim(FaultArgs::default(), None, 1);
    let body = order("c-1", "buy", "limit", 10, Some("1.00"));

    let (first_status, first) = send_json("POST", &format!("{sim}/orders"), &body).await;
    let (again_status, again) = send_json("POST", &format!("{sim}/orders"), &body).await;

    assert_eq!((first_status, again_status), (201, 200));
    assert_eq!(first, again);
    assert_eq!(first["status"], "new");
    assert!(first["exchange_order_id"].is_string());
    let (_, all) = get_json(&format!("{sim}/orders")).await;
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    assert_eq!(get_json(&format!("{sim}/orders/never-seen")).await.0, 404);
}

#[actix_web::test]
async fn a_conflict_venue_answers_a_repeated_placement_409_and_still_holds_one_order() {
    let faults = FaultArgs {
        duplicate_placement: DuplicatePlacement::Conflict,
        ..FaultArgs::default()
    };
    let sim = spawn_sim(faults, None, 1);
    let body = order("c-1", "buy", "limit", 10, Some("1.00"));

    let (first_status, first) = send_json("POST", &format!("{sim}/orders"), &body).await;
    let (again_status, again) = send_json("POST", &format!("{sim}/orders"), &body).await;

    assert_eq!((first_status, again_status), (201, 409));
    assert_eq!(first["status"], "new");
    assert_eq!(again["error"]["code"], "duplicate_client_order_id");
    let (_, all) = get_json(&format!("{sim}/orders")).await;
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    // Switched back at run time, a repeat is answered with the order again.
    send_json(
        "PUT",
        &format!("{sim}/admin/faults"),
        &json!({"duplicate_placement": "ok"}),
    )
    .await;
    assert_eq!(
        send_json("POST", &format!("{sim}/orders"), &body).await,
        (200, first)
    );
}

#[actix_web::test]
async fn an_id_cancelled_before_it_was_placed_is_rejected_later() {
    let sim = spawn_sim(FaultArgs::default(), None, 2);

    let (status, tomb) = delete(&format!("{sim}/orders/c-ghost")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (tomb["status"].as_str(), tomb["filled_qty"].as_i64()),
        (Some("canceled"), Some(0))
    );

    let (_, placed) = send_json(
        "POST",
        &format!("{sim}/orders"),
        &order("c-ghost", "buy", "market", 5, None),
    )
    .await;
    assert_eq!(placed["status"], "rejected");
    let (_, held) = get_json(&format!("{sim}/orders/c-ghost")).await;
    assert_eq!(
        (held["status"].as_str(), held["filled_qty"].as_i64()),
        (Some("rejected"), Some(0))
    );
}

#[actix_web::test]
async fn orders_fill_in_chunks_that_sum_to_their_quantity() {
    let sim = spawn_sim(FaultArgs::default(), None, 3);
    send_json(
        "POST",
        &format!("{sim}/orders"),
        &order("c-mkt", "buy", "market", 30, None),
    )
    .await;
    send_json(
        "POST",
        &format!("{sim}/orders"),
        &order("c-sell", "sell", "limit", 12, Some("1.00")),
    )
    .await;
    send_json(
        "POST",
        &format!("{sim}/orders"),
        &order("c-far", "buy", "limit", 10, Some("1.00")),
    )
    .await;

    for cid in ["c-mkt", "c-sell"] {
        let filled = until_terminal(&sim, cid).await;
        assert_eq!(filled["status"], "filled");
        let fills = filled["fills"].as_array().unwrap();
        assert!(fills.len() > 1, "{cid} filled in one piece");
        assert_eq!(
            fills
                .iter()
                .map(|f| f["qty"].as_i64().unwrap())
                .sum::<i64>(),
            filled["qty"].as_i64().unwrap()
        );
        let ids: HashSet<_> = fills
            .iter()
            .map(|f| f["fill_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), fills.len(), "fill ids are unique");
    }
    let (_, far) = get_json(&format!("{sim}/orders/c-far")).await;
    assert_eq!(
        far["filled_qty"], 0,
        "a limit far below the market never fills"
    );
    let (_, canceled) = delete(&format!("{sim}/orders/c-far")).await;
    assert_eq!(canceled["status"], "canceled");
    let (_, filled) = delete(&format!("{sim}/orders/c-mkt")).await;
    assert_eq!(filled["status"], "filled", "a filled order stays filled");
}

#[actix_web::test]
async fn every_event_is_pushed_signed() {
    let (hook, inbox) = spawn_receiver();
    let sim = spawn_sim(FaultArgs::default(), Some(&hook), 4);
    send_json(
        "POST",
        &format!("{sim}/orders"),
        &order("c-push", "buy", "market", 9, None),
    )
    .await;
    let order = until_terminal(&sim, "c-push").await;
    let fills = order["fills"].as_array().unwrap().len();

    assert!(
        eventually(Duration::from_secs(5), || inbox.lock().unwrap().len()
            == fills + 1)
        .await
    );
    let pushes = inbox.lock().unwrap().clone();
    for push in &pushes {
        assert!(
            signature::verify(SECRET, &push.body, push.signature.as_deref()),
            "a valid signature"
        );
        assert_eq!(push.json()["client_order_id"], "c-push");
    }
    let types: Vec<_> = pushes.iter().map(|p| p.json()["type"].clone()).collect();
    assert_eq!(types.iter().filter(|t| **t == json!("accepted")).count(), 1);
    assert_eq!(types.iter().filter(|t| **t == json!("fill")).count(), fills);
    let event_ids: HashSet<_> = pushes
        .iter()
        .map(|p| p.json()["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(event_ids.len(), pushes.len());
}

#[actix_web::test]
async fn pushes_one_after_another_share_a_connection() {
    let (hook, inbox) = spawn_receiver();
    let sim = spawn_sim(FaultArgs::default(), Some(&hook), 4);
    for n in 0..20 {
        let cid = format!("c-conn-{n}");
        send_json(
            "POST",
            &format!("{sim}/orders"),
            &order(&cid, "buy", "market", 1, None),
        )
        .await;
        until_terminal(&sim, &cid).await;
        let told = |p: &Received| p.json()["client_order_id"] == json!(cid);
        assert!(
            eventually(Duration::from_secs(5), || inbox
                .lock()
                .unwrap()
                .iter()
                .filter(|p| told(p))
                .count()
                >= 2)
            .await,
            "the order's acknowledgement and fill were pushed"
        );
    }
    let pushes = inbox.lock().unwrap().clone();
    let connections: HashSet<_> = pushes.iter().map(|p| p.peer).collect();
    assert!(pushes.len() >= 40);
    assert!(
        connections.len() <= 3,
        "{} pushes came on {} connections",
        pushes.len(),
        connections.len()
    );
}

#[actix_web::test]
async fn duplicate_rate_one_sends_every_event_more_than_once() {
    let (hook, inbox) = spawn_receiver();
    let faults = FaultArgs {
        duplicate_rate: 1.0,
        ..FaultArgs::default()
    };
    let sim = spawn_sim(faults, Some(&hook), 5);
    send_json(
        "POST",
        &format!("{sim}/orders"),
        &order("c-dup", "buy", "market", 6, None),
    )
    .await;
    let order = until_terminal(&sim, "c-dup").await;
    let events = order["fills"].as_array().unwrap().len() + 1;

    assert!(
        eventually(Duration::from_secs(5), || inbox.lock().unwrap().len()
            >= 2 * events)
        .await
    );
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    let pushes = inbox.lock().unwrap().clone();
    let mut per_event = std::collections::HashMap::new();
    for push in &pushes {
        *per_event
            .entry(push.json()["event_id"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(per_event.len(), events);
    assert!(
        per_event.values().all(|n| (2..=3).contains(n)),
        "{per_event:?}"
    );
}

#[actix_web::test]
async fn drop_rate_one_sends_nothing() {
    let (hook, inbox) = spawn_receiver();
    let faults = FaultArgs {
        drop_rate: 1.0,
        ..FaultArgs::default()
    };
    let sim = spawn_sim(faults, Some(&hook), 6);
    send_json(
        "POST",
        &format!("{sim}/orders"),
        &order("c-drop", "buy", "market", 6, None),
    )
    .await;
    until_terminal(&sim, "c-drop").await;

    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert!(inbox.lock().unwrap().is_empty());
}

#[actix_web::test]
async fn error_rate_one_answers_503_with_no_effect() {
    let faults = FaultArgs {
        error_rate: 1.0,
        ..FaultArgs::default()
    };
    let sim = spawn_sim(faults, None, 7);

    let (status, body) = send_json(
        "POST",
        &format!("{sim}/orders"),
        &order("c-err", "buy", "market", 6, None),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(delete(&format!("{sim}/orders/c-err")).await.0, 503);
    // Prices and the admin routes always answer.
    assert_eq!(get_json(&format!("{sim}/prices")).await.0, 200);
    let (_, faults) = send_json(
        "PUT",
        &format!("{sim}/admin/faults"),
        &json!({"error_rate": 0.0}),
    )
    .await;
    assert_eq!(faults["error_rate"], 0.0);

    let (_, all) = get_json(&format!("{sim}/orders")).await;
    assert_eq!(all, json!([]), "nothing was placed, nothing tombstoned");
    let (_, placed) = send_json(
        "POST",
        &format!("{sim}/orders"),
        &order("c-err", "buy", "limit", 6, Some("1.00")),
    )
    .await;
    assert_eq!(placed["status"], "new");
}

#[actix_web::test]
async fn faults_are_read_and_changed_at_run_time() {
    let faults = FaultArgs {
        drop_rate: 0.25,
        ..FaultArgs::default()
    };
    let sim = spawn_sim(faults, None, 8);

    let (_, before) = get_json(&format!("{sim}/admin/faults")).await;
    assert_eq!(
        before,
        json!({"drop_rate": 0.25, "duplicate_rate": 0.0, "reorder_rate": 0.0, "error_rate": 0.0, "lost_response_rate": 0.0, "duplicate_placement": "ok"})
    );
    let (status, after) = send_json(
        "PUT",
        &format!("{sim}/admin/faults"),
        &json!({"duplicate_rate": 0.5}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            after["drop_rate"].as_f64(),
            after["duplicate_rate"].as_f64()
        ),
        (Some(0.25), Some(0.5))
    );
    for bad in [
        json!({"drop_rate": 1.5}),
        json!({"nonsense_rate": 0.1}),
        json!({"drop_rate": "high"}),
    ] {
        let (status, body) = send_json("PUT", &format!("{sim}/admin/faults"), &bad).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["code"], "invalid_request");
    }
    assert_eq!(get_json(&format!("{sim}/admin/faults")).await.1, after);
}

#[actix_web::test]
async fn the_same_seed_gives_the_same_faults() {
    let faults = FaultArgs {
        error_rate: 0.5,
        ..FaultArgs::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sim = spawn_sim(faults, None, 99);
        let mut statuses = Vec::new();
        for i in 0..30 {
            let body = order(&format!("c-{i}"), "buy", "limit", 1, Some("1.00"));
            statuses.push(send_json("POST", &format!("{sim}/orders"), &body).await.0);
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&503) && runs[0].contains(&201),
        "{:?}",
        runs[0]
    );
}

#[actix_web::test]
async fn a_lost_response_is_carried_out_but_never_answered() {
    let faults = FaultArgs {
        lost_response_rate: 1.0,
        ..FaultArgs::default()
    };
    let sim = spawn_sim(faults, None, 10);

    let sent = client()
        .post(format!("{sim}/orders"))
        .send_json(&order("c-lost", "buy", "limit", 3, Some("1.00")))
        .await;
    let answered = match sent {
        Ok(mut response) => response.body().await.is_ok(),
        Err(_) => false,
    };
    assert!(!answered, "the answer must be lost");

    send_json(
        "PUT",
        &format!("{sim}/admin/faults"),
        &json!({"lost_response_rate": 0.0}),
    )
    .await;
    let (status, held) = get_json(&format!("{sim}/orders/c-lost")).await;
    assert_eq!(status, 200, "the placement was carried out");
    assert_eq!(held["qty"], 3);
}

#[actix_web::test]
async fn reorder_rate_delivers_some_events_behind_later_ones() {
    let (hook, inbox) = spawn_receiver();
    let faults = FaultArgs {
        reorder_rate: 0.5,
        ..FaultArgs::default()
    };
    let sim = spawn_sim(faults, Some(&hook), 11);
    send_json(
        "POST",
        &format!("{sim}/orders"),
        &order("c-late", "buy", "market", 30, None),
    )
    .await;
    let order = until_terminal(&sim, "c-late").await;
    let events = order["fills"].as_array().unwrap().len() + 1;

    assert!(
        eventually(Duration::from_secs(5), || inbox.lock().unwrap().len()
            == events)
        .await
    );
    let arrival: Vec<String> = inbox
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.json()["event_id"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = arrival.clone();
    sorted.sort();
    assert_ne!(arrival, sorted, "some event overtook an earlier one");
}

#[actix_web::test]
async fn a_failed_push_is_retried_until_delivered() {
    let (hook, inbox) = spawn_failing_receiver(3);
    let sim = spawn_sim(FaultArgs::default(), Some(&hook), 12);
    send_json(
        "POST",
        &format!("{sim}/orders"),
        &order("c-retry", "buy", "limit", 1, Some("1.00")),
    )
    .await;

    // One event (accepted): three refused deliveries, then the fourth gets through.
    assert!(
        eventually(Duration::from_secs(10), || inbox
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.answered == 200))
        .await
    );
    let deliveries = inbox.lock().unwrap().clone();
    assert_eq!(
        deliveries.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [503, 503, 503, 200]
    );
    assert!(
        deliveries.windows(2).all(|w| w[0].body == w[1].body),
        "the same event each time"
    );
    assert_eq!(deliveries[0].json()["type"], "accepted");
}

#[actix_web::test]
async fn the_list_narrows_to_open_orders_and_to_those_changed_since_a_time() {
    let sim = spawn_sim(FaultArgs::default(), None, 4);
    let place = |cid: &str| order(cid, "buy", "limit", 10, Some("1.00"));
    send_json("POST", &format!("{sim}/orders"), &place("old")).await;
    delete(&format!("{sim}/orders/old")).await;
    let (_, old) = get_json(&format!("{sim}/orders/old")).await;
    actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    send_json("POST", &format!("{sim}/orders"), &place("new")).await;
    let ids = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|o| o["client_order_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, all) = get_json(&format!("{sim}/orders?status=all")).await;
    assert_eq!(ids(&all), ["old", "new"]);
    let (_, open) = get_json(&format!("{sim}/orders?status=open")).await;
    assert_eq!(ids(&open), ["new"]);
    let (_, recent) = get_json(&format!("{sim}/orders?updated_since={since}")).await;
    assert_eq!(
        ids(&recent),
        ["new"],
        "changed after {since}; old was {}",
        old["updated_at"]
    );
    for bad in ["status=closed", "updated_since=yesterday"] {
        let (status, answer) = get_json(&format!("{sim}/orders?{bad}")).await;
        assert_eq!(
            (status, answer["error"]["code"].clone()),
            (400, json!("invalid_request")),
            "{bad}"
        );
    }
}
