//! `orderkeeper demo`: the crash-and-restart demonstration in one command.
//!
//! The simulator runs in this process, since it must outlive every engine it serves. The engine
//! is a child process, killed with SIGKILL at even points while one trader per account streams
//! orders at it. At the end every open order is cancelled, every key is sent again, every
//! acknowledged order is looked up, and the engine's money audit gives the verdict.

mod client;
mod ending;
mod engine_process;
mod feed_watch;
mod report;
mod traders;

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use rand::RngExt;
use serde_json::{json, Value};

use crate::config::{DemoArgs, DemoVenue, SimArgs};
use crate::exchange::sim;
use client::{Api, Call};
use engine_process::EngineProcess;
pub use report::{Report, Restart};
use traders::{Tally, Trader};

/// Between a SIGKILL and the next start: long enough for pushes to find no one there.
const DOWN_FOR: Duration = Duration::from_millis(500);
/// How long the end waits for every order to close.
const CLOSE_WITHIN: Duration = Duration::from_secs(90);
const FILL_INTERVAL_MS: u64 = 100;
const OPENING_CASH: &str = "10000000.00";
const OPENING_SHARES: i64 = 1000;
/// The simulator's book, in the run's directory (`exchange-sim --book-file` reopens it).
pub const EXCHANGE_BOOK: &str = "exchange.db";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot make the demo's directory: {0}")]
    Directory(std::io::Error),
    #[error("cannot start the simulator (is --exchange-listen free?): {0}")]
    Simulator(std::io::Error),
    #[error("cannot start the engine: {0}")]
    Engine(std::io::Error),
    #[error("the engine exited ({status}): {last_words} (its log: {})", log.display())]
    EngineExited {
        status: std::process::ExitStatus,
        last_words: String,
        log: PathBuf,
    },
    #[error("the engine at {url} was not ready within a minute (is --listen free?); its log: {}", log.display())]
    NotReady { url: String, log: PathBuf },
    #[error("the engine refused to open an account: {0}")]
    Accounts(String),
}

pub async fn run(args: DemoArgs) -> Result<Report, DemoError> {
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    let directory = new_directory()?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", directory.join("orderkeeper.db").display()));
    let (secret, admin) = (random_hex(), random_hex());

    let over_fix = args.venue == DemoVenue::Fix;
    let simulator = sim::start(
        &SimArgs {
            listen: args.exchange_listen.clone(),
            // Over FIX, the session carries what the pushes would.
            webhook_url: (!over_fix).then(|| format!("http://{}/v1/exchange/events", args.listen)),
            webhook_secret: (!over_fix).then(|| secret.clone()),
            seed: Some(seed),
            fill_interval_ms: FILL_INTERVAL_MS,
            // It outlives every engine it serves. Its book is kept with the run's other files,
            // so the run can be checked against the exchange's record afterwards.
            book_file: Some(directory.join(EXCHANGE_BOOK)),
            fix_listen: over_fix.then(|| "127.0.0.1:0".to_owned()),
            fix_target: sim::ENGINE_COMP_ID.into(),
            faults: args.faults,
        },
        true,
    )
    .map_err(DemoError::Simulator)?;
    let exchange = format!("http://127.0.0.1:{}", simulator.port);
    let venue = simulator
        .fix_port
        .map_or_else(|| exchange.clone(), sim::fix_url);
    let simulator_handle = simulator.handle();
    actix_web::rt::spawn(simulator.server);

    let flags = [
        ("--database-url", database_url.as_str()),
        ("--exchange", &venue),
        ("--exchange-secret", &secret),
        ("--admin-token", &admin),
    ]
    .iter()
    .flat_map(|(k, v)| [(*k).to_owned(), (*v).to_owned()])
    .chain(["--no-demo".to_owned()])
    .collect();
    let mut engine = EngineProcess::new(&args.listen, flags, &directory.join("engine.log"));
    println!(
        "orderkeeper demo: seed {seed}; files in {}",
        directory.display()
    );
    engine.start().await?;
    let api = Api::new(engine.base());
    let tokens = open_accounts(&api, &admin, args.accounts).await?;
    if let Some(first) = tokens.first() {
        println!("dashboard: {}/#token={first}", engine.base());
    }
    let stop_following = Rc::new(Cell::new(false));
    let followers: Vec<_> = tokens
        .iter()
        .map(|token| {
            let watch = feed_watch::follow(
                engine.base().to_owned(),
                token.clone(),
                stop_following.clone(),
            );
            actix_web::rt::spawn(watch)
        })
        .collect();
    println!(
        "streaming orders for {} with {}; admin token {admin}",
        humantime::format_duration(args.duration),
        report::counted(u64::from(args.kills), "kill")
    );

    let mut traders: Vec<Trader> = tokens
        .iter()
        .enumerate()
        .map(|(i, token)| Trader::new(token.clone(), format!("demo-{seed}-{i}"), seed ^ i as u64))
        .collect();
    let started = Instant::now();
    let until = started + args.duration;
    let every = Duration::from_micros(1_000_000 * u64::from(args.accounts) / u64::from(args.rate));
    let trading = join_all(
        traders
            .iter_mut()
            .map(|trader| trader.trade_until(&api, until, every)),
    );
    let killing = kill_and_restart(&mut engine, args.kills, started, args.duration);
    let (_, killed) = futures_util::future::join(trading, killing).await;
    let (restarts, mut duplicate_pushes) = killed?;

    println!("the stream is over: the faults go off, every open order is cancelled and checked");
    clear_faults(&exchange).await;
    let still_open = ending::close_every_order(&api, &tokens, CLOSE_WITHIN).await;
    let mut findings = ending::Findings::default();
    let mut tally = Tally::default();
    for trader in &traders {
        ending::check_trader(&api, trader, &mut findings).await;
        tally += trader.tally;
    }
    let audit = run_audit(&api, &admin).await;
    stop_following.set(true);
    let mut feed = report::FeedSummary::default();
    for (follower, token) in followers.into_iter().zip(&tokens) {
        match follower.await {
            Ok(followed) => {
                let replayed = followed.matches_a_replay(engine.base(), token).await;
                feed.add(&followed, replayed);
            }
            Err(_) => feed.breaks.push("a follower stopped".to_owned()),
        }
    }
    duplicate_pushes += duplicate_pushes_counted(engine.base()).await;
    let clean_stop = engine.stop().await;
    simulator_handle.stop(false).await;
    Ok(Report {
        seed,
        duration: args.duration,
        rate: args.rate,
        accounts: tokens.len(),
        venue: args.venue,
        faults: args.faults,
        tally,
        restarts,
        findings,
        feed,
        duplicate_pushes,
        still_open,
        audit,
        clean_stop,
        directory,
        database_url,
    })
}

/// SIGKILLs the engine `kills` times at even points of the stream, each time starting it again
/// after a moment: each restart, and the duplicate pushes each killed process had dropped.
async fn kill_and_restart(
    engine: &mut EngineProcess,
    kills: u32,
    started: Instant,
    duration: Duration,
) -> Result<(Vec<Restart>, u64), DemoError> {
    let mut restarts = Vec::new();
    let mut duplicate_pushes = 0;
    for k in 1..=kills {
        let at = started + duration * k / (kills + 1);
        actix_web::rt::time::sleep_until(at.into()).await;
        duplicate_pushes += duplicate_pushes_counted(engine.base()).await;
        let killed = Instant::now();
        engine.kill();
        actix_web::rt::time::sleep(DOWN_FOR).await;
        let start_to_ready = engine.start().await?;
        let recovery = health(engine.base()).await["recovery"].clone();
        let restart = Restart {
            kill_to_ready: killed.elapsed(),
            start_to_ready,
            picked_up: recovery["picked_up"].as_u64().unwrap_or(0),
            fills_recovered: recovery["fills_recovered"].as_u64().unwrap_or(0),
        };
        println!(
            "kill {k}: SIGKILL; started again {:.1} s later, ready in {:.2} s with {} open orders picked up",
            DOWN_FOR.as_secs_f64(),
            restart.start_to_ready.as_secs_f64(),
            restart.picked_up
        );
        restarts.push(restart);
    }
    Ok((restarts, duplicate_pushes))
}

/// The demo's accounts, opened through the admin API: their tokens.
async fn open_accounts(api: &Api, admin: &str, count: u32) -> Result<Vec<String>, DemoError> {
    let positions: serde_json::Map<String, Value> = sim::market::LISTINGS
        .iter()
        .map(|(symbol, _)| ((*symbol).to_owned(), json!(OPENING_SHARES)))
        .collect();
    let mut tokens = Vec::new();
    for i in 1..=count {
        let body =
            json!({"name": format!("trader-{i}"), "cash": OPENING_CASH, "positions": positions});
        match api
            .send(&Call::post("/v1/admin/accounts", admin, &body))
            .await
        {
            Some(((201, created), _)) => match created["token"].as_str() {
                Some(token) => tokens.push(token.to_owned()),
                None => return Err(DemoError::Accounts(created.to_string())),
            },
            Some(((status, answer), _)) => {
                return Err(DemoError::Accounts(format!("{status} {answer}")))
            }
            None => return Err(DemoError::Accounts("no answer".to_owned())),
        }
    }
    Ok(tokens)
}

async fn run_audit(api: &Api, admin: &str) -> Value {
    match api.send(&Call::get("/v1/admin/audit", admin)).await {
        Some(((_, report), _)) => report,
        None => Value::Null,
    }
}

async fn health(base: &str) -> Value {
    let client = crate::exchange::http_client();
    match client.get(format!("{base}/healthz")).send().await {
        Ok(mut response) => response.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// `orderkeeper_fills_duplicate_total{source="push"}` of the running engine (0 when it does not
/// answer): each process counts from zero.
async fn duplicate_pushes_counted(base: &str) -> u64 {
    let client = crate::exchange::http_client();
    let Ok(mut response) = client.get(format!("{base}/metrics")).send().await else {
        return 0;
    };
    let body = response.body().await.unwrap_or_default();
    String::from_utf8_lossy(&body)
        .lines()
        .find(|line| line.starts_with("orderkeeper_fills_duplicate_total{source=\"push\"}"))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// Turns the simulator's faults off, so the end measures the books rather than the weather.
async fn clear_faults(exchange: &str) {
    let zero = json!({"drop_rate": 0.0, "duplicate_rate": 0.0, "reorder_rate": 0.0,
        "error_rate": 0.0, "lost_response_rate": 0.0});
    let client = crate::exchange::http_client();
    let _ = client
        .put(format!("{exchange}/admin/faults"))
        .send_json(&zero)
        .await;
}

/// A new directory for the database and the engine's log, kept after the run.
fn new_directory() -> Result<PathBuf, DemoError> {
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let directory =
        std::env::temp_dir().join(format!("orderkeeper-demo-{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&directory).map_err(DemoError::Directory)?;
    Ok(directory)
}

fn random_hex() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}
