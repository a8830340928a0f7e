//! The command line. Every flag can also be set through its environment variable.

use std::path::{Path, PathBuf};

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::db::pool::DbLimits;
use crate::db::Backend;

#[derive(Debug, Parser)]
#[command(
    name = "orderkeeper",
    version,
    about = "An equity order engine that never charges twice and never loses an order."
)]
pub struct Cli {
    /// Log line format (logs go to stderr; RUST_LOG filters them).
    #[arg(long, env = "ORDERKEEPER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Parsed once, at start-up: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine (the default when no sub-command is given).
    Serve(ServeArgs),
    /// Run the simulated exchange as its own process.
    ExchangeSim(SimArgs),
    /// Run the money audit against a database (a stopped engine's too) and print the JSON
    /// report; exit 0 only when it passes.
    Audit(AuditArgs),
    /// The crash-and-restart demonstration in one command: the simulator with faults, the engine
    /// as a child process killed with SIGKILL and started again under a stream of orders, then a
    /// report that ends with the money audit's verdict. Exit 0 only when it passes.
    Demo(DemoArgs),
}

/// The demonstration's flags. Its faults are on by default; `--drop-rate 0` and so on turn
/// each off.
#[derive(Debug, Clone, Args)]
#[command(
    mut_arg("drop_rate", |a| a.default_value("0.2")),
    mut_arg("duplicate_rate", |a| a.default_value("0.2")),
    mut_arg("reorder_rate", |a| a.default_value("0.1")),
    mut_arg("error_rate", |a| a.default_value("0.05")),
    mut_arg("lost_response_rate", |a| a.default_value("0.05")),
)]
pub struct DemoArgs {
    /// How long orders stream in (`20s`, `2m`…); the end, when every order is driven to its
    /// close and audited, comes after.
    #[arg(long, env = "ORDERKEEPER_DEMO_DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: std::time::Duration,

    /// Orders per second, across all accounts.
    #[arg(long, env = "ORDERKEEPER_DEMO_RATE", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub rate: u32,

    /// How many times the engine is killed with SIGKILL and started again, at even points.
    #[arg(long, env = "ORDERKEEPER_DEMO_KILLS", default_value_t = 3)]
    pub kills: u32,

    /// Trading accounts, each with its own client.
    #[arg(long, env = "ORDERKEEPER_DEMO_ACCOUNTS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub accounts: u32,

    /// Where the engine's API and dashboard listen.
    #[arg(
        long,
        env = "ORDERKEEPER_DEMO_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: String,

    /// Where the simulator listens.
    #[arg(
        long,
        env = "ORDERKEEPER_DEMO_EXCHANGE_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub exchange_listen: String,

    /// The engine's database: a new SQLite file in a new directory under the system's temporary
    /// directory when not given (the directory is kept, with the engine's log).
    #[arg(long, env = "ORDERKEEPER_DEMO_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Seeds the simulator and the traders' choices; random when absent.
    #[arg(long, env = "ORDERKEEPER_DEMO_SEED")]
    pub seed: Option<u64>,

    /// How the engine speaks to the simulator: its REST API and pushes, or a FIX 4.4 session.
    #[arg(
        long,
        env = "ORDERKEEPER_DEMO_VENUE",
        value_enum,
        default_value = "rest"
    )]
    pub venue: DemoVenue,

    #[command(flatten)]
    pub faults: FaultArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoVenue {
    Rest,
    Fix,
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// The engine's database (sqlite://PATH or postgres://…).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://orderkeeper.db")]
    pub database_url: String,

    /// The exchange's base URL: its record is checked against the engine's (skipped without).
    #[arg(long)]
    pub exchange: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address the engine's HTTP API and dashboard listen on.
    #[arg(long, env = "ORDERKEEPER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Database URL: sqlite://PATH (relative to the working directory) or postgres://USER@HOST/DB
    /// (several engines may share one PostgreSQL database).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://orderkeeper.db")]
    pub database_url: String,

    /// `embedded` runs the simulator in this process, spoken to over HTTP; an http URL names an
    /// external one; `fix://HOST:PORT?sender=OK&target=EXCH` speaks FIX 4.4 to any venue.
    #[arg(long, env = "ORDERKEEPER_EXCHANGE", default_value = "embedded")]
    pub exchange: String,

    /// Where the embedded simulator listens.
    #[arg(
        long,
        env = "ORDERKEEPER_EXCHANGE_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub exchange_listen: String,

    /// The file the embedded simulator keeps its book in, so that it outlives a restart as a real
    /// venue would (default: beside a SQLite database, `orderkeeper.db` → `orderkeeper-exchange.db`;
    /// `orderkeeper-exchange.db` in the working directory otherwise). `memory` keeps nothing.
    #[arg(long, env = "ORDERKEEPER_EXCHANGE_BOOK")]
    pub exchange_book: Option<String>,

    /// HMAC key of the exchange's push signatures (generated for the embedded simulator).
    #[arg(long, env = "ORDERKEEPER_EXCHANGE_SECRET", hide_env_values = true)]
    pub exchange_secret: Option<String>,

    /// Token for /v1/admin routes (generated and printed once when not given).
    #[arg(long, env = "ORDERKEEPER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Seconds a stored Idempotency-Key keeps answering replays.
    #[arg(long, env = "ORDERKEEPER_IDEMPOTENCY_TTL", default_value_t = 86_400)]
    pub idempotency_ttl: u64,

    /// When the trading session closes (HH:MM, in --session-tz): `day` orders expire then.
    #[arg(long, env = "ORDERKEEPER_SESSION_CLOSE", default_value = "15:30")]
    pub session_close: String,

    /// The session's time zone, an IANA name.
    #[arg(long, env = "ORDERKEEPER_SESSION_TZ", default_value = "Asia/Kolkata")]
    pub session_tz: String,

    /// Mean milliseconds between two polls of an open order on the exchange (each wait is drawn
    /// between half and one and a half times this).
    #[arg(long, env = "ORDERKEEPER_POLL_INTERVAL_MS", default_value_t = 2000)]
    pub poll_interval_ms: u64,

    /// How many order steps may run at once: each may call the exchange, so a restart with many
    /// open orders is paced by this.
    #[arg(long, env = "ORDERKEEPER_MAX_CONCURRENT_STEPS", default_value_t = 32)]
    pub max_concurrent_steps: usize,

    /// Milliseconds between two sweeps for open orders without a live actor.
    #[arg(long, env = "ORDERKEEPER_ORPHAN_SWEEP_MS", default_value_t = 5000)]
    pub orphan_sweep_ms: u64,

    /// PostgreSQL connections that write (each commits its own transactions; SQLite has one
    /// writer). Each engine also keeps up to 8 connections for reads.
    #[arg(long, env = "ORDERKEEPER_DB_WRITERS", default_value_t = 16)]
    pub db_writers: usize,

    /// PostgreSQL: milliseconds one statement of the engine may run before the server cancels it.
    #[arg(
        long,
        env = "ORDERKEEPER_DB_STATEMENT_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub db_statement_timeout_ms: u64,

    /// PostgreSQL: milliseconds a statement may wait for another transaction's row lock (a paused
    /// or cut-off engine's, say) before it gives up and the phase is tried again.
    #[arg(long, env = "ORDERKEEPER_DB_LOCK_TIMEOUT_MS", default_value_t = 3_000)]
    pub db_lock_timeout_ms: u64,

    /// PostgreSQL: milliseconds a transaction may sit idle before the server ends its session and
    /// frees its locks (a process paused in the middle of a phase).
    #[arg(
        long,
        env = "ORDERKEEPER_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        default_value_t = 3_000
    )]
    pub db_idle_in_transaction_timeout_ms: u64,

    /// PostgreSQL: seconds of silence before TCP keepalive probes start (3 probes, 2 s apart), so a
    /// server behind a broken network is given up instead of waited on.
    #[arg(long, env = "ORDERKEEPER_DB_KEEPALIVE_SECS", default_value_t = 10)]
    pub db_keepalive_secs: u64,

    /// This engine's name among those sharing the database; a restart under the same name takes its
    /// open orders back at once (default: `engine@` and the listen address).
    #[arg(long, env = "ORDERKEEPER_ENGINE_ID")]
    pub engine_id: Option<String>,

    /// Milliseconds an engine's lease on its open orders lasts unless renewed; after that, another
    /// engine on the same database takes them over.
    #[arg(long, env = "ORDERKEEPER_LEASE_TTL_MS", default_value_t = 5000)]
    pub lease_ttl_ms: u64,

    /// Also publish every event to NATS JetStream (`nats://host:port`); off when not given.
    #[arg(long, env = "ORDERKEEPER_BROKER")]
    pub broker: Option<String>,

    /// The broker's subjects are `<prefix>.events.<account_id>`, in the stream `<PREFIX>`.
    #[arg(long, env = "ORDERKEEPER_BROKER_PREFIX", default_value = "orderkeeper")]
    pub broker_prefix: String,

    /// Order submissions per second per account, in bursts of twice that; over it, 429 with
    /// Retry-After. 0 turns the limit off.
    #[arg(long, env = "ORDERKEEPER_ORDER_RATE_LIMIT", default_value_t = 100)]
    pub order_rate_limit: u32,

    /// WebSocket feed sessions per account on this engine; a new one over it is closed with 4429.
    /// 0 = no cap.
    #[arg(long, env = "ORDERKEEPER_MAX_STREAM_SESSIONS", default_value_t = 16)]
    pub max_stream_sessions: usize,

    /// Live Idempotency-Keys an account may hold; a new key over it gets 429. 0 = no cap.
    #[arg(long, env = "ORDERKEEPER_MAX_STORED_KEYS", default_value_t = 1_000_000)]
    pub max_stored_keys: u64,

    /// Seconds after its fill time that a pushed fill is still taken; an older one is a replayed
    /// copy and is refused (422 stale_event), and polling records the fill if it is real.
    #[arg(long, env = "ORDERKEEPER_PUSH_REPLAY_WINDOW", default_value_t = 600)]
    pub push_replay_window: u64,

    /// Seconds the outbox keeps an event (after the broker acknowledged it, with --broker). A feed
    /// client resuming from further back is told to reload (`{"type":"resync"}`).
    #[arg(long, env = "ORDERKEEPER_OUTBOX_RETENTION", default_value_t = 7 * 86_400)]
    pub outbox_retention: u64,

    /// Seconds between two runs of the money audit (see `orderkeeper audit`); 0 turns it off.
    #[arg(long, env = "ORDERKEEPER_AUDIT_INTERVAL", default_value_t = 60)]
    pub audit_interval: u64,

    /// Serve the demo account's token at /demo.json on a listener that is not loopback too. By
    /// default only a loopback listener serves it: on any other, anyone who can reach the engine
    /// could take a funded account.
    #[arg(long, env = "ORDERKEEPER_PUBLIC_DEMO_TOKEN", value_parser = BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub public_demo_token: bool,

    /// Do not create the demo account on an empty database.
    #[arg(long, env = "ORDERKEEPER_NO_DEMO", value_parser = BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub no_demo: bool,
}

impl ServeArgs {
    /// The engine's name among those sharing the database.
    pub fn engine_id(&self) -> String {
        self.engine_id
            .clone()
            .unwrap_or_else(|| format!("engine@{}", self.listen))
    }

    /// The database limits the flags set.
    pub fn db_limits(&self) -> DbLimits {
        let ms = std::time::Duration::from_millis;
        DbLimits {
            statement_timeout: ms(self.db_statement_timeout_ms),
            lock_timeout: ms(self.db_lock_timeout_ms),
            idle_in_transaction_timeout: ms(self.db_idle_in_transaction_timeout_ms),
            keepalive_idle: std::time::Duration::from_secs(self.db_keepalive_secs),
            ..DbLimits::default()
        }
    }

    /// Where the embedded simulator keeps its book (`None`: in memory only).
    pub fn exchange_book_file(&self) -> Option<PathBuf> {
        match self.exchange_book.as_deref() {
            Some("memory") => None,
            Some(path) => Some(PathBuf::from(path)),
            None => Some(beside_database(&self.database_url)),
        }
    }

    /// The defaults, with whatever the environment sets.
    pub fn from_env() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: ServeArgs,
        }
        Only::parse_from(["orderkeeper"]).args
    }
}

/// `orderkeeper-exchange.db` beside a SQLite database (`x/book.db` → `x/book-exchange.db`), or in
/// the working directory.
fn beside_database(database_url: &str) -> PathBuf {
    let default = PathBuf::from("orderkeeper-exchange.db");
    if Backend::of(database_url) != Backend::Sqlite {
        return default;
    }
    let database = Path::new(
        database_url
            .strip_prefix("sqlite://")
            .unwrap_or(database_url),
    );
    let Some(stem) = database.file_stem().and_then(|s| s.to_str()) else {
        return default;
    };
    let extension = database
        .extension()
        .and_then(|e| e.to_str())
        .map_or(String::new(), |e| format!(".{e}"));
    database.with_file_name(format!("{stem}-exchange{extension}"))
}

#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Address the simulator listens on.
    #[arg(long, env = "ORDERKEEPER_SIM_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: String,

    /// Where push events are POSTed (the engine's /v1/exchange/events); none means no push.
    #[arg(long, env = "ORDERKEEPER_SIM_WEBHOOK_URL", requires = "webhook_secret")]
    pub webhook_url: Option<String>,

    /// HMAC-SHA256 key for push signatures (required with --webhook-url).
    #[arg(long, env = "ORDERKEEPER_SIM_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// Seeds every random choice (prices, fill sizes, faults); random when absent.
    #[arg(long, env = "ORDERKEEPER_SIM_SEED")]
    pub seed: Option<u64>,

    /// Milliseconds between the partial fills of one order.
    #[arg(long, env = "ORDERKEEPER_SIM_FILL_INTERVAL_MS", default_value_t = 50)]
    pub fill_interval_ms: u64,

    /// A SQLite file to keep the book in, written before each answer and push, so the simulator
    /// can be restarted without forgetting an order; in memory only when not given.
    #[arg(long, env = "ORDERKEEPER_SIM_BOOK_FILE")]
    pub book_file: Option<PathBuf>,

    /// Also serve the book as a FIX 4.4 acceptor on this address (SenderCompID EXCH).
    #[arg(long, env = "ORDERKEEPER_SIM_FIX_LISTEN")]
    pub fix_listen: Option<String>,

    /// The engine's CompID, which the FIX acceptor expects (its TargetCompID).
    #[arg(long, env = "ORDERKEEPER_SIM_FIX_TARGET", default_value = ENGINE_COMP_ID)]
    pub fix_target: String,

    #[command(flatten)]
    pub faults: FaultArgs,
}

/// The engine's CompID a simulator's FIX acceptor expects unless told another (`--fix-target`).
pub const ENGINE_COMP_ID: &str = "OK";

/// Fault rates, each a share between 0 and 1. All can be changed at run time with PUT /admin/faults.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct FaultArgs {
    /// Share of push events never sent.
    #[arg(long, env = "ORDERKEEPER_SIM_DROP_RATE", default_value_t = 0.0, value_parser = rate)]
    pub drop_rate: f64,
    /// Share of push events sent twice or more.
    #[arg(long, env = "ORDERKEEPER_SIM_DUPLICATE_RATE", default_value_t = 0.0, value_parser = rate)]
    pub duplicate_rate: f64,
    /// Share of push events delayed behind later ones.
    #[arg(long, env = "ORDERKEEPER_SIM_REORDER_RATE", default_value_t = 0.0, value_parser = rate)]
    pub reorder_rate: f64,
    /// Share of REST requests on /orders answered 503 without any effect.
    #[arg(long, env = "ORDERKEEPER_SIM_ERROR_RATE", default_value_t = 0.0, value_parser = rate)]
    pub error_rate: f64,
    /// Share of REST requests on /orders carried out whose response is then lost (connection closed).
    #[arg(long, env = "ORDERKEEPER_SIM_LOST_RESPONSE_RATE", default_value_t = 0.0, value_parser = rate)]
    pub lost_response_rate: f64,
    /// How a repeated POST /orders with a known client_order_id is answered: `ok` (200 with the
    /// order) or `conflict` (409 duplicate_client_order_id, as many real venues do).
    #[arg(long, env = "ORDERKEEPER_SIM_DUPLICATE_PLACEMENT", value_enum, default_value_t = DuplicatePlacement::Ok)]
    pub duplicate_placement: DuplicatePlacement,
}

/// How a venue answers a placement whose client order id it already holds.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DuplicatePlacement {
    /// 200 with the order it holds.
    #[default]
    Ok,
    /// 409 `duplicate_client_order_id`.
    Conflict,
}

fn rate(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is not between 0 and 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_is_the_default_and_reads_its_flags() {
        let cli = Cli::parse_from([
            "orderkeeper",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-demo",
        ]);
        match cli.command {
            Some(Command::Serve(args)) => {
                assert_eq!(args.listen, "127.0.0.1:0");
                assert!(args.no_demo);
                assert_eq!(args.idempotency_ttl, 86_400);
            }
            other => panic!("expected serve, got {other:?}"),
        }
        assert!(Cli::parse_from(["orderkeeper"]).command.is_none());
    }

    #[test]
    fn serve_help_names_both_backends_and_the_exchange_book() {
        let mut cli = Cli::command();
        let serve = cli.find_subcommand_mut("serve").unwrap();
        let help = serve.render_long_help().to_string();
        assert!(help.contains("sqlite://PATH"), "{help}");
        assert!(help.contains("postgres://"), "{help}");
        assert!(help.contains("--exchange-book"), "{help}");
    }

    #[test]
    fn the_embedded_book_lies_beside_a_sqlite_database() {
        let book = |url: &str, flag: Option<&str>| {
            let mut args = ServeArgs::from_env();
            args.database_url = url.into();
            args.exchange_book = flag.map(str::to_owned);
            args.exchange_book_file()
        };
        let beside = |p: &str| Some(PathBuf::from(p));
        assert_eq!(
            book("sqlite://orderkeeper.db", None),
            beside("orderkeeper-exchange.db")
        );
        assert_eq!(
            book("sqlite:///d/x/book.db", None),
            beside("/d/x/book-exchange.db")
        );
        assert_eq!(book("/d/plain", None), beside("/d/plain-exchange"));
        assert_eq!(
            book("postgres://u@h/db", None),
            beside("orderkeeper-exchange.db")
        );
        assert_eq!(book("sqlite://a.db", Some("/e/b.db")), beside("/e/b.db"));
        assert_eq!(book("sqlite://a.db", Some("memory")), None);
    }

    #[test]
    fn fault_rates_must_be_shares() {
        assert!(Cli::try_parse_from(["orderkeeper", "exchange-sim", "--drop-rate", "0.3"]).is_ok());
        assert!(
            Cli::try_parse_from(["orderkeeper", "exchange-sim", "--drop-rate", "1.5"]).is_err()
        );
        assert!(Cli::try_parse_from(["orderkeeper", "exchange-sim", "--error-rate", "x"]).is_err());
    }
}
