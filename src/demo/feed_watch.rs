//! A follower of one account's live feed, as the dashboard is: it reconnects with `since` after
//! every kill and checks that seqs come one after another. At the end a fresh replay from the
//! start must match what it followed, event for event.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use awc::ws::{Codec, Frame, Message};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

type Socket = actix_codec::Framed<awc::BoxedSocket, Codec>;

/// What one follower saw.
#[derive(Debug, Default)]
pub struct Followed {
    /// Each event's text, by seq.
    pub events: BTreeMap<i64, String>,
    pub connections: u32,
    /// Seqs that did not follow the one before (a gap or a repeat), and resync requests.
    pub breaks: Vec<String>,
}

/// Follows the account of `token` until `stop` is set and the feed has been quiet for a second.
pub async fn follow(base: String, token: String, stop: Rc<Cell<bool>>) -> Followed {
    let mut followed = Followed::default();
    while !stop.get() {
        let since = followed.events.keys().next_back().copied();
        let Some(mut socket) = open(&base, &token, since).await else {
            actix_web::rt::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        followed.connections += 1;
        loop {
            match read(&mut socket, Duration::from_secs(1)).await {
                Read::Text(text) => followed.take(text),
                Read::Quiet if stop.get() => return followed,
                Read::Quiet => {}
                Read::Ended => break,
            }
        }
    }
    followed
}

impl Followed {
    fn take(&mut self, text: String) {
        let Ok(message) = serde_json::from_str::<Value>(&text) else {
            self.breaks.push(format!("not JSON: {text}"));
            return;
        };
        if message["type"] == "resync" {
            self.breaks.push("told to resync".to_owned());
            return;
        }
        let Some(seq) = message["seq"].as_i64() else {
            return;
        };
        let last = self.events.keys().next_back().copied().unwrap_or(0);
        if seq != last + 1 {
            self.breaks.push(format!("seq {seq} after {last}"));
        }
        self.events.insert(seq, text);
    }

    /// Whether a replay from the start, on a new connection, gives exactly these events.
    pub async fn matches_a_replay(&self, base: &str, token: &str) -> bool {
        let Some(mut socket) = open(base, token, None).await else {
            return false;
        };
        let mut replayed = BTreeMap::new();
        while replayed.len() < self.events.len() {
            let Read::Text(text) = read(&mut socket, Duration::from_secs(5)).await else {
                break;
            };
            if let Some(seq) = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|m| m["seq"].as_i64())
            {
                replayed.insert(seq, text);
            }
        }
        replayed == self.events
    }
}

async fn open(base: &str, token: &str, since: Option<i64>) -> Option<Socket> {
    let url = format!("{}/v1/stream", base.replace("http://", "ws://"));
    let (_, mut socket) = crate::exchange::http_client()
        .ws(url)
        .connect()
        .await
        .ok()?;
    let mut auth = json!({"type": "auth", "token": token});
    if let Some(since) = since {
        auth["since"] = json!(since);
    }
    socket
        .send(Message::Text(auth.to_string().into()))
        .await
        .ok()?;
    Some(socket)
}

enum Read {
    Text(String),
    Quiet,
    Ended,
}

/// The next text message, answering pings on the way.
async fn read(socket: &mut Socket, wait: Duration) -> Read {
    loop {
        match actix_web::rt::time::timeout(wait, socket.next()).await {
            Err(_) => return Read::Quiet,
            Ok(Some(Ok(Frame::Text(bytes)))) => {
                return Read::Text(String::from_utf8_lossy(&bytes).into_owned())
            }
            Ok(Some(Ok(Frame::Ping(bytes)))) => {
                if socket.send(Message::Pong(bytes)).await.is_err() {
                    return Read::Ended;
                }
            }
            Ok(Some(Ok(Frame::Close(_)) | Err(_)) | None) => return Read::Ended,
            Ok(Some(Ok(_))) => {}
        }
    }
}
