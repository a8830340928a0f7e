//! Engines whose clocks disagree (Debian's `faketime` shifts one process's wall clock): leases are
//! judged by the database's clock, so a clock running ahead steals no live engine's orders, and
//! one running behind takes a dead engine's orders as soon as anyone else would.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::json;

use crate::books::{self, Opening};
use crate::processes::{self, Engine, Simulator};

const TTL_MS: u64 = 2000;
/// A lapsed lease is noticed within a quarter TTL; the rest is room for a loaded machine. Judged by
/// the clock 30 s behind, it would take more than 30 s.
const TAKEOVER_WITHIN: Duration = Duration::from_secs(20);

/// How many open orders each engine owns, read from the database.
fn open_owners(database_url: &str) -> BTreeMap<String, i64> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        owner: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = diesel::PgConnection::establish(database_url).expect("connects");
    diesel::sql_query(
        "SELECT owner, count(*) AS n FROM orders \
         WHERE status NOT IN ('filled', 'canceled', 'rejected', 'expired') GROUP BY owner",
    )
    .load::<Row>(&mut conn)
    .expect("owners")
    .into_iter()
    .map(|r| (r.owner, r.n))
    .collect()
}

/// Waits until `engine` (on `port`) owns every open order (`count`); fails with its log.
async fn owned_by(database_url: &str, engine: &Engine, port: u16, count: i64) {
    let started = Instant::now();
    let want = BTreeMap::from([(engine_id(port), count)]);
    loop {
        let owners = open_owners(database_url);
        if owners == want {
            return;
        }
        if started.elapsed() > TAKEOVER_WITHIN {
            let log = std::fs::read_to_string(engine.log_path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "not taken over within {TAKEOVER_WITHIN:?}: {owners:?}; the log of {} ends:\n{}",
                engine_id(port),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

fn engine_id(port: u16) -> String {
    format!("engine@127.0.0.1:{port}")
}

#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[actix_web::test]
async fn leases_are_judged_by_the_database_clock_whatever_an_engine_clock_says() {
    crate::database::require_postgres();
    let dir = tempfile::tempdir().expect("temp dir");
    let ports: Vec<u16> = (0..3).map(|_| processes::free_port()).collect();
    let sim = Simulator::start(ports[0], 11, false);
    let ttl = TTL_MS.to_string();
    let flags = ["--lease-ttl-ms", ttl.as_str()];
    let mut on_time = Engine::start_sharing(dir.path(), ports[0], &sim.url(), &flags);
    let mut ahead = Engine::start_sharing_skewed(dir.path(), ports[1], &sim.url(), &flags, "+30s");
    let behind = Engine::start_sharing_skewed(dir.path(), ports[2], &sim.url(), &flags, "-30s");
    let (account, token) = on_time.open_account("t", "100000.00").await;
    for engine in [&ahead, &behind] {
        engine.get(&token, "/v1/balances").await;
    }
    let orders = 12;
    let mut ids = Vec::new();
    for i in 0..orders {
        let body = json!({"symbol": "INFY", "side": "buy", "type": "limit", "qty": 1, "limit_price": "100.00"});
        let (status, order) = on_time.submit(&token, &format!("rest-{i}"), &body).await;
        assert_eq!(status, 201, "{order}");
        let id = order["id"].as_str().expect("id").to_owned();
        on_time.wait_for_status(&token, &id, "new").await;
        ids.push(id);
    }
    let url = on_time.database_url().to_owned();

    // All three are healthy for three lease periods. Judged by its own clock, the engine 30 s
    // ahead would see the others' leases as long lapsed at every look, and take their orders.
    actix_web::rt::time::sleep(Duration::from_millis(3 * TTL_MS)).await;
    assert_eq!(
        open_owners(&url),
        BTreeMap::from([(engine_id(ports[0]), orders)])
    );
    for engine in [&ahead, &behind] {
        let text = processes::metrics_text(&engine.url()).await;
        assert_eq!(
            processes::metric(&text, "orderkeeper_orders_taken_over_total"),
            0.0
        );
    }

    // The engine on time dies: its orders go to one of the others once its lease has lapsed.
    on_time.kill();
    let started = Instant::now();
    while open_owners(&url).contains_key(&engine_id(ports[0])) {
        assert!(
            started.elapsed() < TAKEOVER_WITHIN,
            "{:?}",
            open_owners(&url)
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    // The engine ahead dies too: the one 30 s behind takes everything as soon as the lease lapses
    // by the database's clock (judged by its own, 30 s late).
    ahead.kill();
    owned_by(&url, &behind, ports[2], orders).await;

    for id in &ids {
        let answer = behind.delete(&token, &format!("/v1/orders/{id}")).await;
        assert!(matches!(answer, Some((200 | 202, _))), "{answer:?}");
    }
    for id in &ids {
        behind.wait_for_status(&token, id, "canceled").await;
    }
    let openings = HashMap::from([(
        account.clone(),
        Opening {
            cash: 10_000_000,
            shares: BTreeMap::new(),
        },
    )]);
    let wrong = books::check(&url, &sim.orders().await, &openings);
    assert!(wrong.is_empty(), "{wrong:#?}");
}
