//! Submissions that arrive together are written together, one phase per batch, and each is
//! answered exactly as it would have been alone.

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn concurrent_submissions_share_phases_and_each_is_answered_as_if_alone() {
    let app = spawn_app().await;
    // Cash for 25 orders of 100.00; 40 arrive at once. Another account's 20 arrive with them.
    let alice = app.create_account("2500.00", json!({})).await;
    let bob = app.create_account("100000.00", json!({})).await;
    let body = limit_buy("INFY", 1, "100.00");
    let keyed: Vec<(&str, String)> = (0..40)
        .map(|i| (alice.token.as_str(), format!("a{i}")))
        .chain((0..20).map(|i| (bob.token.as_str(), format!("b{i}"))))
        .collect();
    let first = join_all(
        keyed
            .iter()
            .map(|(token, key)| app.submit(token, Some(key), &body)),
    )
    .await;

    let text = app.scrape().await;
    let (batches, gathered) = (
        sum_of(&text, "orderkeeper_submit_batch_orders_count", ""),
        sum_of(&text, "orderkeeper_submit_batch_orders_sum", ""),
    );
    assert_eq!(gathered, 60.0, "every submission goes through a batch");
    assert!(
        batches < gathered,
        "60 at once were written in {batches} batches: none held more than one"
    );

    let (alices, bobs) = first.split_at(40);
    let created = alices.iter().filter(|a| a.status == 201).count();
    let refused = alices
        .iter()
        .filter(|a| a.status == 422 && a.error_code() == "insufficient_funds")
        .count();
    assert_eq!((created, refused), (25, 15));
    assert!(bobs.iter().all(|a| a.status == 201));
    let mut ids: Vec<String> = first
        .iter()
        .filter(|a| a.status == 201)
        .map(|a| a.json()["id"].as_str().expect("an id").to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 45, "one order per created answer");
    assert_eq!(app.count_orders(), 45);

    // Every cent is reserved once: alice's cash all reserved, and the ledger sums to the balances.
    let balances = app.stored_balances(&alice.id);
    assert_eq!(balances.get("CASH"), Some(&(0, 250_000)));
    for account in [&alice.id, &bob.id] {
        assert_eq!(app.ledger_sums(account), app.stored_balances(account));
        // Each account's events are numbered 1, 2, 3… with no gap, batched or not.
        let seqs = app.event_seqs(account);
        assert!(seqs.len() >= 20);
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    }

    // Asked again, every key answers what it answered first, byte for byte.
    for ((token, key), answer) in keyed.iter().zip(&first) {
        let again = app.submit(token, Some(key), &body).await;
        assert_eq!(again.status, answer.status, "{key}");
        assert_eq!(again.body, answer.body, "{key}");
    }
    assert_eq!(app.count_orders(), 45);
}

#[actix_web::test]
async fn the_stored_key_cap_holds_for_submissions_batched_together() {
    let app = spawn_app_with(|args| args.max_stored_keys = 5).await;
    let alice = app.create_account("100000.00", json!({})).await;
    let body = limit_buy("INFY", 1, "100.00");
    let keys: Vec<String> = (0..12).map(|i| format!("k{i}")).collect();
    let answers = join_all(
        keys.iter()
            .map(|key| app.submit(&alice.token, Some(key), &body)),
    )
    .await;
    let created = answers.iter().filter(|a| a.status == 201).count();
    let capped = answers
        .iter()
        .filter(|a| a.status == 429 && a.error_code() == "too_many_stored_keys")
        .count();
    assert_eq!((created, capped), (5, 7));
    assert_eq!(app.count_idempotency_keys(), 5);
    assert_eq!(app.count_orders(), 5);
}

/// Submissions of one account in one phase count each other against `max_open_orders`, and a
/// halt read in the phase refuses them all.
#[actix_web::test]
async fn one_phase_counts_its_own_orders_against_the_open_order_cap() {
    use orderkeeper::domain::{Cents, RiskLimits};
    use orderkeeper::testing::db::{self, accounts, trading};
    use orderkeeper::testing::orders::submit;
    let dir = tempfile::tempdir().unwrap();
    let pool = db::connect(&database_url(&dir), 1).unwrap();
    let mut conn = pool.get().unwrap();
    let alice = accounts::create(
        &mut conn,
        "alice",
        Cents(10_000_000),
        &Default::default(),
        1,
    )
    .unwrap();
    let owner = unowned();
    submit_one(
        &mut conn,
        &limit_submission(alice.id, "open", 1, 100),
        &owner,
    )
    .unwrap();
    let limits = RiskLimits {
        max_open_orders: Some(3),
        ..RiskLimits::default()
    };
    assert!(accounts::set_limits(&mut conn, alice.id, &limits).unwrap());
    let subs: Vec<_> = (0..4)
        .map(|i| limit_submission(alice.id, &format!("k{i}"), 1, 100))
        .collect();
    let items: Vec<_> = subs.iter().map(|s| (s, &owner)).collect();
    let statuses = |conn: &mut db::DbConnection, items: &[_]| -> Vec<u16> {
        conn.transaction(|conn| submit::submit(conn, items))
            .unwrap()
            .into_iter()
            .map(|answer| answer.unwrap().response.status)
            .collect()
    };
    // One open before the phase: two more fit under three, the last two do not.
    assert_eq!(statuses(&mut conn, &items), vec![201, 201, 422, 422]);

    trading::set_halted(&mut conn, true, 2).unwrap();
    let halted: Vec<_> = (0..2)
        .map(|i| limit_submission(alice.id, &format!("h{i}"), 1, 100))
        .collect();
    let items: Vec<_> = halted.iter().map(|s| (s, &owner)).collect();
    assert_eq!(statuses(&mut conn, &items), vec![423, 423]);
    crate::database::drop_for(dir.path());
}

/// A halt of every account is not overtaken. It waits for the submits that already read the halt;
/// a submit that comes while it waits waits for it in turn, and is refused. (Were each new submit
/// let in ahead of it, a steady stream of them would hold the halt off for as long as it lasted.)
#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[test]
fn a_halt_is_not_overtaken_by_submits_that_come_while_it_waits() {
    use diesel::RunQueryDsl;
    use orderkeeper::testing::db::{self, trading};
    #[derive(diesel::QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    crate::database::require_postgres();
    let dir = tempfile::tempdir().unwrap();
    let url = database_url(&dir);
    drop(db::connect(&url, 1).unwrap());
    let read_in_a_phase = |url: String| {
        std::thread::spawn(move || {
            let mut conn = db::establish(&url).unwrap();
            conn.transaction(trading::halted_for_phase)
        })
    };
    // A submit in flight has read the halt, and holds it.
    let mut in_flight = db::establish(&url).unwrap();
    in_flight.batch_execute("BEGIN").unwrap();
    assert!(!trading::halted_for_phase(&mut in_flight).unwrap());
    let halting = {
        let url = url.clone();
        std::thread::spawn(move || {
            let mut conn = db::establish(&url).unwrap();
            trading::set_halted(&mut conn, true, 2)
        })
    };
    let mut watch = db::establish(&url).unwrap();
    let waiting = |watch: &mut db::DbConnection| {
        orderkeeper::with_conn!(watch, |c| diesel::sql_query(
            "SELECT COUNT(*) AS n FROM pg_locks WHERE NOT granted"
        )
        .get_result::<Waiting>(c))
        .unwrap()
        .n
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while waiting(&mut watch) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the halt never waited"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Another submit comes while the halt waits.
    let later = read_in_a_phase(url.clone());
    std::thread::sleep(std::time::Duration::from_millis(300));
    in_flight.batch_execute("COMMIT").unwrap();
    halting.join().unwrap().expect("the halt is recorded");
    let seen = later
        .join()
        .unwrap()
        .expect("the later submit reads the halt");
    assert!(
        seen,
        "a submit that came while the halt waited went ahead of it"
    );
    drop((in_flight, watch));
    crate::database::drop_for(dir.path());
}
