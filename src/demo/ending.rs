//! The end of the demonstration: every order driven to its close, every key asked again, every
//! acknowledged order looked up, and its fills counted by the way they came.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::{Api, Call};
use super::traders::Trader;

/// What asking again and looking up showed.
#[derive(Debug, Default)]
pub struct Findings {
    /// Keys sent again after the end.
    pub replayed: u64,
    /// Keys whose second answer differed from the first (each with what differed).
    pub replay_differs: Vec<String>,
    /// Acknowledged orders the engine no longer knows.
    pub lost: Vec<String>,
    pub fills_by_push: u64,
    pub fills_by_poll: u64,
}

/// Cancels every open order of every account until none is open; how many were still open
/// when `within` ran out.
pub async fn close_every_order(api: &Api, tokens: &[String], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let mut open = 0;
        for token in tokens {
            let listed = api
                .send(&Call::get("/v1/orders?status=open&limit=1000", token))
                .await;
            let Some(((200, Value::Array(orders)), _)) = listed else {
                open += 1;
                continue;
            };
            open += orders.len();
            for order in orders.iter().filter(|o| o["status"] != "pending_cancel") {
                let path = format!("/v1/orders/{}", order["id"].as_str().unwrap_or_default());
                let _ = api.send(&Call::delete(&path, token)).await;
            }
        }
        if open == 0 || Instant::now() > deadline {
            return open;
        }
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sends every key of `trader` again (the same answer must come back), then looks up each
/// acknowledged order and counts its fills.
pub async fn check_trader(api: &Api, trader: &Trader, findings: &mut Findings) {
    let token = &trader.token;
    for sent in &trader.submitted {
        let call = Call::submit(token, &sent.key, &sent.body);
        findings.replayed += 1;
        match api.until_answered(&call).await {
            Some(again)
                if again.reply.0 == sent.status && again.reply.1["id"] == sent.answer["id"] => {}
            Some(again) => findings.replay_differs.push(format!(
                "{}: first {} {}, then {} {}",
                sent.key, sent.status, sent.answer["id"], again.reply.0, again.reply.1["id"]
            )),
            None => findings
                .replay_differs
                .push(format!("{}: no answer the second time", sent.key)),
        }
        let Some(id) = sent.answer["id"].as_str().filter(|_| sent.status == 201) else {
            continue;
        };
        let order = format!("/v1/orders/{id}");
        if !matches!(
            api.send(&Call::get(&order, token)).await,
            Some(((200, _), _))
        ) {
            findings.lost.push(format!("{} ({})", id, sent.key));
            continue;
        }
        let fills = format!("/v1/orders/{id}/fills");
        if let Some(((200, Value::Array(fills)), _)) = api.send(&Call::get(&fills, token)).await {
            for fill in fills {
                match fill["source"].as_str() {
                    Some("push") => findings.fills_by_push += 1,
                    Some("poll") => findings.fills_by_poll += 1,
                    _ => {}
                }
            }
        }
    }
}
