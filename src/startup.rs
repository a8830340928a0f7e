//! Building and running the application: pool, migrations, exchange, listeners.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use rand::RngExt;

use crate::app::AppState;
use crate::auth::Authenticator;
use crate::config::{FaultArgs, ServeArgs, SimArgs};
use crate::db::pool::Connector;
use crate::db::{self, accounts, admin_token, now_micros, Writer};
use crate::domain::session::SessionClose;
use crate::domain::Cents;
use crate::engine::identity::IdLock;
use crate::engine::lease::{self, Lease};
use crate::engine::writers::Writers;
use crate::engine::{Engine, EngineSettings};
use crate::exchange::fix::{self, FixEndpoint, PushDelivery};
use crate::exchange::sim::{self, SimHandle};
use crate::exchange::{ExchangeClient, HttpExchange, PriceCache};
use crate::feed::broker::{self, BrokerSettings};
use crate::feed::{Hub, Relay};
use crate::http;
use crate::idempotency::{Answered, InFlight};
use crate::limits::{OrderRate, StreamSessions};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use actix::Actor;
use tokio::sync::mpsc;

/// Answers kept for retries: up to twice this many, about 600 bytes each.
const ANSWERS_KEPT: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] db::pool::DbSetupError),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    #[error("--exchange-secret is required with an external exchange")]
    MissingExchangeSecret,
    #[error("--exchange: {0}")]
    Venue(String),
    #[error("{0}")]
    Session(String),
    #[error("start-up failed: {0}")]
    Engine(#[from] crate::engine::EngineError),
    #[error("start-up failed: {0}")]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Identity(#[from] crate::engine::identity::IdentityError),
}

/// A built engine, bound to its port and ready to run.
pub struct Application {
    port: u16,
    server: Server,
    sim: Option<SimHandle>,
    engine: Engine,
    shutdown: Shutdown,
    /// Stops the writers once the server has drained and the rest has stopped: requests in
    /// flight and order steps still get their phases written until then.
    writers_stop: Shutdown,
    pub exchange_url: String,
    pub demo_token: Option<String>,
}

fn random_token() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    hex::encode(bytes)
}

impl Application {
    /// Opens the database, joins the fleet, starts the exchange, the engine and the listener, then
    /// the background work, all watching one shutdown signal.
    pub async fn build(args: ServeArgs) -> Result<Self, StartupError> {
        let session_close = SessionClose::parse(&args.session_close, &args.session_tz)
            .map_err(StartupError::Session)?;
        let shutdown = Shutdown::default();
        let store = Store::open(&args)?;
        let listener = TcpListener::bind(&args.listen)?;
        let local = listener.local_addr()?;
        let port = local.port();
        let venue = start_exchange(&args, port)?;
        let metrics = Arc::new(Metrics::default());
        let (id_lock, lease) = join_the_fleet(&args, &store).await?;
        if let Some(url) = &args.broker {
            let settings = BrokerSettings {
                url: url.clone(),
                prefix: args.broker_prefix.clone(),
            };
            let metrics = Arc::clone(&metrics);
            broker::start(settings, store.connector.clone(), metrics, shutdown.clone())?;
        }
        let hub = Hub::default().start();
        let relay = Relay::start(store.pool.clone(), hub.clone(), shutdown.clone());
        let engine_id = lease.engine_id().to_owned();
        let (exchange, fix_pushes) =
            connect_venue(&venue, &engine_id, &store, &metrics, &shutdown)?;
        let writers_stop = Shutdown::default();
        let writers = Writers::start(store.writer.clone(), Arc::clone(&metrics), &writers_stop);
        let engine = Engine::new(
            store.pool.clone(),
            writers,
            Arc::clone(&exchange),
            engine_settings(&args),
            relay.clone(),
            metrics,
            lease,
        );
        if let Some(pushes) = fix_pushes {
            take_in_fix_pushes(&engine, pushes, &shutdown);
        }
        let admin_token_hash = settle_admin_token(&store.writer, args.admin_token.clone()).await?;
        let demo_token = if args.no_demo {
            None
        } else {
            create_demo_account(&store.writer).await?
        };
        if let Some(token) = &demo_token {
            println!("demo account token: {token}");
        }
        let state = web::Data::new(AppState {
            pool: store.pool.clone(),
            auth: Authenticator::new(store.pool.clone()),
            writer: store.writer.clone(),
            engine: engine.clone(),
            hub,
            relay,
            prices: Arc::new(PriceCache::new(exchange, Duration::from_secs(1))),
            in_flight: InFlight::default(),
            answered: Answered::new(ANSWERS_KEPT),
            admin_token_hash,
            db_probe: db::Probe::default(),
            serve_demo_token: local.ip().is_loopback() || args.public_demo_token,
            exchange_secret: venue.secret.clone(),
            embedded_exchange: venue.sim.as_ref().map(|_| venue.url.clone()),
            idempotency_ttl_micros: micros(args.idempotency_ttl),
            session_close,
            broker: args.broker.is_some(),
            max_stored_keys: i64::try_from(args.max_stored_keys).unwrap_or(i64::MAX),
            order_rate: OrderRate::new(args.order_rate_limit),
            stream_sessions: StreamSessions::new(args.max_stream_sessions),
            push_replay_window_micros: micros(args.push_replay_window),
            outbox_retention_micros: micros(args.outbox_retention),
            last_audit: Arc::default(),
            started_at: db::rfc3339(now_micros()),
        });
        let server = serve(listener, state.clone())?;
        tracing::info!(port, exchange = %venue.url, "orderkeeper listening");
        start_background_work(&args, &state, id_lock, &shutdown);
        Ok(Self {
            port,
            server,
            sim: venue.sim,
            engine,
            shutdown,
            writers_stop,
            exchange_url: venue.url,
            demo_token,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn engine(&self) -> Engine {
        self.engine.clone()
    }

    /// The one signal that stops this engine and all its background work.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Runs until the shutdown signal (SIGTERM or SIGINT once `Shutdown::on_signals` is set up),
    /// or until the server stops for any other reason. Stopping: no new connections, requests in
    /// flight finish, then the order actors and every background task stop, and the lease is
    /// given up so that other engines pick up the open orders at once. What is committed stays
    /// committed; the next start carries every open order on as after a crash.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let sim_handle = self.sim.as_ref().map(SimHandle::handle);
        if let Some(sim) = self.sim {
            actix_web::rt::spawn(sim.server);
        }
        let (handle, shutdown) = (self.server.handle(), self.shutdown.clone());
        actix_web::rt::spawn(async move {
            shutdown.triggered().await;
            handle.stop(true).await;
        });
        let result = self.server.await;
        self.shutdown.trigger();
        self.engine.stop();
        // The lease keeper may be inside a renewal: the lease is given up only after it stopped.
        let mut running = self.shutdown.tasks_finished(Duration::from_secs(10)).await;
        self.writers_stop.trigger();
        running.extend(
            self.writers_stop
                .tasks_finished(Duration::from_secs(10))
                .await,
        );
        if !running.is_empty() {
            tracing::warn!(?running, "background work still running at the stop");
        }
        if let Err(e) = lease::give_up(&self.engine).await {
            tracing::warn!(error = %e, "could not give the lease up; it will run out");
        }
        if let Some(handle) = sim_handle {
            handle.stop(true).await;
        }
        tracing::info!("stopped");
        result
    }
}

/// The engine's database: the connector (for connections of their own), the pool for reads and
/// the writer for every atomic phase.
struct Store {
    connector: Connector,
    pool: db::DbPool,
    writer: Writer,
}

impl Store {
    fn open(args: &ServeArgs) -> Result<Store, StartupError> {
        let connector = Connector::new(&args.database_url)?.with_limits(args.db_limits());
        let pool = db::pool::pool_of(connector.clone(), 8)?;
        let writer = Writer::start(connector.clone(), args.db_writers)
            .map_err(db::pool::DbSetupError::Writer)?;
        Ok(Store {
            connector,
            pool,
            writer,
        })
    }
}

/// Takes this engine's id (refused while another live process holds it) and joins the engines
/// on the database under a new epoch.
async fn join_the_fleet(args: &ServeArgs, store: &Store) -> Result<(IdLock, Lease), StartupError> {
    let lease_ttl = Duration::from_millis(args.lease_ttl_ms.max(100));
    let (engine_id, ttl_micros) = (args.engine_id(), lease_ttl.as_micros() as i64);
    let id_lock = IdLock::take(&store.connector, &engine_id)?;
    let joined = std::time::Instant::now();
    let fence = store
        .writer
        .run(move |conn| db::leases::join(conn, &engine_id, ttl_micros))
        .await?;
    tracing::info!(engine = %fence.engine, epoch = fence.epoch, "joined the database");
    Ok((id_lock, Lease::new(fence, lease_ttl, joined)))
}

fn engine_settings(args: &ServeArgs) -> EngineSettings {
    EngineSettings {
        poll_interval: Duration::from_millis(args.poll_interval_ms.max(10)),
        max_concurrent_steps: args.max_concurrent_steps.max(1),
        orphan_sweep_interval: Duration::from_millis(args.orphan_sweep_ms.max(10)),
    }
}

/// The HTTP server on `listener`, not yet running.
fn serve(listener: TcpListener, state: web::Data<AppState>) -> std::io::Result<Server> {
    Ok(HttpServer::new(move || {
        App::new()
            .wrap(http::json_errors())
            .wrap(actix_web::middleware::from_fn(http::count_requests))
            .app_data(state.clone())
            .configure(http::configure)
            .default_service(web::to(http::not_found))
    })
    .on_connect(bound_send_buffer)
    // One shutdown signal for everything (see `shutdown`), not actix's own handlers; requests
    // in flight get 5 s to finish, so the process is gone well within 10 s.
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run())
}

/// Recovery, the lease keeper, the auditor and the store reaper, each registered with the
/// shutdown so that stopping waits for them.
fn start_background_work(
    args: &ServeArgs,
    state: &web::Data<AppState>,
    id_lock: IdLock,
    shutdown: &Shutdown,
) {
    let engine = &state.engine;
    crate::engine::recovery::spawn(engine.clone(), shutdown);
    crate::engine::expiry::spawn(engine.clone(), shutdown);
    crate::engine::stops::spawn(engine.clone(), Arc::clone(&state.prices), shutdown);
    lease::spawn_keeper(engine.clone(), Arc::new(id_lock), shutdown);
    if args.audit_interval > 0 {
        let every = Duration::from_secs(args.audit_interval);
        let last = Arc::clone(&state.last_audit);
        crate::audit::spawn_auditor(engine.clone(), last, every, shutdown);
    }
    crate::reaper::spawn(state.clone(), shutdown);
}

/// Where the engine's exchange is: the embedded simulator's handle (when it runs here), its base
/// URL and the secret its pushes are signed with.
struct ExchangeEndpoint {
    sim: Option<SimHandle>,
    url: String,
    secret: String,
    /// A FIX venue, spoken to over a session rather than HTTP.
    fix: Option<FixEndpoint>,
}

/// The embedded simulator (pushing to this engine's port), or the external exchange.
fn start_exchange(args: &ServeArgs, port: u16) -> Result<ExchangeEndpoint, StartupError> {
    if let Some(fix) = FixEndpoint::parse(&args.exchange) {
        // Nothing reaches the HTTP push route from a FIX venue: a key nobody holds closes it.
        return Ok(ExchangeEndpoint {
            sim: None,
            url: args.exchange.clone(),
            secret: random_token(),
            fix: Some(fix.map_err(StartupError::Venue)?),
        });
    }
    if args.exchange != "embedded" {
        let secret = args
            .exchange_secret
            .clone()
            .ok_or(StartupError::MissingExchangeSecret)?;
        let url = args.exchange.clone();
        return Ok(ExchangeEndpoint {
            sim: None,
            url,
            secret,
            fix: None,
        });
    }
    let secret = args.exchange_secret.clone().unwrap_or_else(random_token);
    let sim_args = SimArgs {
        listen: args.exchange_listen.clone(),
        webhook_url: Some(format!("http://127.0.0.1:{port}/v1/exchange/events")),
        webhook_secret: Some(secret.clone()),
        seed: None,
        fill_interval_ms: 50,
        book_file: args.exchange_book_file(),
        fix_listen: None,
        fix_target: sim::ENGINE_COMP_ID.into(),
        faults: FaultArgs::default(),
    };
    let sim = sim::start(&sim_args, true)?;
    let url = format!("http://127.0.0.1:{}", sim.port);
    Ok(ExchangeEndpoint {
        sim: Some(sim),
        url,
        secret,
        fix: None,
    })
}

/// What a FIX session hands the engine to take in as pushes.
type FixReports = mpsc::Receiver<PushDelivery>;

/// The engine's client for the venue: over HTTP, or over a FIX session (whose reports come with
/// it, to be taken in as pushes).
fn connect_venue(
    venue: &ExchangeEndpoint,
    engine: &str,
    store: &Store,
    metrics: &Arc<Metrics>,
    shutdown: &Shutdown,
) -> Result<(Arc<dyn ExchangeClient>, Option<FixReports>), StartupError> {
    let answer_within = Duration::from_secs(3);
    let Some(fix) = &venue.fix else {
        let http = HttpExchange::new(&venue.url, answer_within).with_metrics(Arc::clone(metrics));
        return Ok((Arc::new(http), None));
    };
    let connector = store.connector.clone();
    let (client, pushes) = fix::session::start(
        fix.clone(),
        engine,
        connector,
        answer_within,
        shutdown.clone(),
    )?;
    Ok((
        Arc::new(client.with_metrics(Arc::clone(metrics))),
        Some(pushes),
    ))
}

/// Takes each report the FIX session delivers in as a push, and tells the session once it is
/// recorded (only then does the session count it handled).
fn take_in_fix_pushes(engine: &Engine, mut pushes: FixReports, shutdown: &Shutdown) {
    let engine = engine.clone();
    shutdown.spawn("fix pushes", |stop| async move {
        while let Some(Some(delivery)) = stop.or(pushes.recv()).await {
            let recorded = engine.take_push(delivery.report, delivery.raw).await;
            if let Err(e) = &recorded {
                tracing::warn!(error = %e, "a FIX report not recorded yet; the session offers it again");
            }
            let _ = delivery.recorded.send(recorded.is_ok());
        }
    });
}

/// Per-connection kernel send buffer. A fixed size (rather than the kernel's autotuning up to
/// megabytes) keeps what a feed client that stops reading can pile up small, so it is soon told
/// to close (4008) instead of holding the engine's memory.
const SEND_BUFFER_BYTES: usize = 64 * 1024;

fn bound_send_buffer(connection: &dyn std::any::Any, _: &mut actix_web::dev::Extensions) {
    if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        if let Err(e) = socket2::SockRef::from(stream).set_send_buffer_size(SEND_BUFFER_BYTES) {
            tracing::debug!(error = %e, "cannot bound the send buffer");
        }
    }
}

/// Seconds from a flag as microseconds, the store's unit (a huge value is taken as forever).
fn micros(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1_000_000)).unwrap_or(i64::MAX)
}

/// The admin token's hash: `--admin-token` replaces the stored one; without it the stored one
/// stands, and on a database that has none a new token is made, stored and printed once.
async fn settle_admin_token(writer: &Writer, given: Option<String>) -> Result<String, db::DbError> {
    if let Some(token) = given {
        let hash = accounts::sha256_hex(token.as_bytes());
        let stored = hash.clone();
        writer
            .run(move |conn| admin_token::replace(conn, &stored, now_micros()))
            .await?;
        return Ok(hash);
    }
    let token = random_token();
    let hash = accounts::sha256_hex(token.as_bytes());
    let offered = hash.clone();
    let stored = writer
        .run(move |conn| admin_token::keep_first(conn, &offered, now_micros()))
        .await?;
    if stored == hash {
        println!("admin token: {token} (stored in the database: it stays valid across restarts until --admin-token replaces it)");
    } else {
        println!("admin token stored in the database is in force (printed at its first start; --admin-token replaces it)");
    }
    Ok(stored)
}

/// On an empty database, a demo account with cash and some of every listed share.
async fn create_demo_account(writer: &Writer) -> Result<Option<String>, db::DbError> {
    writer
        .run(|conn| {
            if accounts::count(conn)? > 0 {
                return Ok::<_, crate::db::DbError>(None);
            }
            let positions = sim::market::LISTINGS
                .iter()
                .map(|(s, _)| ((*s).to_owned(), 100))
                .collect();
            let created =
                accounts::create_demo(conn, Cents(100_000_000), &positions, now_micros())?;
            Ok(Some(created.token))
        })
        .await
}
