//! A live-feed client for tests: a real WebSocket over awc.

#![allow(dead_code)]

use std::time::Duration;

use awc::ws::{self, Frame};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

pub type Socket = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

/// `base` is the engine's http:// address.
pub async fn connect(base: &str) -> Socket {
    let url = format!("{}/v1/stream", base.replace("http://", "ws://"));
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let (_, socket) = client.ws(url).connect().await.expect("a WebSocket");
    socket
}

pub async fn auth(socket: &mut Socket, token: &str, since: Option<i64>) {
    let mut message = json!({"type": "auth", "token": token});
    if let Some(since) = since {
        message["since"] = json!(since);
    }
    socket
        .send(ws::Message::Text(message.to_string().into()))
        .await
        .expect("sent");
}

/// What the server sent next, pings aside.
pub enum Next {
    Event(Value, String),
    Closed(Option<u16>),
    Nothing,
}

pub async fn next(socket: &mut Socket, wait: Duration) -> Next {
    loop {
        match actix_web::rt::time::timeout(wait, socket.next()).await {
            Err(_) => return Next::Nothing,
            Ok(None) => return Next::Closed(None),
            Ok(Some(Ok(Frame::Text(bytes)))) => {
                let text = String::from_utf8(bytes.to_vec()).expect("UTF-8");
                return Next::Event(serde_json::from_str(&text).expect("a JSON event"), text);
            }
            Ok(Some(Ok(Frame::Close(reason)))) => {
                return Next::Closed(reason.map(|r| u16::from(r.code)))
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => panic!("protocol error: {e}"),
        }
    }
}

/// Reads events until `count` have come, failing on a close or a silence of 10 s.
pub async fn events(socket: &mut Socket, count: usize) -> Vec<(Value, String)> {
    let mut seen = Vec::new();
    while seen.len() < count {
        match next(socket, Duration::from_secs(10)).await {
            Next::Event(event, raw) => seen.push((event, raw)),
            Next::Closed(code) => {
                panic!("closed ({code:?}) after {} of {count} events", seen.len())
            }
            Next::Nothing => panic!("silence after {} of {count} events", seen.len()),
        }
    }
    seen
}

pub fn seqs(events: &[(Value, String)]) -> Vec<i64> {
    events
        .iter()
        .map(|(e, _)| e["seq"].as_i64().unwrap())
        .collect()
}
