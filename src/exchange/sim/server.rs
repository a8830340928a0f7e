//! The simulator's HTTP API (contract section 3) and its two clocks: the price walk and the
//! matching rounds.

use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::book::{Book, BookEvent, ReplaceRefused};
use super::faults::{Dice, Faults, FaultsUpdate, RestFault};
use super::fix_front::{self, Outlet};
use super::fix_reports;
use super::market::Market;
use super::push::{spawn_delivery, Webhook};
use super::store::{BookStore, Counters, StoreError};
use crate::config::{DuplicatePlacement, SimArgs};
use crate::domain::Cents;
use crate::error::ErrorBody;
use crate::exchange::fix::messages::Body;
use crate::exchange::wire::{PlaceAck, PlaceOrder, PushEvent, ReplaceOrder};

pub(super) struct SimState {
    pub(super) market: Market,
    market_rng: StdRng,
    fill_rng: StdRng,
    pub(super) book: Book,
    pub(super) faults: Faults,
    pub(super) dice: Dice,
    webhook: Option<Webhook>,
    /// The FIX session's reports, when the simulator speaks FIX too.
    fix: Option<Outlet>,
    next_event: u64,
    fill_interval: Duration,
    /// Where the book is kept between runs; `None` keeps it in memory only.
    store: Option<BookStore>,
    saved_counters: Counters,
}

/// The event id after `counter`, which it moves on.
fn next_event_id(counter: &mut u64) -> String {
    *counter += 1;
    format!("E{:012}", *counter)
}

/// A planned delivery, made under the lock and sent after it.
pub(super) type Planned = (PushEvent, u32, Duration);

/// What a change to the book tells the engine, made under the lock and sent after it: pushes to
/// the webhook, and reports over the FIX session.
#[derive(Default)]
pub(super) struct Announcements {
    pushes: Vec<Planned>,
    pub(super) reports: Vec<Body>,
    /// The first report is an answer the dice lose (the line is cut in its place).
    pub(super) lose_first: bool,
}

impl Announcements {
    /// FIX reports alone.
    pub(super) fn of(reports: Vec<Body>) -> Self {
        Announcements {
            reports,
            ..Announcements::default()
        }
    }
}

impl SimState {
    /// Keeps the new prices in the book file, and tells a FIX engine subscribed to them.
    fn prices_moved(&mut self) {
        if let Some(store) = &mut self.store {
            if let Err(e) = store.save_prices(self.market.prices()) {
                tracing::warn!(error = %e, "prices not saved");
            }
        }
        if let Some(fix) = &self.fix {
            fix.prices_moved(self.market.prices());
        }
    }

    /// Writes what the book changed, and the id counters, before anyone hears of it. What could
    /// not be written stays marked and is written with the next change.
    pub(super) fn save(&mut self) -> Result<(), StoreError> {
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        let changes = self.book.unsaved();
        let (next_order, next_fill) = self.book.next_ids();
        let counters = Counters {
            next_order,
            next_fill,
            next_event: self.next_event,
        };
        if !changes.is_empty() || counters != self.saved_counters {
            store.save(&changes, counters)?;
            self.book.mark_saved();
            self.saved_counters = counters;
        }
        Ok(())
    }

    /// A new event id, for a push or a FIX report that is not a fill.
    pub(super) fn event_id(&mut self) -> String {
        next_event_id(&mut self.next_event)
    }

    /// Hands the FIX reports to the session's outlet, in the order made (under the lock, so
    /// that no other change's reports come between), and returns the pushes for the webhook.
    pub(super) fn tell(&mut self, announced: Announcements) -> Vec<Planned> {
        if let Some(fix) = &self.fix {
            let mut lose = announced.lose_first;
            for report in announced.reports {
                fix.send(report, std::mem::take(&mut lose));
            }
        }
        announced.pushes
    }

    /// Numbers the events and rolls their push faults; with `reports`, also makes the FIX
    /// session's ExecutionReports of them.
    pub(super) fn announce(&mut self, events: Vec<BookEvent>, reports: bool) -> Announcements {
        let reports = if reports && self.fix.is_some() {
            let (book, counter) = (&self.book, &mut self.next_event);
            fix_reports::of_events(&events, book, || next_event_id(counter))
        } else {
            Vec::new()
        };
        if self.webhook.is_none() {
            return Announcements {
                reports,
                ..Announcements::default()
            };
        }
        let reorder_delay = self.fill_interval * 4 + Duration::from_millis(100);
        let pushes = events
            .into_iter()
            .map(|e| {
                let plan = self.dice.push(&self.faults, reorder_delay);
                let event = PushEvent {
                    event_id: self.event_id(),
                    event_type: e.event_type,
                    client_order_id: e.client_order_id,
                    orig_client_order_id: e.orig_client_order_id,
                    exchange_order_id: e.exchange_order_id,
                    fill: e.fill,
                };
                (event, plan.copies, plan.delay)
            })
            .collect();
        Announcements {
            pushes,
            reports,
            lose_first: false,
        }
    }
}

#[derive(Clone)]
pub(super) struct Shared(Arc<Mutex<SimState>>);

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, SimState> {
        crate::exchange::lock(&self.0)
    }

    /// Delivers pushes to the webhook. On the simulator's own (actix) thread: deliveries are
    /// tasks of it.
    pub(super) fn push(&self, pushes: Vec<Planned>) {
        let Some(webhook) = self.lock().webhook.clone() else {
            return;
        };
        for (event, copies, delay) in pushes {
            spawn_delivery(webhook.clone(), event, copies, delay);
        }
    }
}

/// A running simulator.
pub struct SimHandle {
    pub port: u16,
    /// The FIX acceptor's port, with `--fix-listen`.
    pub fix_port: Option<u16>,
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
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    tracing::info!(seed, "exchange simulator seeded");
    let webhook = match (&args.webhook_url, &args.webhook_secret) {
        (Some(url), Some(secret)) => Some(Webhook {
            url: url.clone(),
            secret: secret.clone(),
        }),
        _ => None,
    };
    let fill_interval = Duration::from_millis(args.fill_interval_ms.max(1));
    let (store, saved) = match &args.book_file {
        Some(path) => {
            let mut store = BookStore::open(path).map_err(std::io::Error::other)?;
            let saved = store.load().map_err(std::io::Error::other)?;
            tracing::info!(
                orders = saved.orders.len(),
                file = %path.display(),
                "exchange book loaded"
            );
            (Some(store), saved)
        }
        None => (None, Default::default()),
    };
    let counters = saved.counters;
    let mut market = Market::default();
    market.restore(&saved.prices);
    let shared = Shared(Arc::new(Mutex::new(SimState {
        market,
        market_rng: StdRng::seed_from_u64(seed),
        fill_rng: StdRng::seed_from_u64(seed.wrapping_add(1)),
        book: Book::restore(saved),
        faults: args.faults.into(),
        dice: Dice::new(seed),
        webhook,
        fix: None,
        next_event: counters.next_event,
        fill_interval,
        store,
        saved_counters: counters,
    })));
    let fix_port = match &args.fix_listen {
        Some(listen) => {
            let store_url = fix_store_url(args.book_file.as_deref());
            let (port, outlet) =
                fix_front::start(listen, &args.fix_target, &store_url, shared.clone())?;
            shared.lock().fix = Some(outlet);
            Some(port)
        }
        None => None,
    };
    spawn_clocks(shared.clone(), fill_interval);
    let data = web::Data::new(shared);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(64 * 1024)
                    .error_handler(|e, _| {
                        let body = ErrorBody::new("invalid_request", &e.to_string());
                        actix_web::error::InternalError::from_response(
                            e,
                            HttpResponse::BadRequest().json(body),
                        )
                        .into()
                    }),
            )
            .route("/orders", web::post().to(place))
            .route("/orders", web::get().to(list))
            .route("/orders/{cid}", web::get().to(get))
            .route("/orders/{cid}", web::delete().to(cancel))
            .route("/orders/{cid}/replace", web::post().to(replace))
            .route("/prices", web::get().to(prices))
            .route("/admin/faults", web::get().to(get_faults))
            .route("/admin/faults", web::put().to(put_faults))
            .route("/admin/prices", web::put().to(put_prices))
    })
    .workers(1);
    if embedded {
        server = server.disable_signals();
    }
    let server = server.listen(listener)?.run();
    let handle = server.handle();
    Ok(SimHandle {
        port,
        fix_port,
        server,
        handle,
    })
}

/// The FIX session's store: beside the book file, so the session outlives a restart as the
/// book does; a file of this run's own without one.
fn fix_store_url(book_file: Option<&std::path::Path>) -> String {
    let path = match book_file {
        Some(book) => book.with_extension("fix.db"),
        None => {
            std::env::temp_dir().join(format!("orderkeeper-sim-fix-{}.db", uuid::Uuid::new_v4()))
        }
    };
    format!("sqlite://{}", path.display())
}

fn spawn_clocks(shared: Shared, fill_interval: Duration) {
    let walker = shared.clone();
    actix_web::rt::spawn(async move {
        let mut ticker = actix_web::rt::time::interval(Duration::from_millis(250));
        loop {
            ticker.tick().await;
            let mut s = walker.lock();
            let SimState {
                market, market_rng, ..
            } = &mut *s;
            market.step(market_rng);
            s.prices_moved();
        }
    });
    actix_web::rt::spawn(async move {
        let mut ticker = actix_web::rt::time::interval(fill_interval);
        loop {
            ticker.tick().await;
            let planned = {
                let mut s = shared.lock();
                let SimState {
                    market,
                    fill_rng,
                    book,
                    ..
                } = &mut *s;
                let events = book.match_round(market, fill_rng);
                let announced = s.announce(events, true);
                match s.save() {
                    Ok(()) => s.tell(announced),
                    // Unsaved fills are not pushed; polls see them once they are saved.
                    Err(e) => {
                        tracing::error!(error = %e, "fills not saved");
                        Vec::new()
                    }
                }
            };
            shared.push(planned);
        }
    });
}

/// An answer that never arrives: the work is done, then the connection is cut before a byte of the
/// response is written.
fn lost_response() -> HttpResponse {
    let cut = futures_util::stream::once(async {
        Err::<web::Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "response lost",
        ))
    });
    HttpResponse::Ok().streaming(cut)
}

fn unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header(("Retry-After", "1"))
        .json(ErrorBody::new("unavailable", "injected fault: try again"))
}

/// Runs `work` unless the dice say 503; loses its answer when they say so.
fn with_rest_faults(
    shared: &Shared,
    work: impl FnOnce(&mut SimState) -> (HttpResponse, Vec<BookEvent>),
) -> HttpResponse {
    let (response, planned, fault) = {
        let mut s = shared.lock();
        let faults = s.faults;
        let fault = s.dice.rest(&faults);
        if fault == RestFault::Error {
            return unavailable();
        }
        let (response, events) = work(&mut s);
        let announced = s.announce(events, true);
        if let Err(e) = s.save() {
            tracing::error!(error = %e, "the book could not be saved");
            return unavailable();
        }
        (response, s.tell(announced), fault)
    };
    shared.push(planned);
    if fault == RestFault::LostResponse {
        lost_response()
    } else {
        response
    }
}

async fn place(shared: web::Data<Shared>, request: web::Json<PlaceOrder>) -> HttpResponse {
    let request = request.into_inner();
    with_rest_faults(&shared, |s| {
        let placed = s.book.place(request, &s.market);
        if !placed.created && s.faults.duplicate_placement == DuplicatePlacement::Conflict {
            let conflict = ErrorBody::new(
                "duplicate_client_order_id",
                "an order with this client_order_id exists",
            );
            return (HttpResponse::Conflict().json(conflict), Vec::new());
        }
        let status = if placed.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let ack = PlaceAck {
            client_order_id: placed.order.client_order_id,
            exchange_order_id: placed.order.exchange_order_id,
            status: placed.order.status,
        };
        (HttpResponse::build(status).json(ack), placed.events)
    })
}

async fn get(shared: web::Data<Shared>, cid: web::Path<String>) -> HttpResponse {
    with_rest_faults(&shared, |s| {
        let response = match s.book.get(&cid) {
            Some(order) => HttpResponse::Ok().json(order),
            None => HttpResponse::NotFound().json(ErrorBody::new(
                "not_found",
                "no order with this client_order_id",
            )),
        };
        (response, Vec::new())
    })
}

/// `GET /orders?status=open|all&updated_since=RFC3339`: a restarted engine reconciles its
/// in-flight orders in one call.
#[derive(Debug, serde::Deserialize)]
struct ListQuery {
    status: Option<String>,
    updated_since: Option<String>,
}

async fn list(shared: web::Data<Shared>, query: web::Query<ListQuery>) -> HttpResponse {
    let open_only = match query.status.as_deref() {
        None | Some("all") => false,
        Some("open") => true,
        Some(other) => {
            let why = format!("status must be open or all, not {other:?}");
            return HttpResponse::BadRequest().json(ErrorBody::new("invalid_request", &why));
        }
    };
    let since = match query
        .updated_since
        .as_deref()
        .map(chrono::DateTime::parse_from_rfc3339)
    {
        None => None,
        Some(Ok(at)) => Some(at.with_timezone(&chrono::Utc)),
        Some(Err(e)) => {
            let why = format!("updated_since must be an RFC 3339 time: {e}");
            return HttpResponse::BadRequest().json(ErrorBody::new("invalid_request", &why));
        }
    };
    with_rest_faults(&shared, |s| {
        (
            HttpResponse::Ok().json(s.book.list(open_only, since)),
            Vec::new(),
        )
    })
}

async fn cancel(shared: web::Data<Shared>, cid: web::Path<String>) -> HttpResponse {
    with_rest_faults(&shared, |s| {
        let (order, events) = s.book.cancel(&cid);
        (HttpResponse::Ok().json(order), events)
    })
}

async fn replace(
    shared: web::Data<Shared>,
    cid: web::Path<String>,
    request: web::Json<ReplaceOrder>,
) -> HttpResponse {
    let request = request.into_inner();
    with_rest_faults(&shared, |s| {
        let response = match s.book.replace(&cid, request) {
            Ok(order) => HttpResponse::Ok().json(order),
            Err(ReplaceRefused::TooLate) => HttpResponse::Conflict().json(ErrorBody::new(
                "too_late_to_replace",
                "the order is filled, cancelled or ended, or the new qty is not above its filled qty",
            )),
            Err(ReplaceRefused::IdTaken) => HttpResponse::Conflict().json(ErrorBody::new(
                "duplicate_client_order_id",
                "another order has the new client_order_id",
            )),
            Err(ReplaceRefused::NotFound) => HttpResponse::NotFound().json(ErrorBody::new(
                "not_found",
                "no order with this client_order_id",
            )),
        };
        (response, Vec::new())
    })
}

async fn prices(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.lock().market.prices())
}

/// Sets the last prices of the symbols named (`{"INFY":"1490.00"}`); the walk goes on from there.
/// Stop orders are tested by moving a price across their stop.
async fn put_prices(
    shared: web::Data<Shared>,
    update: web::Json<std::collections::BTreeMap<String, String>>,
) -> HttpResponse {
    let mut s = shared.lock();
    let mut set = Vec::new();
    for (symbol, text) in update.iter() {
        let price = match Cents::parse_price(text) {
            Ok(price) if s.market.price(symbol).is_some() => price,
            Ok(_) => {
                let message = format!("{symbol:?} is not listed");
                return HttpResponse::BadRequest().json(ErrorBody::new("unknown_symbol", &message));
            }
            Err(message) => {
                return HttpResponse::BadRequest().json(ErrorBody::new("invalid_request", &message))
            }
        };
        set.push((symbol.clone(), price));
    }
    s.market.restore(&set);
    s.prices_moved();
    HttpResponse::Ok().json(s.market.prices())
}

async fn get_faults(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.lock().faults)
}

async fn put_faults(shared: web::Data<Shared>, update: web::Json<FaultsUpdate>) -> HttpResponse {
    let mut s = shared.lock();
    match s.faults.apply(&update) {
        Ok(()) => HttpResponse::Ok().json(s.faults),
        Err(message) => {
            HttpResponse::BadRequest().json(ErrorBody::new("invalid_request", &message))
        }
    }
}
