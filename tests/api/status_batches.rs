//! Actors' status steps are written many orders to a phase, and each order's log, projection,
//! ledger and feed come out exactly as one phase per step would leave them. Pushes are taken in
//! many to a phase too.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::join_all;
use orderkeeper::domain::{
    AccountId, AckSource, Action, ActionKind, Cents, ClientOrderId, OrderId, OrderStatus,
};
use orderkeeper::testing::db::leases::Fence;
use orderkeeper::testing::db::{self, accounts, leases, orders, DbConnection};
use orderkeeper::testing::orders::intake::{self, Intake, PushItem};
use orderkeeper::testing::orders::lifecycle::Applied;
use orderkeeper::testing::orders::status::{self, StatusItem, StatusStep};
use orderkeeper::testing::orders::submit;
use orderkeeper::testing::OrderError;
use serde_json::json;

use crate::helpers::*;

/// The status step an actor records for `action`: `placement_sent`, `accepted` (as a poll saw
/// it), or `canceled` for an order never sent.
fn item(order: OrderId, fence: &Fence, action: Action) -> Arc<StatusItem> {
    let status_step = match action {
        Action::PlacementSent => StatusStep::PlacementSent,
        Action::Accepted => StatusStep::Accepted {
            venue_order_id: Some("X-1".into()),
            source: AckSource::Poll,
        },
        Action::Canceled => StatusStep::ReleaseUnsent,
        other => panic!("{other:?} is no status step"),
    };
    step(order, fence, status_step)
}

fn step(order: OrderId, fence: &Fence, step: StatusStep) -> Arc<StatusItem> {
    Arc::new(StatusItem {
        order,
        fence: fence.clone(),
        step,
        now: db::now_micros(),
    })
}

/// The end of an order the venue canceled with `filled` shares filled.
fn canceled_at_venue(filled: i64) -> StatusStep {
    StatusStep::End {
        end: orderkeeper::domain::VenueEnd::Canceled,
        venue_filled: filled,
        cause: orderkeeper::domain::EndCause::VenueEnded {
            status: orderkeeper::domain::VenueStatus::Canceled,
            filled_qty: filled,
        },
    }
}

/// Each answer of a phase, with an error named by its kind.
fn in_one_phase(
    conn: &mut DbConnection,
    items: &[Arc<StatusItem>],
) -> Vec<Result<Applied, &'static str>> {
    let answers = conn
        .transaction(|conn| status::record(conn, items))
        .expect("the batch commits");
    answers
        .into_iter()
        .map(|answer| {
            answer.map_err(|e| match e {
                OrderError::Fenced(_) => "fenced",
                OrderError::NotFound => "not found",
                _ => "other",
            })
        })
        .collect()
}

/// A fresh database with one account, alice, and cash for many orders; on PostgreSQL the database
/// is dropped with it.
struct Books {
    dir: tempfile::TempDir,
    pool: db::DbPool,
    alice: AccountId,
}

impl Drop for Books {
    fn drop(&mut self) {
        crate::database::drop_for(self.dir.path());
    }
}

fn books_with_alice() -> Books {
    let dir = tempfile::tempdir().unwrap();
    let pool = db::connect(&database_url(&dir), 1).unwrap();
    let mut conn = pool.get().unwrap();
    let account =
        accounts::create(&mut conn, "alice", Cents(10_000_000), &BTreeMap::new(), 1).unwrap();
    drop(conn);
    Books {
        dir,
        pool,
        alice: account.id,
    }
}

/// A resting buy of alice's, recorded under `owner`.
fn new_order(conn: &mut DbConnection, account: AccountId, key: &str, owner: &Fence) -> OrderId {
    crate::helpers::submit_one(conn, &limit_submission(account, key, 4, 10_000), owner)
        .unwrap()
        .created
        .unwrap()
        .id
}

fn kinds(conn: &mut DbConnection, order: OrderId) -> Vec<(i64, ActionKind)> {
    orders::actions(conn, order)
        .unwrap()
        .into_iter()
        .map(|a| (a.seq, a.kind))
        .collect()
}

#[actix_web::test]
async fn a_batch_answers_every_item_as_alone_and_writes_what_the_table_allows() {
    let books = books_with_alice();
    let (mut conn, account) = (books.pool.get().unwrap(), books.alice);
    let owner = unowned();
    let [a, b, c, d]: [OrderId; 4] =
        std::array::from_fn(|i| new_order(&mut conn, account, &format!("k{i}"), &owner));
    let stranger = Fence {
        engine: "another-engine".into(),
        epoch: 7,
    };
    // Four resting buys of 4 at 100.00.
    let reserved = |conn: &mut DbConnection| {
        orderkeeper::testing::db::ledger::balance(conn, account, "CASH")
            .unwrap()
            .reserved
    };
    assert_eq!(reserved(&mut conn), 4 * 4 * 10_000);
    let answers = in_one_phase(
        &mut conn,
        &[
            item(a, &owner, Action::PlacementSent),
            // The same order again in one batch: it starts from the first step, written.
            item(a, &owner, Action::Accepted),
            // Fenced: the order is not this engine's, and nothing is written for it.
            item(b, &stranger, Action::Accepted),
            item(c, &owner, Action::Accepted),
            // Ends the order (never sent), and releases what it holds in the same phase.
            item(d, &owner, Action::Canceled),
            item(OrderId::new(), &owner, Action::Accepted),
            // A move the table refuses: alarmed, nothing moves.
            item(d, &owner, Action::Accepted),
        ],
    );
    let recorded = Ok(Applied::Recorded);
    assert_eq!(
        answers[..6],
        [
            recorded.clone(),
            recorded.clone(),
            Err("fenced"),
            recorded.clone(),
            recorded,
            Err("not found"),
        ]
    );
    assert!(
        matches!(answers[6], Ok(Applied::Refused(_))),
        "{:?}",
        answers[6]
    );
    assert_eq!(
        orderkeeper::testing::db::alarms::of_order(&mut conn, d)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        reserved(&mut conn),
        3 * 4 * 10_000,
        "d's reservation was released"
    );

    assert_eq!(
        kinds(&mut conn, a),
        vec![
            (1, ActionKind::Created),
            (2, ActionKind::PlacementSent),
            (3, ActionKind::Accepted)
        ]
    );
    assert_eq!(kinds(&mut conn, b), vec![(1, ActionKind::Created)]);
    assert_eq!(
        kinds(&mut conn, c),
        vec![(1, ActionKind::Created), (2, ActionKind::Accepted)]
    );
    assert_eq!(
        kinds(&mut conn, d),
        vec![(1, ActionKind::Created), (2, ActionKind::Canceled)]
    );
    // Each projection is its log folded, seq included.
    for order in [a, b, c, d] {
        let row = orders::find(&mut conn, order).unwrap().unwrap();
        assert_eq!(orders::fold_log(&mut conn, &row).unwrap(), row.state());
        assert_eq!(row.last_action_seq, kinds(&mut conn, order).len() as i64);
    }
    let row = orders::find(&mut conn, a).unwrap().unwrap();
    assert!(row.placement_sent);
    assert_eq!(row.status, OrderStatus::New);
    assert_eq!(
        orders::find(&mut conn, c).unwrap().unwrap().status,
        OrderStatus::New
    );

    // A step recorded before (accepted twice) is answered as a duplicate and writes nothing.
    let again = in_one_phase(&mut conn, &[item(c, &owner, Action::Accepted)]);
    assert_eq!(again, vec![Ok(Applied::Duplicate)]);
    assert_eq!(kinds(&mut conn, c).len(), 2);

    // Four `order.created`, two `order.accepted` and one `order.canceled`, numbered with no gap
    // in the order of the batch; placement_sent has no event.
    let events = orderkeeper::testing::db::outbox::since(&mut conn, account, 0, 100).unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<i64>>());
    let frames: Vec<(String, serde_json::Value)> = events
        .iter()
        .skip(4)
        .map(|e| (e.kind.clone(), serde_json::from_str(&e.payload).unwrap()))
        .collect();
    let shown: Vec<(&str, String, &str)> = frames
        .iter()
        .map(|(kind, frame)| {
            let id = frame["order"]["id"].as_str().unwrap().to_owned();
            (
                kind.as_str(),
                id,
                frame["order"]["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            ("order.accepted", a.to_string(), "new"),
            ("order.accepted", c.to_string(), "new"),
            ("order.canceled", d.to_string(), "canceled"),
        ]
    );
}

/// Submits `n` orders of `body` at once; their ids, once the exchange has acknowledged each.
async fn placed_together(app: &TestApp, token: &str, n: usize, body: &str) -> Vec<OrderId> {
    let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    let answers = join_all(keys.iter().map(|key| app.submit(token, Some(key), body))).await;
    let mut ids = Vec::new();
    for answer in &answers {
        assert_eq!(answer.status, 201, "{}", answer.json());
        let id = answer.json()["id"].as_str().unwrap().to_owned();
        app.wait_for_status(token, &id, "new").await;
        ids.push(id.parse().unwrap());
    }
    ids
}

#[actix_web::test]
async fn orders_placed_together_share_status_phases_and_each_log_is_whole() {
    // No polls: every step is one the order asked for.
    let app = spawn_app_with(|args| args.poll_interval_ms = 600_000).await;
    let alice = app.create_account("1000000.00", json!({})).await;
    let ids = placed_together(&app, &alice.token, 40, &limit_buy("INFY", 1, "100.00")).await;

    let text = app.scrape().await;
    let (batches, written) = (
        sum_of(&text, "orderkeeper_status_batch_orders_count", ""),
        sum_of(&text, "orderkeeper_status_batch_orders_sum", ""),
    );
    assert!(
        written >= 80.0,
        "placement_sent and accepted of 40 orders: {written} written in batches"
    );
    assert!(
        batches < written,
        "{written} status actions were written in {batches} batches: none held more than one"
    );

    // One step per order, the one that placed it: an acknowledgement push that arrives while that
    // step records the placement's answer wakes the actor, which has nothing left to do.
    assert_eq!(
        sum_of(&text, "orderkeeper_order_steps_total", "reason=\"place\""),
        40.0
    );
    assert_eq!(
        sum_of(&text, "orderkeeper_order_steps_total", "reason=\"recover\""),
        0.0,
        "a new order's placement is no recovery"
    );
    assert_eq!(
        sum_of(&text, "orderkeeper_order_steps_total", "reason=\"push\""),
        0.0
    );

    let mut conn = app.conn();
    for &order in &ids {
        let log = kinds(&mut conn, order);
        assert_eq!(
            log,
            vec![
                (1, ActionKind::Created),
                (2, ActionKind::PlacementSent),
                (3, ActionKind::Accepted)
            ],
            "{order}"
        );
        let row = orders::find(&mut conn, order).unwrap().unwrap();
        assert_eq!(orders::fold_log(&mut conn, &row).unwrap(), row.state());
    }
    // 40 created and 40 accepted, numbered 1..80 with no gap.
    assert_eq!(app.event_seqs(&alice.id), (1..=80).collect::<Vec<i64>>());
}

/// The first epoch of `engine`.
fn fence(engine: &str) -> Fence {
    Fence {
        engine: engine.into(),
        epoch: 1,
    }
}

/// A push as "engine@here" takes it in.
fn push(event_id: &str, order: OrderId, fill: Option<(&str, i64)>) -> Arc<PushItem> {
    push_for(event_id, ClientOrderId::for_order(order), fill)
}

/// A push about the order's version that `client_order_id` names.
fn push_for(
    event_id: &str,
    client_order_id: ClientOrderId,
    fill: Option<(&str, i64)>,
) -> Arc<PushItem> {
    let mut event = json!({
        "event_id": event_id, "type": "accepted",
        "client_order_id": client_order_id.to_string(), "exchange_order_id": "X-1",
    });
    if let Some((fill_id, qty)) = fill {
        event["type"] = json!("fill");
        event["fill"] =
            json!({"fill_id": fill_id, "qty": qty, "price": "99.00", "ts": "2026-01-01T00:00:00Z"});
    }
    Arc::new(PushItem {
        event: orderkeeper::testing::parse_push(event.to_string().as_bytes())
            .unwrap()
            .into_report(),
        raw: event.to_string(),
        now: db::now_micros(),
        engine: "engine@here".into(),
    })
}

#[actix_web::test]
async fn pushes_taken_in_together_are_stored_once_and_answered_as_if_alone() {
    let books = books_with_alice();
    let (mut conn, account) = (books.pool.get().unwrap(), books.alice);
    let (here, elsewhere) = (fence("engine@here"), fence("engine@elsewhere"));
    let mine = new_order(&mut conn, account, "k1", &here);
    let theirs = new_order(&mut conn, account, "k2", &elsewhere);
    let take = |conn: &mut DbConnection, items: &[Arc<PushItem>]| {
        let answers = conn
            .transaction(|conn| intake::take_in_pushes(conn, items))
            .expect("the batch commits");
        answers
            .into_iter()
            .map(|answer| answer.expect("no push fails alone"))
            .collect::<Vec<Intake>>()
    };
    let earlier = push("e0", mine, None);
    assert!(matches!(
        take(&mut conn, std::slice::from_ref(&earlier))[..],
        [Intake::New { .. }]
    ));

    let answers = take(
        &mut conn,
        &[
            push("e1", mine, None),
            // The same event twice in one batch: the second is a duplicate.
            push("e1", mine, None),
            // Delivered before: a duplicate.
            earlier,
            // Another engine's order: taken in here, and noted for its owner.
            push("e2", theirs, None),
            // A fill changes the order: recorded after the bare pushes' one statement.
            push("e3", mine, Some(("f1", 1))),
            // No order of ours: stored and alarmed.
            push("e4", OrderId::new(), None),
        ],
    );
    let new_for = |order: OrderId, owner: &str| Intake::New {
        order,
        fill: None,
        status: OrderStatus::PendingNew,
        fully_filled: false,
        owner: owner.into(),
    };
    assert_eq!(
        answers,
        vec![
            new_for(mine, "engine@here"),
            Intake::Duplicate,
            Intake::Duplicate,
            new_for(theirs, "engine@elsewhere"),
            Intake::New {
                order: mine,
                fill: Some(Applied::Recorded),
                status: OrderStatus::PendingNew,
                fully_filled: false,
                owner: "engine@here".into(),
            },
            Intake::Unmatched,
        ]
    );
    let stored: i64 = orderkeeper::with_conn!(conn, |c| {
        use diesel::prelude::*;
        orderkeeper::testing::db::schema::exchange_events::table
            .count()
            .get_result(c)
    })
    .unwrap();
    // The fill's own row is its record; the unmatched push is kept for the alarm.
    assert_eq!(stored, 4, "e0, e1, e2 and e4, once each");
    assert_eq!(
        orderkeeper::testing::db::leases::take_notes(&mut conn, "engine@elsewhere").unwrap(),
        vec![theirs]
    );
    // Only the fill moved an order.
    assert_eq!(
        kinds(&mut conn, mine),
        vec![(1, ActionKind::Created), (2, ActionKind::Fill)]
    );
    assert_eq!(kinds(&mut conn, theirs), vec![(1, ActionKind::Created)]);
}

/// Alice's books on PostgreSQL, for a test of something PostgreSQL's own (its plans, its locks).
fn books_on_postgres() -> Books {
    crate::database::require_postgres();
    books_with_alice()
}

fn postgres(conn: &mut DbConnection) -> &mut diesel::PgConnection {
    match &mut conn.inner {
        orderkeeper::testing::db::Inner::Postgres(c) => c,
        orderkeeper::testing::db::Inner::Sqlite(_) => panic!("a PostgreSQL connection"),
    }
}

/// The statements a connection keeps prepared on PostgreSQL, by their text.
fn prepared_statements(conn: &mut DbConnection) -> Vec<String> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Kept {
        #[diesel(sql_type = diesel::sql_types::Text)]
        statement: String,
    }
    diesel::sql_query("SELECT statement FROM pg_prepared_statements")
        .load::<Kept>(postgres(conn))
        .unwrap()
        .into_iter()
        .map(|k| k.statement)
        .collect()
}

#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[actix_web::test]
async fn batch_statements_stay_prepared_on_postgres() {
    let books = books_on_postgres();
    let (mut conn, account) = (books.pool.get().unwrap(), books.alice);
    let owner = unowned();
    let orders: Vec<OrderId> = (0..4)
        .map(|i| new_order(&mut conn, account, &format!("k{i}"), &owner))
        .collect();
    // Two batches of two: the second runs the first's statements again, and prepares nothing new.
    let mut kept_after = Vec::new();
    for pair in orders.chunks(2) {
        let items: Vec<_> = pair
            .iter()
            .map(|o| item(*o, &owner, Action::Accepted))
            .collect();
        let answers = in_one_phase(&mut conn, &items);
        assert_eq!(answers, vec![Ok(Applied::Recorded); 2]);
        let mut kept = prepared_statements(&mut conn);
        kept.sort();
        kept_after.push(kept);
    }
    let kept = &kept_after[1];
    assert_eq!(&kept_after[0], kept, "the second batch reuses the first's");
    for start in [
        "SELECT \"orders\".\"id\"",      // the orders, locked
        "WITH taking (account, events",  // the accounts' event seqs
        "INSERT INTO \"order_actions\"", // the actions
        "WITH saved (id, status",        // the projections
        "INSERT INTO \"outbox\"",        // the events
    ] {
        assert!(
            kept.iter().any(|s| s.starts_with(start)),
            "{start}… is kept prepared; kept: {kept:#?}"
        );
    }
}

#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[actix_web::test]
async fn an_order_locked_for_a_phase_does_not_hold_up_rows_that_refer_to_it() {
    let books = books_on_postgres();
    let (mut holder, account) = (books.pool.get().unwrap(), books.alice);
    let owner = unowned();
    let order = new_order(&mut holder, account, "locked", &owner);
    let mut other = db::establish(&database_url(&books.dir)).unwrap();
    other.batch_execute("SET lock_timeout = '2s'").unwrap();
    holder
        .transaction(|conn| {
            orders::find_for_update(conn, order)?.expect("the order");
            // Another transaction adds a row that refers to the order (its foreign key takes a
            // key-share lock on the order's row): it goes ahead while the phase holds the order.
            other.transaction(|other| {
                orders::append_action(other, order, 2, ActionKind::PlacementSent, "{}", 2)
            })?;
            Ok::<_, OrderError>(())
        })
        .expect("neither waits for the other");
    assert_eq!(kinds(&mut holder, order).len(), 2);
}

/// What the connection's open transaction has read of `table` so far.
#[derive(diesel::QueryableByName)]
struct TableReads {
    /// Scans of the whole table.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    seq_scan: i64,
    /// Rows read, by scans and through indexes.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    rows: i64,
}

fn reads_in_this_transaction(conn: &mut DbConnection, table: &str) -> TableReads {
    use diesel::RunQueryDsl;
    diesel::sql_query(
        "SELECT seq_scan, seq_tup_read + COALESCE(idx_tup_fetch, 0) AS rows \
         FROM pg_stat_xact_user_tables WHERE relname = $1",
    )
    .bind::<diesel::sql_types::Text, _>(table)
    .get_result(postgres(conn))
    .unwrap()
}

/// Runs `work` in a transaction; returns its answer and what it read of `table`.
fn reading<T>(
    conn: &mut DbConnection,
    table: &str,
    work: impl FnOnce(&mut DbConnection) -> Result<T, orderkeeper::testing::db::DbError>,
) -> (T, TableReads) {
    conn.transaction(|conn| {
        let before = reads_in_this_transaction(conn, table);
        let answer = work(conn)?;
        let after = reads_in_this_transaction(conn, table);
        let read = TableReads {
            seq_scan: after.seq_scan - before.seq_scan,
            rows: after.rows - before.rows,
        };
        Ok::<_, orderkeeper::testing::db::DbError>((answer, read))
    })
    .unwrap()
}

/// The ids of `count` orders.
fn some_orders(conn: &mut DbConnection, count: i64) -> Vec<OrderId> {
    use diesel::prelude::*;
    use orderkeeper::testing::db::schema::orders::dsl::{id, orders};
    orders
        .select(id)
        .order(id)
        .limit(count)
        .load(postgres(conn))
        .unwrap()
}

/// `count` more of alice's orders, written straight into the table.
fn more_orders(conn: &mut DbConnection, account: AccountId, count: i64) {
    conn.batch_execute(&format!(
        "INSERT INTO orders (id, account_id, client_order_id, symbol, side, order_type, qty, \
         status, created_at, updated_at) \
         SELECT u, '{account}', 'ok-' || replace(u, '-', ''), 'AAPL', 'buy', 'limit', 4, \
         'pending_new', 1, 1 FROM (SELECT gen_random_uuid()::text AS u \
         FROM generate_series(1, {count})) AS fresh"
    ))
    .unwrap();
}

#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[actix_web::test]
async fn kept_statements_still_read_by_key_once_their_table_has_grown() {
    let books = books_on_postgres();
    let (mut conn, account) = (books.pool.get().unwrap(), books.alice);
    // A few pages of orders: small enough that reading all of them looks cheapest.
    more_orders(&mut conn, account, 200);
    let ids = some_orders(&mut conn, 4);
    assert_eq!(ids.len(), 4);
    let batch_reads = |conn: &mut DbConnection| {
        reading(conn, "orders", |conn| {
            let rows = orders::find_many_for_update(conn, ids.iter().copied())?;
            orders::find_many(conn, &ids)?;
            orders::save_projections(conn, &rows)?;
            Ok(rows.len())
        })
    };
    // Past its fifth run, PostgreSQL may keep one plan for a statement, made for the table as it
    // is now.
    for _ in 0..8 {
        assert_eq!(batch_reads(&mut conn).0, 4);
    }
    more_orders(&mut conn, account, 20_000);
    let (locked, read) = batch_reads(&mut conn);
    assert_eq!(locked, 4);
    assert_eq!(read.seq_scan, 0, "the batch statements scanned every order");
}

#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[actix_web::test]
async fn looking_for_dead_engines_reads_no_order_of_a_live_one() {
    let books = books_on_postgres();
    let (mut conn, account) = (books.pool.get().unwrap(), books.alice);
    more_orders(&mut conn, account, 2_000);
    // A live engine takes every open order.
    let live = leases::join(&mut conn, "engine@live", 60_000_000).unwrap();
    let (dead, read) = reading(&mut conn, "orders", leases::expired);
    assert_eq!(dead, Vec::<String>::new());
    assert!(
        read.rows < 10,
        "looking for dead engines read {} orders",
        read.rows
    );
    // Once its lease has run out, it is found.
    conn.batch_execute("UPDATE engines SET expires_at = 0")
        .unwrap();
    let dead = leases::expired(&mut conn).unwrap();
    assert_eq!(dead, vec![live.engine]);
}

/// What PostgreSQL did for `sql` on this connection, as `EXPLAIN ANALYZE` prints it.
fn explain_analyze(conn: &mut DbConnection, sql: &str) -> String {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct PlanLine {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    diesel::sql_query(format!("EXPLAIN ANALYZE {sql}"))
        .load::<PlanLine>(postgres(conn))
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n")
}

#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[actix_web::test]
async fn a_read_left_with_no_key_to_use_is_not_compiled() {
    let books = books_on_postgres();
    let mut conn = books.pool.get().unwrap();
    leases::join(&mut conn, "engine@here", 60_000_000).unwrap();
    // The lease's look for dead engines has no index to use: with scans turned off it is costed
    // as if huge, which used to put it above the JIT threshold, compiled at every lease tick.
    // The statement explained is the one diesel builds for it, its one bind written in.
    let built = diesel::debug_query::<diesel::pg::Pg, _>(&leases::lapsed(0)).to_string();
    let (sql, binds) = built
        .split_once(" -- binds: ")
        .expect("a statement and its binds");
    assert_eq!(binds, "[0]");
    let plan = explain_analyze(&mut conn, &sql.replace("$1", "0"));
    assert!(plan.contains("Seq Scan on engines"), "{plan}");
    assert!(!plan.contains("JIT"), "compiled with JIT:\n{plan}");
}

#[actix_web::test]
async fn fills_taken_in_together_are_each_recorded_once_as_if_alone() {
    let books = books_with_alice();
    let (mut conn, alice) = (books.pool.get().unwrap(), books.alice);
    let here = fence("engine@here");
    // Two resting buys of 4 at 100.00: 8 × 10,000 cents reserved.
    let first = new_order(&mut conn, alice, "k1", &here);
    let second = new_order(&mut conn, alice, "k2", &here);
    let answers = conn
        .transaction(|conn| {
            intake::take_in_pushes(
                conn,
                &[
                    push("e1", first, Some(("f1", 1))),
                    // The same fill under another event id, in the same batch: recorded once.
                    push("e2", first, Some(("f1", 1))),
                    push("e3", second, Some(("f2", 4))),
                    // More than is left of the order: refused and alarmed; nothing moves.
                    push("e4", first, Some(("f3", 4))),
                    // No order of ours.
                    push("e5", OrderId::new(), Some(("f4", 1))),
                    // A second fill of the first order: planned on the row the first left.
                    push("e6", first, Some(("f5", 2))),
                ],
            )
        })
        .expect("the batch commits");
    let answers: Vec<Intake> = answers.into_iter().map(|a| a.unwrap()).collect();
    let recorded = |order: OrderId, fully_filled: bool| Intake::New {
        order,
        fill: Some(Applied::Recorded),
        status: OrderStatus::PendingNew,
        fully_filled,
        owner: "engine@here".into(),
    };
    assert_eq!(answers.len(), 6);
    assert_eq!(answers[0], recorded(first, false));
    assert_eq!(answers[1], Intake::Duplicate);
    assert_eq!(answers[2], recorded(second, true));
    assert!(
        matches!(
            &answers[3],
            Intake::New { order, fill: Some(Applied::Refused(_)), .. } if *order == first
        ),
        "{:?}",
        answers[3]
    );
    assert_eq!(answers[4], Intake::Unmatched);
    assert_eq!(
        answers[5],
        Intake::New {
            order: first,
            fill: Some(Applied::Recorded),
            status: OrderStatus::PartiallyFilled,
            fully_filled: false,
            owner: "engine@here".into(),
        }
    );

    let fill_ids = |conn: &mut DbConnection, order| -> Vec<String> {
        orders::fills(conn, order)
            .unwrap()
            .into_iter()
            .map(|f| f.fill_id)
            .collect()
    };
    assert_eq!(fill_ids(&mut conn, first), vec!["f1", "f5"]);
    let row = orders::find(&mut conn, first).unwrap().unwrap();
    assert_eq!(
        (row.status, row.filled_qty),
        (OrderStatus::PartiallyFilled, 3)
    );
    assert_eq!(
        kinds(&mut conn, first),
        vec![
            (1, ActionKind::Created),
            (2, ActionKind::Fill),
            (3, ActionKind::Fill)
        ]
    );
    assert_eq!(fill_ids(&mut conn, second), vec!["f2"]);
    let alarms = orderkeeper::testing::db::alarms::of_order(&mut conn, first).unwrap();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    // Seven shares bought at 99.00 against 100.00 held for each: 70,000 cents of the reservation
    // spent or given back, 700 of them back to cash.
    use orderkeeper::testing::db::ledger;
    let cash = ledger::balance(&mut conn, alice, ledger::CASH).unwrap();
    assert_eq!(
        (cash.available, cash.reserved),
        (10_000_000 - 80_000 + 700, 10_000)
    );
    let shares = ledger::balance(&mut conn, alice, "INFY").unwrap();
    assert_eq!((shares.available, shares.reserved), (7, 0));
    // Two created events, then one fill event for each fill recorded, numbered with no gap.
    let events: Vec<(i64, String)> =
        orderkeeper::testing::db::outbox::since(&mut conn, alice, 0, 100)
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.kind))
            .collect();
    let kinds = [
        "order.created",
        "order.created",
        "order.fill",
        "order.fill",
        "order.fill",
    ];
    let expected: Vec<(i64, String)> = (1..).zip(kinds.map(String::from)).collect();
    assert_eq!(events, expected);
}

/// A venue sends a replace's answer and the fills of its new terms in turn, but the engine may
/// take a fill in before the answer: the fill's client order id, a later version's, shows the
/// venue took the replace, and the phase records it first.
#[actix_web::test]
async fn a_fill_of_a_replace_s_new_terms_records_the_replace_it_shows_was_taken() {
    use orderkeeper::testing::orders::replace::{self, ReplaceRequest};
    let books = books_with_alice();
    let (mut conn, alice) = (books.pool.get().unwrap(), books.alice);
    let here = fence("engine@here");
    // A resting buy of 4 at 100.00, asked to become 8.
    let order = new_order(&mut conn, alice, "k1", &here);
    let steps = [
        item(order, &here, Action::PlacementSent),
        item(order, &here, Action::Accepted),
    ];
    assert!(in_one_phase(&mut conn, &steps).iter().all(Result::is_ok));
    let asked = conn
        .transaction(|conn| {
            replace::request(
                conn,
                &ReplaceRequest {
                    account: alice,
                    order,
                    key: orderkeeper::testing::IdempotencyKey::parse(b"r1").unwrap(),
                    fingerprint: "replace to 8".into(),
                    qty: Some(8),
                    limit_price: None,
                    last_prices: Default::default(),
                    now: db::now_micros(),
                    ttl_micros: 1_000_000_000,
                    max_stored_keys: 0,
                },
            )
        })
        .expect("the replace is recorded");
    assert!(asked.moved.is_some());

    // Six shares under the new version's id: more than the old terms' four.
    let new_terms = ClientOrderId::for_version(order, 2);
    let answers = conn
        .transaction(|conn| {
            intake::take_in_pushes(conn, &[push_for("e1", new_terms.clone(), Some(("f1", 6)))])
        })
        .expect("the push commits");
    assert_eq!(
        answers.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        vec![Intake::New {
            order,
            fill: Some(Applied::Recorded),
            status: OrderStatus::New,
            fully_filled: false,
            owner: "engine@here".into(),
        }]
    );
    let row = orders::find(&mut conn, order).unwrap().unwrap();
    assert_eq!(
        (
            row.status,
            row.qty,
            row.filled_qty,
            row.version,
            row.replacing_qty
        ),
        (OrderStatus::PartiallyFilled, 8, 6, 2, None)
    );
    assert_eq!(row.client_order_id, new_terms);
    let kinds_now = kinds(&mut conn, order);
    let expected = [
        ActionKind::Created,
        ActionKind::PlacementSent,
        ActionKind::Accepted,
        ActionKind::ReplaceRequested,
        ActionKind::Replaced,
        ActionKind::Fill,
    ];
    assert_eq!(
        kinds_now.iter().map(|(_, k)| *k).collect::<Vec<_>>(),
        expected
    );

    // The replace's own answer, after it, changes nothing; the rest of the new terms fill it.
    let answer = step(order, &here, StatusStep::Replaced { qty: 8 });
    assert_eq!(
        in_one_phase(&mut conn, &[answer]),
        vec![Ok(Applied::Duplicate)]
    );
    let answers = conn
        .transaction(|conn| {
            intake::take_in_pushes(conn, &[push_for("e2", new_terms.clone(), Some(("f2", 2)))])
        })
        .expect("the push commits");
    assert!(matches!(
        answers[..],
        [Ok(Intake::New {
            fill: Some(Applied::Recorded),
            fully_filled: true,
            ..
        })]
    ));
    assert_eq!(kinds(&mut conn, order).len(), expected.len() + 1);
    // Eight shares bought at 99.00 against 100.00 held for each; nothing else is held.
    use orderkeeper::testing::db::ledger;
    let cash = ledger::balance(&mut conn, alice, ledger::CASH).unwrap();
    assert_eq!((cash.available, cash.reserved), (10_000_000 - 79_200, 0));
    let shares = ledger::balance(&mut conn, alice, "INFY").unwrap();
    assert_eq!((shares.available, shares.reserved), (8, 0));
    let alarms = orderkeeper::testing::db::alarms::of_order(&mut conn, order).unwrap();
    assert!(alarms.is_empty(), "{alarms:?}");
}

/// How many sessions on the connection's database are waiting for a lock.
fn sessions_waiting_for_a_lock(conn: &mut DbConnection) -> i64 {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE wait_event_type = 'Lock' AND datname = current_database()",
    )
    .get_result::<Waiting>(postgres(conn))
    .map(|w| w.n)
    .unwrap_or(0)
}

#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[actix_web::test]
async fn a_fill_batch_waiting_for_one_account_holds_no_other_account() {
    let books = books_on_postgres();
    let (mut conn, alice) = (books.pool.get().unwrap(), books.alice);
    let bob = accounts::create(&mut conn, "bob", Cents(10_000_000), &BTreeMap::new(), 1)
        .unwrap()
        .id;
    let (low, high) = (alice.min(bob), alice.max(bob));
    let here = unowned();
    let low_order = new_order(&mut conn, low, "low", &here);
    let high_order = new_order(&mut conn, high, "high", &here);
    drop(conn);
    let url = database_url(&books.dir);
    // Another phase holds the lower account's row.
    let mut holder = db::establish(&url).unwrap();
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT id FROM accounts WHERE id = '{low}' FOR NO KEY UPDATE"
        ))
        .unwrap();
    // The higher account's fill arrives first in the batch.
    let batch = std::thread::spawn(move || {
        let mut conn = db::establish(&url).unwrap();
        conn.batch_execute("SET lock_timeout = '10s'").unwrap();
        conn.transaction(|conn| {
            intake::take_in_pushes(
                conn,
                &[
                    push("e1", high_order, Some(("f1", 1))),
                    push("e2", low_order, Some(("f2", 1))),
                ],
            )
        })
    });
    let mut probe = db::establish(&database_url(&books.dir)).unwrap();
    let started = std::time::Instant::now();
    while sessions_waiting_for_a_lock(&mut probe) == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the batch never waited for the lower account"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // While it waits, the higher account is free: a batch that had taken it first, then waited for
    // the lower one, could deadlock with a phase that takes them in id order.
    probe.batch_execute("SET lock_timeout = '200ms'").unwrap();
    probe
        .transaction(|probe| {
            probe.batch_execute(&format!(
                "SELECT id FROM accounts WHERE id = '{high}' FOR NO KEY UPDATE"
            ))
        })
        .expect("the higher account is not held by the waiting batch");
    holder.batch_execute("COMMIT").unwrap();
    let answers = batch.join().unwrap().expect("the batch commits");
    assert!(
        answers.iter().all(|a| matches!(
            a,
            Ok(Intake::New {
                fill: Some(Applied::Recorded),
                ..
            })
        )),
        "{answers:?}"
    );
}

#[actix_web::test]
async fn fills_pushed_together_share_commits_and_each_is_settled_once() {
    // No polls: the engine learns of the fills from the pushes alone.
    let app = spawn_app_with(|args| args.poll_interval_ms = 600_000).await;
    let alice = app.create_account("1000000.00", json!({})).await;
    let ids = placed_together(&app, &alice.token, 20, &limit_buy("INFY", 4, "100.00")).await;
    // One fill of one share for each order, each pushed twice, all at once.
    let events: Vec<serde_json::Value> = ids
        .iter()
        .enumerate()
        .flat_map(|(i, id)| {
            let event = json!({
                "event_id": format!("E{i}"), "type": "fill",
                "client_order_id": ClientOrderId::for_order(*id).to_string(),
                "exchange_order_id": format!("X{i}"),
                "fill": {"fill_id": format!("F{i}"), "qty": 1, "price": "99.00",
                         "ts": chrono::Utc::now().to_rfc3339()},
            });
            [event.clone(), event]
        })
        .collect();
    for status in join_all(events.iter().map(|e| app.push(e))).await {
        assert_eq!(status, 200);
    }

    let text = app.scrape().await;
    let (batches, taken) = (
        sum_of(&text, "orderkeeper_fill_batch_pushes_count", ""),
        sum_of(&text, "orderkeeper_fill_batch_pushes_sum", ""),
    );
    assert!(taken >= 20.0, "{taken} pushes taken in by fill batches");
    assert!(
        batches < taken,
        "{taken} fill pushes were taken in by {batches} batches: none held more than one"
    );
    let mut conn = app.conn();
    for id in &ids {
        assert_eq!(orders::fills(&mut conn, *id).unwrap().len(), 1, "{id}");
        let row = orders::find(&mut conn, *id).unwrap().unwrap();
        assert_eq!(row.filled_qty, 1);
        assert_eq!(orders::fold_log(&mut conn, &row).unwrap(), row.state());
    }
    use orderkeeper::testing::db::ledger;
    let alice_id: AccountId = alice.id.parse().unwrap();
    let cash = ledger::balance(&mut conn, alice_id, ledger::CASH).unwrap();
    // 20 × 4 × 100.00 reserved; 20 × 100.00 of it spent or given back, 20 × 1.00 back to cash.
    assert_eq!(
        (cash.available, cash.reserved),
        (100_000_000 - 800_000 + 2_000, 600_000)
    );
    assert_eq!(
        ledger::balance(&mut conn, alice_id, "INFY")
            .unwrap()
            .available,
        20
    );
}

#[actix_web::test]
async fn an_acknowledgement_after_a_fill_is_a_duplicate_and_raises_no_alarm() {
    let books = books_with_alice();
    let (mut conn, account) = (books.pool.get().unwrap(), books.alice);
    let owner = unowned();
    let [alone, batched]: [OrderId; 2] =
        std::array::from_fn(|i| new_order(&mut conn, account, &format!("ack{i}"), &owner));
    for order in [alone, batched] {
        mark_placement_sent(&mut conn, order, db::now_micros());
        // The venue's fill push overtakes the placing step's answer, as real venues allow.
        let fill = orderkeeper::domain::VenueFill {
            fill_id: format!("F-{order}"),
            qty: 1,
            price: Cents(10_000),
        };
        let recorded = orderkeeper::testing::orders::lifecycle::record_fills(
            &mut conn,
            order,
            &owner,
            &[fill],
            orderkeeper::domain::FillSource::Push,
            db::now_micros(),
        )
        .unwrap();
        assert_eq!(recorded, [Applied::Recorded]);
    }
    let answer = in_one_phase(&mut conn, &[item(alone, &owner, Action::Accepted)]);
    assert_eq!(answer, vec![Ok(Applied::Duplicate)]);
    // In a batch with another step it is the same duplicate.
    let answers = in_one_phase(
        &mut conn,
        &[
            item(batched, &owner, Action::Accepted),
            item(alone, &owner, Action::Accepted),
        ],
    );
    assert_eq!(answers, vec![Ok(Applied::Duplicate); 2]);
    for order in [alone, batched] {
        assert_eq!(
            kinds(&mut conn, order),
            vec![
                (1, ActionKind::Created),
                (2, ActionKind::PlacementSent),
                (3, ActionKind::Fill)
            ]
        );
        let state = orders::find(&mut conn, order).unwrap().unwrap().state();
        assert_eq!(state.status, OrderStatus::PartiallyFilled);
        let raised = orderkeeper::testing::db::alarms::of_order(&mut conn, order).unwrap();
        assert!(raised.is_empty(), "{raised:?}");
    }
}

/// A poll that finds several fills the log lacks records them in one phase, each as it would be
/// alone: the same fill twice in the copy is one fill, and one over the order's quantity is refused
/// with an alarm while the others stand.
#[actix_web::test]
async fn a_polled_copys_missing_fills_are_recorded_in_one_phase_each_as_if_alone() {
    let books = books_with_alice();
    let (mut conn, account) = (books.pool.get().unwrap(), books.alice);
    let owner = unowned();
    let order = new_order(&mut conn, account, "polled", &owner);
    mark_placement_sent(&mut conn, order, db::now_micros());
    let fill = |id: &str, qty: i64| orderkeeper::domain::VenueFill {
        fill_id: id.to_owned(),
        qty,
        price: Cents(9_900),
    };
    let qty = orders::find(&mut conn, order).unwrap().unwrap().qty;
    let fills = [
        fill("P-1", 1),
        fill("P-2", 1),
        fill("P-1", 1),
        fill("P-3", qty),
    ];
    let applied = orderkeeper::testing::orders::lifecycle::record_fills(
        &mut conn,
        order,
        &owner,
        &fills,
        orderkeeper::domain::FillSource::Poll,
        db::now_micros(),
    )
    .unwrap();
    assert_eq!(
        applied[..3],
        [Applied::Recorded, Applied::Recorded, Applied::Duplicate]
    );
    assert!(matches!(applied[3], Applied::Refused(_)), "{applied:?}");
    assert_eq!(
        kinds(&mut conn, order),
        vec![
            (1, ActionKind::Created),
            (2, ActionKind::PlacementSent),
            (3, ActionKind::Fill),
            (4, ActionKind::Fill)
        ]
    );
    let row = orders::find(&mut conn, order).unwrap().unwrap();
    assert_eq!(row.filled_qty, 2);
    let raised = orderkeeper::testing::db::alarms::of_order(&mut conn, order).unwrap();
    assert_eq!(raised.len(), 1, "the overfill is alarmed: {raised:?}");
    // The venue's push of a fill the poll recorded is a duplicate, delivered twice in one batch
    // too; and so after the order ended, with no alarm.
    for (event, then_end) in [("E-late", true), ("E-after-the-end", false)] {
        let items = [
            push(event, order, Some(("P-1", 1))),
            push(event, order, Some(("P-1", 1))),
        ];
        let answers = conn
            .transaction(|conn| intake::take_in_pushes(conn, &items))
            .unwrap();
        assert!(
            matches!(answers[..], [Ok(Intake::Duplicate), Ok(Intake::Duplicate)]),
            "{answers:?}"
        );
        if then_end {
            let ended = in_one_phase(&mut conn, &[step(order, &owner, canceled_at_venue(2))]);
            assert_eq!(ended, vec![Ok(Applied::Recorded)]);
        }
    }
    let raised = orderkeeper::testing::db::alarms::of_order(&mut conn, order).unwrap();
    assert_eq!(raised.len(), 1, "only the overfill: {raised:?}");
}

#[actix_web::test]
async fn a_new_order_gets_the_epoch_its_engine_holds_when_it_commits() {
    let books = books_with_alice();
    let (mut conn, account) = (books.pool.get().unwrap(), books.alice);
    // The engine took the requests under epoch 1, then (paused, say) was joined again under 2
    // before they committed.
    let taken_under = leases::join(&mut conn, "engine@paused", 60_000_000).unwrap();
    let now = leases::join(&mut conn, "engine@paused", 60_000_000).unwrap();
    assert_eq!((taken_under.epoch, now.epoch), (1, 2));
    let (first, second) = (
        limit_submission(account, "first", 1, 100),
        limit_submission(account, "second", 1, 100),
    );
    let created: Vec<OrderId> = conn
        .transaction(|conn| {
            submit::submit(conn, &[(&first, &taken_under), (&second, &taken_under)])
        })
        .unwrap()
        .into_iter()
        .map(|answer| answer.unwrap().created.unwrap().id)
        .collect();
    let [alone, batched] = [created[0], created[1]];
    for order in [alone, batched] {
        let row = orders::find(&mut conn, order).unwrap().unwrap();
        assert_eq!((row.owner.as_str(), row.owner_epoch), ("engine@paused", 2));
    }
}

#[actix_web::test]
async fn a_release_for_an_unsent_order_reads_whether_it_was_sent_in_its_own_transaction() {
    let books = books_with_alice();
    let (mut conn, account) = (books.pool.get().unwrap(), books.alice);
    let owner = unowned();
    let [sent, unsent]: [OrderId; 2] =
        std::array::from_fn(|i| new_order(&mut conn, account, &format!("release{i}"), &owner));
    // One step placed `sent` meanwhile; a step that read the order before that still thinks it
    // was never sent.
    mark_placement_sent(&mut conn, sent, db::now_micros());
    for order in [sent, unsent] {
        orderkeeper::testing::orders::cancel::request(&mut conn, account, order, db::now_micros())
            .unwrap();
    }
    assert!(matches!(
        lifecycle_release(&mut conn, sent, &owner),
        Applied::Refused(_)
    ));
    assert_eq!(
        lifecycle_release(&mut conn, unsent, &owner),
        Applied::Recorded
    );
    let status =
        |conn: &mut DbConnection, order| orders::find(conn, order).unwrap().unwrap().status;
    assert_eq!(status(&mut conn, sent), OrderStatus::PendingCancel);
    assert_eq!(status(&mut conn, unsent), OrderStatus::Canceled);
    // What `sent` holds stays reserved until the venue answers: 4 shares at 100.00.
    let cash = orderkeeper::testing::db::ledger::balance(&mut conn, account, "CASH").unwrap();
    assert_eq!(cash.reserved, 4 * 10_000);
}

fn lifecycle_release(conn: &mut DbConnection, order: OrderId, owner: &Fence) -> Applied {
    let answers = in_one_phase(conn, &[step(order, owner, StatusStep::ReleaseUnsent)]);
    answers[0].clone().expect("answered")
}

#[actix_web::test]
async fn one_phase_answers_each_submission_as_it_would_be_answered_alone() {
    let books = books_with_alice();
    let (mut conn, account) = (books.pool.get().unwrap(), books.alice);
    let owner = unowned();
    let first = limit_submission(account, "k1", 1, 10_000);
    let again = limit_submission(account, "k1", 1, 10_000);
    let mut reused = limit_submission(account, "k1", 2, 10_000);
    reused.fingerprint = "another request".into();
    // 2,000 shares at 100.00 is more than alice's 100,000.00: refused, and kept under its key.
    let too_big = limit_submission(account, "k2", 2_000, 10_000);
    // A third stored key is one past this submission's cap of two.
    let mut capped = limit_submission(account, "k3", 1, 10_000);
    capped.max_stored_keys = 2;
    let items = [&first, &again, &reused, &too_big, &capped].map(|s| (s, &owner));
    let answers = conn
        .transaction(|conn| submit::submit(conn, &items))
        .unwrap();

    let created = answers[0].as_ref().unwrap();
    assert_eq!((created.response.status, created.replayed), (201, false));
    let replay = answers[1].as_ref().unwrap();
    assert!(replay.replayed && replay.created.is_none());
    assert_eq!(replay.response, created.response);
    assert!(matches!(
        answers[2],
        Err(orderkeeper::testing::OrderError::KeyReused)
    ));
    let refused = answers[3].as_ref().unwrap();
    assert_eq!(refused.response.status, 422);
    assert!(refused.response.body.contains("insufficient_funds"));
    assert!(matches!(
        answers[4],
        Err(orderkeeper::testing::OrderError::TooManyStoredKeys(2))
    ));

    let orders: i64 = {
        use diesel::prelude::*;
        orderkeeper::with_conn!(conn, |c| orderkeeper::testing::db::schema::orders::table
            .count()
            .get_result(c))
        .unwrap()
    };
    assert_eq!(orders, 1);
    assert_eq!(stored_key_count(&mut conn, account), 2);
    let stored = orderkeeper::testing::db::idempotency::find(&mut conn, account, "k2").unwrap();
    assert_eq!(stored.map(|k| k.status_code), Some(422));

    // Expired, a key starts a new request, and its place is taken over, not added.
    let mut expired = limit_submission(account, "k9", 1, 10_000);
    expired.ttl_micros = 0;
    crate::helpers::submit_one(&mut conn, &expired, &owner).unwrap();
    assert_eq!(stored_key_count(&mut conn, account), 3);
    let mut later = limit_submission(account, "k9", 1, 10_000);
    later.now = expired.now + 1;
    let renewed = crate::helpers::submit_one(&mut conn, &later, &owner).unwrap();
    assert!(!renewed.replayed && renewed.created.is_some());
    assert_eq!(stored_key_count(&mut conn, account), 3);
}

fn stored_key_count(conn: &mut DbConnection, account: AccountId) -> i64 {
    use diesel::prelude::*;
    use orderkeeper::testing::db::schema::accounts;
    orderkeeper::with_conn!(conn, |c| accounts::table
        .find(account)
        .select(accounts::stored_keys)
        .first(c))
    .unwrap()
}

/// Of an order's moves, only its end changes a column an index holds (whether it is open): being
/// placed and acknowledged rewrite its row where it lies (a heap-only update), with no new entry
/// in any index of the orders.
#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[actix_web::test]
async fn moves_that_keep_an_order_open_add_no_index_entries() {
    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Updates {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        updated: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        in_place: i64,
    }
    let books = books_on_postgres();
    let (mut conn, account) = (books.pool.get().unwrap(), books.alice);
    let owner = unowned();
    let order = new_order(&mut conn, account, "moves", &owner);
    // What the backend counted so far (its counts reach the shared statistics later).
    let counted = |conn: &mut DbConnection| -> Result<Updates, OrderError> {
        use diesel::RunQueryDsl;
        Ok(diesel::sql_query(
            "SELECT n_tup_upd AS updated, n_tup_hot_upd AS in_place \
             FROM pg_stat_xact_user_tables WHERE relname = 'orders'",
        )
        .get_result::<Updates>(postgres(conn))?)
    };
    let mut updates_of = |moved: Arc<StatusItem>| {
        conn.transaction(|conn| {
            let before = counted(conn)?;
            let answers = status::record(conn, &[moved])?;
            assert_eq!(answers.len(), 1);
            assert_eq!(answers.into_iter().next().unwrap()?, Applied::Recorded);
            let after = counted(conn)?;
            Ok::<_, OrderError>(Updates {
                updated: after.updated - before.updated,
                in_place: after.in_place - before.in_place,
            })
        })
        .unwrap()
    };
    for (moved, what) in [
        (Action::PlacementSent, "placed"),
        (Action::Accepted, "acknowledged"),
    ] {
        let updates = updates_of(item(order, &owner, moved));
        assert!(updates.updated > 0, "{what}: {updates:?}");
        assert_eq!(updates.in_place, updates.updated, "{what}");
    }
    // Ended, it leaves the indexes of open orders.
    let ended = Updates {
        updated: 1,
        in_place: 0,
    };
    let canceled = step(order, &owner, canceled_at_venue(0));
    assert_eq!(updates_of(canceled), ended, "canceled");
}

/// The reads of open orders use the index of open orders in any plan, the one PostgreSQL keeps
/// for every value of a statement included: an engine's thousands of ended orders are not read.
#[ignore = "needs ORDERKEEPER_TEST_POSTGRES: run with -- --include-ignored"]
#[actix_web::test]
async fn open_orders_are_read_through_their_index_in_any_plan() {
    let books = books_on_postgres();
    let (mut conn, account) = (books.pool.get().unwrap(), books.alice);
    more_orders(&mut conn, account, 2_000);
    leases::join(&mut conn, "engine@here", 60_000_000).unwrap();
    // All but two of the engine's orders end.
    conn.batch_execute(
        "UPDATE orders SET status = 'canceled', is_open = FALSE \
         WHERE id NOT IN (SELECT id FROM orders ORDER BY id LIMIT 2); \
         ANALYZE orders; SET plan_cache_mode = force_generic_plan",
    )
    .unwrap();
    let (open, read) = reading(&mut conn, "orders", |conn| {
        orders::open_order_ids(conn, "engine@here")
    });
    assert_eq!(open.len(), 2);
    assert_eq!(
        read.seq_scan, 0,
        "open orders were looked for in every order"
    );
    assert!(
        read.rows < 10,
        "looking for open orders read {} orders",
        read.rows
    );
}
