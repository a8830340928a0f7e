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
use crate::db::{self, accounts, admin_token, idempotency, now_micros, outbox, Writer};
use crate::domain::Cents;
use crate::engine::identity::IdLock;
use crate::engine::lease::{self, Lease};
use crate::engine::{Engine, EngineSettings};
use crate::error::AppError;
use crate::exchange::sim::{self, SimHandle};
use crate::exchange::{ExchangeClient, HttpExchange, PriceCache};
use crate::feed::broker::{self, BrokerSettings};
use crate::feed::{Hub, Relay};
use crate::http;
use crate::idempotency::InFlight;
use crate::limits::{OrderRate, StreamSessions};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use actix::Actor;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] db::pool::DbSetupError),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    #[error("--exchange-secret is required with an external exchange")]
    MissingExchangeSecret,
    #[error("start-up failed: {0}")]
    App(#[from] AppError),
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
    pub exchange_url: String,
    pub demo_token: Option<String>,
}

fn random_token() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    hex::encode(bytes)
}

impl Application {
    pub async fn build(args: ServeArgs) -> Result<Self, StartupError> {
        let shutdown = Shutdown::default();
        let connector = Connector::new(&args.database_url)?.with_limits(args.db_limits());
        let pool = db::pool::pool_of(connector.clone(), 8)?;
        let writer = Writer::start(connector.clone(), args.db_writers)
            .map_err(db::pool::DbSetupError::Writer)?;
        let listener = TcpListener::bind(&args.listen)?;
        let local = listener.local_addr()?;
        let port = local.port();
        let (sim, exchange_url, exchange_secret) = start_exchange(&args, port)?;
        let metrics = Arc::new(Metrics::default());
        let exchange: Arc<dyn ExchangeClient> = Arc::new(
            HttpExchange::new(&exchange_url, Duration::from_secs(3))
                .with_metrics(Arc::clone(&metrics)),
        );
        let engine_settings = EngineSettings {
            poll_interval: Duration::from_millis(args.poll_interval_ms.max(10)),
            max_concurrent_steps: args.max_concurrent_steps.max(1),
            orphan_sweep_interval: Duration::from_millis(args.orphan_sweep_ms.max(10)),
        };
        let lease_ttl = Duration::from_millis(args.lease_ttl_ms.max(100));
        let (engine_id, ttl_micros) = (args.engine_id(), lease_ttl.as_micros() as i64);
        let id_lock = IdLock::take(&connector, &args.engine_id())?;
        let joined = std::time::Instant::now();
        let fence = writer
            .run(move |conn| db::leases::join(conn, &engine_id, ttl_micros))
            .await?;
        tracing::info!(engine = %fence.engine, epoch = fence.epoch, "joined the database");
        if let Some(url) = &args.broker {
            let settings = BrokerSettings {
                url: url.clone(),
                prefix: args.broker_prefix.clone(),
            };
            let metrics = Arc::clone(&metrics);
            broker::start(settings, connector.clone(), metrics, shutdown.clone())?;
        }
        let hub = Hub::default().start();
        let relay = Relay::start(pool.clone(), hub.clone(), shutdown.clone());
        let engine = Engine::new(
            pool.clone(),
            writer.clone(),
            Arc::clone(&exchange),
            engine_settings,
            relay.clone(),
            metrics,
            Lease::new(fence, lease_ttl, joined),
        );
        let admin_token_hash = settle_admin_token(&writer, args.admin_token.clone()).await?;
        let demo_token = if args.no_demo {
            None
        } else {
            create_demo_account(&writer).await?
        };
        if let Some(token) = &demo_token {
            println!("demo account token: {token}");
        }
        let state = web::Data::new(AppState {
            pool: pool.clone(),
            auth: Authenticator::new(pool.clone()),
            writer: writer.clone(),
            engine: engine.clone(),
            hub,
            relay,
            prices: PriceCache::new(exchange, Duration::from_secs(1)),
            in_flight: InFlight::default(),
            admin_token_hash,
            db_probe: db::Probe::default(),
            serve_demo_token: local.ip().is_loopback() || args.public_demo_token,
            exchange_secret,
            embedded_exchange: sim.as_ref().map(|_| exchange_url.clone()),
            idempotency_ttl_micros: micros(args.idempotency_ttl),
            broker: args.broker.is_some(),
            max_stored_keys: i64::try_from(args.max_stored_keys).unwrap_or(i64::MAX),
            order_rate: OrderRate::new(args.order_rate_limit),
            stream_sessions: StreamSessions::new(args.max_stream_sessions),
            push_replay_window_micros: micros(args.push_replay_window),
            outbox_retention_micros: micros(args.outbox_retention),
            last_audit: std::sync::Mutex::new(None),
            started_at: db::rfc3339(now_micros()),
        });
        if args.audit_interval > 0 {
            let every = Duration::from_secs(args.audit_interval);
            spawn_auditor(state.clone(), every, shutdown.clone());
        }
        spawn_store_reaper(state.clone(), shutdown.clone());

        let server_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(http::json_errors())
                .wrap(actix_web::middleware::from_fn(http::count_requests))
                .app_data(server_state.clone())
                .configure(http::configure)
                .default_service(web::to(http::not_found))
        })
        .on_connect(bound_send_buffer)
        // One shutdown signal for everything (see `shutdown`), not actix's own handlers; requests
        // in flight get 5 s to finish, so the process is gone well within 10 s.
        .disable_signals()
        .shutdown_timeout(5)
        .listen(listener)?
        .run();
        tracing::info!(port, exchange = %exchange_url, "orderkeeper listening");
        spawn_recovery(state.clone(), shutdown.clone());
        lease::spawn_keeper(engine.clone(), Arc::new(id_lock), shutdown.clone());
        Ok(Self {
            port,
            server,
            sim,
            engine,
            shutdown,
            exchange_url,
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

/// The embedded simulator (pushing to this engine's port) or the external exchange's URL, with
/// the push secret.
fn start_exchange(
    args: &ServeArgs,
    port: u16,
) -> Result<(Option<SimHandle>, String, String), StartupError> {
    if args.exchange != "embedded" {
        let secret = args
            .exchange_secret
            .clone()
            .ok_or(StartupError::MissingExchangeSecret)?;
        return Ok((None, args.exchange.clone(), secret));
    }
    let secret = args.exchange_secret.clone().unwrap_or_else(random_token);
    let sim_args = SimArgs {
        listen: args.exchange_listen.clone(),
        webhook_url: Some(format!("http://127.0.0.1:{port}/v1/exchange/events")),
        webhook_secret: Some(secret.clone()),
        seed: None,
        fill_interval_ms: 50,
        book_file: args.exchange_book_file(),
        faults: FaultArgs::default(),
    };
    let sim = sim::start(&sim_args, true)?;
    let url = format!("http://127.0.0.1:{}", sim.port);
    Ok((Some(sim), url, secret))
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

/// Gives every open order its actor again (retried until it succeeds), then keeps looking for open
/// orders that lost theirs.
fn spawn_recovery(state: web::Data<AppState>, shutdown: Shutdown) {
    actix_web::rt::spawn(async move {
        let engine = &state.engine;
        let mut wait = Duration::from_millis(100);
        while !shutdown.is_triggered() {
            match engine.recover().await {
                Ok(count) => {
                    tracing::info!(open_orders = count, "open orders picked up again");
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, ?wait, "recovery failed; trying again");
                    shutdown.or(actix_web::rt::time::sleep(wait)).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
        let mut sweep = actix_web::rt::time::interval(engine.settings().orphan_sweep_interval);
        sweep.tick().await;
        while shutdown.or(sweep.tick()).await.is_some() {
            if let Err(e) = engine.adopt_orphans().await {
                tracing::warn!(error = %e, "orphan sweep failed");
            }
        }
    });
}

/// Runs the money audit on a timer; what it finds is counted, kept for `/healthz` and alarmed.
fn spawn_auditor(state: web::Data<AppState>, every: Duration, shutdown: Shutdown) {
    actix_web::rt::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        while shutdown.or(ticker.tick()).await.is_some() {
            match crate::audit::live(&state).await {
                Ok(report) if report.ok => {
                    tracing::debug!(ms = report.duration_ms, "money audit passed")
                }
                Ok(report) => tracing::error!(
                    failing = ?report.failing(),
                    violations = report.violations(),
                    "money audit failed"
                ),
                Err(e) => tracing::warn!(error = %e, "money audit could not run"),
            }
        }
    });
}

/// The admin token's hash: `--admin-token` replaces the stored one; without it the stored one
/// stands, and on a database that has none a new token is made, stored and printed once.
async fn settle_admin_token(writer: &Writer, given: Option<String>) -> Result<String, AppError> {
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
async fn create_demo_account(writer: &Writer) -> Result<Option<String>, AppError> {
    writer
        .run(|conn| {
            if accounts::count(conn)? > 0 {
                return Ok(None);
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

/// Rows a reaper deletes in one transaction: small enough that the writer is never held for long,
/// with other phases taking their turns between chunks.
const REAP_CHUNK: i64 = 1000;

/// Deletes in chunks of [`REAP_CHUNK`], one transaction each, until a chunk comes back short;
/// returns how many were deleted.
async fn reap_in_chunks<F>(writer: &Writer, chunk: F) -> Result<usize, AppError>
where
    F: Fn(&mut db::DbConnection, i64) -> Result<usize, AppError> + Clone + Send + 'static,
{
    let mut deleted = 0;
    loop {
        let one = chunk.clone();
        let n = writer.run(move |conn| one(conn, REAP_CHUNK)).await?;
        deleted += n;
        if n < REAP_CHUNK as usize {
            return Ok(deleted);
        }
        actix_web::rt::task::yield_now().await;
    }
}

/// Once a minute (or sooner, for a short retention): deletes expired idempotency keys and outbox
/// events past their retention, and forgets rate-limit state of idle accounts.
fn spawn_store_reaper(state: web::Data<AppState>, shutdown: Shutdown) {
    actix_web::rt::spawn(async move {
        // A short retention (a demonstration, a test) is kept to within about half of itself.
        let half_retention = u64::try_from(state.outbox_retention_micros / 2).unwrap_or(0);
        let every = Duration::from_micros(half_retention)
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut ticker = tokio::time::interval(every);
        while shutdown.or(ticker.tick()).await.is_some() {
            state.order_rate.forget_idle();
            let now = now_micros();
            let expired = move |conn: &mut db::DbConnection, at_most| {
                idempotency::delete_expired(conn, now, at_most)
            };
            match reap_in_chunks(&state.writer, expired).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "expired idempotency keys reaped"),
                Err(e) => tracing::warn!(error = %e, "idempotency reaper failed"),
            }
            let before = now_micros().saturating_sub(state.outbox_retention_micros);
            let only_published = state.broker;
            let old = move |conn: &mut db::DbConnection, at_most| {
                outbox::prune(conn, before, only_published, at_most)
            };
            match reap_in_chunks(&state.writer, old).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "outbox events past their retention pruned"),
                Err(e) => tracing::warn!(error = %e, "outbox pruning failed"),
            }
        }
    });
}
