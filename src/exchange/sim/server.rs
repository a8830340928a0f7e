//! The simulator's HTTP API (see the contract, section 3).

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::market::Market;
use crate::config::{FaultArgs, SimArgs};

/// Fault rates in force, changeable at run time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Faults {
    pub drop_rate: f64,
    pub duplicate_rate: f64,
    pub reorder_rate: f64,
    pub error_rate: f64,
    pub lost_response_rate: f64,
}

impl From<FaultArgs> for Faults {
    fn from(a: FaultArgs) -> Self {
        Faults {
            drop_rate: a.drop_rate,
            duplicate_rate: a.duplicate_rate,
            reorder_rate: a.reorder_rate,
            error_rate: a.error_rate,
            lost_response_rate: a.lost_response_rate,
        }
    }
}

/// A partial update of the fault rates: fields left out keep their value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsUpdate {
    drop_rate: Option<f64>,
    duplicate_rate: Option<f64>,
    reorder_rate: Option<f64>,
    error_rate: Option<f64>,
    lost_response_rate: Option<f64>,
}

struct SimState {
    market: Market,
    rng: StdRng,
    faults: Faults,
}

type Shared = web::Data<Mutex<SimState>>;

/// A running simulator.
pub struct SimHandle {
    pub port: u16,
    pub server: actix_web::dev::Server,
    handle: ServerHandle,
}

impl SimHandle {
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }
}

/// Binds the simulator's listener and builds its server; the caller runs or spawns `server`.
/// Embedded in the engine, it leaves signals to the engine's server.
pub fn start(args: &SimArgs, embedded: bool) -> std::io::Result<SimHandle> {
    let listener = TcpListener::bind(&args.listen)?;
    let port = listener.local_addr()?.port();
    let rng = match args.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => rand::make_rng(),
    };
    let state = Arc::new(Mutex::new(SimState {
        market: Market::default(),
        rng,
        faults: args.faults.into(),
    }));
    spawn_price_walk(Arc::clone(&state));
    let data = web::Data::from(state);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::JsonConfig::default().limit(64 * 1024))
            .route("/prices", web::get().to(prices))
            .route("/admin/faults", web::get().to(get_faults))
            .route("/admin/faults", web::put().to(put_faults))
    })
    .workers(1);
    if embedded {
        server = server.disable_signals();
    }
    let server = server.listen(listener)?.run();
    let handle = server.handle();
    Ok(SimHandle {
        port,
        server,
        handle,
    })
}

fn spawn_price_walk(state: Arc<Mutex<SimState>>) {
    actix_web::rt::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        loop {
            ticker.tick().await;
            if let Ok(mut s) = state.lock() {
                let SimState { market, rng, .. } = &mut *s;
                market.step(rng);
            }
        }
    });
}

fn unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(
        serde_json::json!({"error": {"code": "unavailable", "message": "state lock poisoned"}}),
    )
}

async fn prices(state: Shared) -> HttpResponse {
    match state.lock() {
        Ok(s) => HttpResponse::Ok().json(s.market.prices()),
        Err(_) => unavailable(),
    }
}

async fn get_faults(state: Shared) -> HttpResponse {
    match state.lock() {
        Ok(s) => HttpResponse::Ok().json(s.faults),
        Err(_) => unavailable(),
    }
}

async fn put_faults(state: Shared, update: web::Json<FaultsUpdate>) -> HttpResponse {
    let update = update.into_inner();
    let fields = [
        update.drop_rate,
        update.duplicate_rate,
        update.reorder_rate,
        update.error_rate,
        update.lost_response_rate,
    ];
    if fields.iter().flatten().any(|r| !(0.0..=1.0).contains(r)) {
        return HttpResponse::BadRequest().json(serde_json::json!({
            "error": {"code": "invalid_request", "message": "every rate is between 0 and 1"}
        }));
    }
    let Ok(mut s) = state.lock() else {
        return unavailable();
    };
    let f = &mut s.faults;
    f.drop_rate = update.drop_rate.unwrap_or(f.drop_rate);
    f.duplicate_rate = update.duplicate_rate.unwrap_or(f.duplicate_rate);
    f.reorder_rate = update.reorder_rate.unwrap_or(f.reorder_rate);
    f.error_rate = update.error_rate.unwrap_or(f.error_rate);
    f.lost_response_rate = update.lost_response_rate.unwrap_or(f.lost_response_rate);
    HttpResponse::Ok().json(s.faults)
}
