//! A venue the test scripts: it speaks the exchange's REST API (contract section 3) over real HTTP,
//! and holds exactly the orders and fills the test gives it, so that a venue's misbehaviour (a fill
//! that contradicts a push, a fill outside the limit, a call that never answers) can be staged.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};

#[derive(Default)]
pub struct VenueState {
    /// The venue's copy of each order, by client order id, in the contract's shape.
    pub orders: BTreeMap<String, Value>,
    pub placements: usize,
    pub lookups: usize,
    /// When each lookup arrived.
    pub lookup_times: Vec<std::time::Instant>,
    /// While set, placements (lookups) are held unanswered.
    pub hold_placements: bool,
    pub hold_lookups: bool,
    /// How long each placement and lookup takes to answer.
    pub latency: Duration,
    /// Placements and lookups being answered now, and the most there ever were at once.
    pub in_flight: usize,
    pub most_in_flight: usize,
    /// How the replaces that come are answered, in turn: 200 takes the new terms, 409 is too
    /// late, anything else is that status. With none left, a replace is taken.
    pub replace_answers: std::collections::VecDeque<u16>,
    pub replaces: usize,
    /// While set, replaces are held unanswered.
    pub hold_replaces: bool,
}

/// Counts a call in flight from its arrival to its answer, after the venue's latency.
struct InFlight(Arc<Mutex<VenueState>>);

impl InFlight {
    async fn arrive(state: &Arc<Mutex<VenueState>>) -> InFlight {
        let latency = {
            let mut s = state.lock().unwrap();
            s.in_flight += 1;
            s.most_in_flight = s.most_in_flight.max(s.in_flight);
            s.latency
        };
        actix_web::rt::time::sleep(latency).await;
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock().unwrap().in_flight -= 1;
    }
}

#[derive(Clone)]
pub struct Venue {
    pub url: String,
    state: Arc<Mutex<VenueState>>,
}

const PRICES: &str = r#"{"INFY":"1520.50","TCS":"3450.00"}"#;

async fn held(state: &Arc<Mutex<VenueState>>, hold: fn(&VenueState) -> bool) {
    while hold(&state.lock().unwrap()) {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn place(state: web::Data<Arc<Mutex<VenueState>>>, body: web::Json<Value>) -> HttpResponse {
    state.lock().unwrap().placements += 1;
    let _in_flight = InFlight::arrive(&state).await;
    held(&state, |s| s.hold_placements).await;
    let mut s = state.lock().unwrap();
    let cid = body["client_order_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if let Some(order) = s.orders.get(&cid) {
        return HttpResponse::Ok().json(order);
    }
    let order = json!({
        "client_order_id": cid,
        "exchange_order_id": format!("V{}", s.orders.len() + 1),
        "status": "new",
        "qty": body["qty"],
        "filled_qty": 0,
        "fills": [],
    });
    s.orders.insert(cid, order.clone());
    HttpResponse::Created().json(order)
}

async fn lookup(state: web::Data<Arc<Mutex<VenueState>>>, cid: web::Path<String>) -> HttpResponse {
    {
        let mut s = state.lock().unwrap();
        s.lookups += 1;
        s.lookup_times.push(std::time::Instant::now());
    }
    let _in_flight = InFlight::arrive(&state).await;
    held(&state, |s| s.hold_lookups).await;
    // Read first, so the lock is let go before the call's count is (dropping it takes the lock).
    let found = state.lock().unwrap().orders.get(cid.as_str()).cloned();
    match found {
        Some(order) => HttpResponse::Ok().json(order),
        None => HttpResponse::NotFound()
            .json(json!({"error": {"code": "not_found", "message": "unknown"}})),
    }
}

async fn cancel(state: web::Data<Arc<Mutex<VenueState>>>, cid: web::Path<String>) -> HttpResponse {
    let mut s = state.lock().unwrap();
    let order = s.orders.entry(cid.to_string()).or_insert_with(|| {
        json!({"client_order_id": cid.as_str(), "exchange_order_id": null, "status": "canceled",
               "qty": 0, "filled_qty": 0, "fills": []})
    });
    if !["filled", "canceled", "rejected", "expired"]
        .contains(&order["status"].as_str().unwrap_or(""))
    {
        order["status"] = json!("canceled");
    }
    HttpResponse::Ok().json(order.clone())
}

async fn replace(
    state: web::Data<Arc<Mutex<VenueState>>>,
    cid: web::Path<String>,
    body: web::Json<Value>,
) -> HttpResponse {
    state.lock().unwrap().replaces += 1;
    held(&state, |s| s.hold_replaces).await;
    let mut s = state.lock().unwrap();
    match s.replace_answers.pop_front().unwrap_or(200) {
        200 => {}
        409 => {
            return HttpResponse::Conflict()
                .json(json!({"error": {"code": "too_late_to_replace", "message": "too late"}}))
        }
        other => {
            let status = actix_web::http::StatusCode::from_u16(other).unwrap();
            return HttpResponse::build(status)
                .json(json!({"error": {"code": "unavailable", "message": "scripted"}}));
        }
    }
    let Some(mut order) = s.orders.get(cid.as_str()).cloned() else {
        return HttpResponse::NotFound()
            .json(json!({"error": {"code": "not_found", "message": "unknown"}}));
    };
    let new_id = body["new_client_order_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    order["orig_client_order_id"] = json!(cid.as_str());
    order["client_order_id"] = json!(new_id);
    order["qty"] = body["qty"].clone();
    s.orders.insert(new_id, order.clone());
    HttpResponse::Ok().json(order)
}

impl Venue {
    pub fn start() -> Venue {
        let state: Arc<Mutex<VenueState>> = Arc::default();
        let data = web::Data::new(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/orders", web::post().to(place))
                .route("/orders/{cid}", web::get().to(lookup))
                .route("/orders/{cid}", web::delete().to(cancel))
                .route("/orders/{cid}/replace", web::post().to(replace))
                .route(
                    "/prices",
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .body(PRICES)
                    }),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        actix_web::rt::spawn(server);
        Venue {
            url: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, VenueState> {
        self.state.lock().unwrap()
    }

    /// Adds a fill to the venue's copy of the order, and sets its status to match.
    pub fn fill(&self, cid: &str, fill_id: &str, qty: i64, price: &str) {
        let mut s = self.state();
        let order = s.orders.get_mut(cid).expect("the venue holds the order");
        let filled = order["filled_qty"].as_i64().unwrap() + qty;
        order["filled_qty"] = json!(filled);
        order["fills"].as_array_mut().unwrap().push(
            json!({"fill_id": fill_id, "qty": qty, "price": price, "ts": "2026-11-24T00:00:00Z"}),
        );
        let status = if filled >= order["qty"].as_i64().unwrap() {
            "filled"
        } else {
            "partially_filled"
        };
        order["status"] = json!(status);
    }

    pub fn set_status(&self, cid: &str, status: &str) {
        self.state()
            .orders
            .get_mut(cid)
            .expect("the venue holds the order")["status"] = json!(status);
    }
}
