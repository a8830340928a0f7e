//! orderkeeper: an equity order engine that never charges twice and never loses an order.
//!
//! # Layout
//! - [`domain`]: money, ids, symbols, a new order, the order's life (one transition table), and
//!   what a venue says (`domain::venue`). No I/O.
//! - `db`: the SQLite pool, the schema, how domain types are stored, and queries per table group.
//! - `idempotency`: the key, the in-flight claim, and the one replay check.
//! - `orders`: atomic phases that change an order (submit, cancel, the actor's phases), parsing
//!   and pricing a new order, and its JSON views.
//! - `engine`: one supervised actor per open order, its steps, and recovery after a restart.
//! - [`exchange`]: the client for the venue, its price cache, and the fault-injecting simulator.
//!   Its wire format stays inside it: the client and the push handler translate to the domain's
//!   venue types.
//! - `feed`: the outbox relay, the event hub, and the WebSocket sessions of the live feed.
//! - `http`: the API handlers; `error` maps every failure to one JSON shape; `app` is what
//!   they share.
//! - [`audit`]: the money audit, from the store and the exchange's own record.
//! - `limits`: the per-account order rate and feed session cap.
//! - `metrics`: the Prometheus figures behind `GET /metrics`; [`fault_points`]: the crash
//!   matrix's named points.
//! - [`demo`]: `orderkeeper demo`, the crash-and-restart demonstration with its report.
//! - [`config`], [`telemetry`], [`startup`]: the command line, logging, and wiring it all up;
//!   `shutdown`: the one signal that stops it all.
//! - `reaper`: keeps the bounded stores (keys, outbox, rate windows) bounded while it runs.
//! - [`testing`]: the one door below the HTTP API for the integration tests, the benchmarks and
//!   the fuzz targets. The modules linked above are the public surface; the rest are private.
//!
//! # Glossary
//! - **phase**: one atomic change, one transaction (or a savepoint of a group commit): it writes an
//!   action with every effect it has, or nothing.
//! - **step**: what an order's actor does to carry the order on: a venue call between two phases.
//!   `engine::decide` holds what a step decides; `engine::steps` does it.
//! - **move** (`orders::phase::Move`): an order's action as the transition table allowed it, with
//!   the order's row as it leaves it; `phase::write` writes any number of plans.
//! - **venue report** (`domain::VenueReport`): something the venue sent by itself (a push), keyed by
//!   what it says; **venue order**: the venue's own copy of an order, the authority on its fills.
//! - **writers** (`engine::writers`): the one entry point per kind of phase (new orders, status
//!   steps, pushes), each gathered into batches that answer every item.
//! - **fence**: an engine's id and lease epoch; a phase that changes an order checks that its fence
//!   still owns it. **Lease**: an engine's claim on its open orders, renewed by its keeper.
//! - **note** (table `order_notes`): left by one engine for the engine that owns an order (a cancel
//!   or a fill it took in), picked up by the owner's keeper.
//! - **fresh snapshot**: a new order's row as its submit committed it, handed to the order's first
//!   step so that the step need not read it back; dropped once anything else writes the order.
//! - **protection price**: what a market order reserves at and is sent with (last price + 5%).
//! - **balance after**: where an entry would leave its balance, worked out under the balance's lock
//!   before anything is written.
//! - **recovery**: the first step of an order picked up after a start or a takeover.
//!
//! # Flows
//! | flow | path |
//! |---|---|
//! | submit | `http::orders` → `orders::request` (parsed once into a [`domain::NewOrder`]) → `idempotency` → `orders::pricing` → `Engine::submit` → `db::batcher` (submissions that arrive together) → `orders::submit::submit` (plans each submission of the batch, then one `orders::phase::write`; a batch that rolls back runs again one by one) → the order's actor |
//! | place | `engine::order_actor` → `engine::steps::Step::run` (the commands of `engine::decide::decide`) → `Step::record_status` (`placement_sent`) → `engine::writers::Writers` (batched with other orders' steps by `db::batcher`) → `orders::status::record` → `ExchangeClient::place` → `Step::record_status` (`accepted`, or the end it reported) |
//! | push | `http::exchange_events` → `Engine::take_push` → `Writers::take_in_push` (batched) → `orders::intake::take_in_pushes`: each fill through `lifecycle::Fills` (`check_fill`, then `settle_fill`, into a `phase::Batch`) → `orders::phase::write`; no fill, `db::exchange_events::store_new` → the actor only for what may end the order (`engine::decide`, from `Heard::Push`) |
//! | fill by poll | the actor's poll timer → `Step::run` (`Heard::FillsIn` with the venue's copy) → `Command::RecordFills` → `lifecycle::record_fills` (the copy's missing fills in one phase), then the end through `orders::status::record` |
//! | cancel | `http::orders` → `Engine::cancel` (one order) or `Engine::cancel_all` → `orders::cancel::request` / `request_all` (202) → `Step::run` → `ExchangeClient::cancel` → `orders::status::record` (the end, and the release) |
//! | replace | `http::orders` → `Engine::replace` → `orders::replace::request` (the hold for either version, `replace_requested`, the stored answer: 202) → the actor's `Command::ReplaceAtVenue` → `ExchangeClient::replace` → `orders::status::record` (`replaced` or `replace_rejected`, the hold trimmed to the terms that stand) |
//! | expire | `ioc`/`fok`: the venue ends the rest, and `domain::terminal_action` records it `expired`; `day`: `engine::expiry` (each second, the engine's orders past `expires_at`) → `orders::cancel::request_expiries` (`expiry_requested`) → the cancel flow, which ends them `expired` |
//! | stop | `orders::submit` records it `held` and reserved (no call) → its first step puts it in the engine's [`domain::StopBook`] → `engine::stops` (every 250 ms, at the cached last prices) → `orders::trigger::record` (`triggered`, once, fenced) → the actor places it as a new order; the actor's end takes it out of the book |
//! | positions | each fill's `lifecycle::settle_fill` folds it into its account's position in its symbol (`domain::Position`, read once the symbol's balance is locked) → `phase::write` (`db::positions::upsert`, the fill numbered in the fold); `GET /v1/positions` → `http::positions` (marked at `PriceCache::all`); the audit folds the fills again |
//! | recover | `startup` → `Engine::recover` (the venue listed once: `ExchangeClient::orders_listed`, open orders and what changed since the oldest placement in doubt) → each actor's first step (`Reason::Reconcile` with its listed copy, answered by `decide::from_listing`); `Engine::adopt_orphans` later |
//! | outbox | `phase::write` (every action's event, in the transaction of the action) → `db::outbox::append_events` → `feed::relay` → `feed::hub` |
//! | feed | `http::stream` → `feed::session`: replay from `db::outbox::since`, then live |

//!
//! # Design
//!
//! The database is the only source of truth. Each order has an append-only action log; its status is a fold
//! of that log through one transition table (`src/domain/order.rs`) that refuses every move it does not list.
//! A refused move is never applied: it is recorded as an alarm.
//!
//! **Atomic phases.** Every change is one transaction that writes the action, its ledger entries, its fill
//! row, the order's projection row and its feed event (`src/orders/`). Every call to the exchange sits between
//! two phases and names the order by its client order id (`ok-` + the order id), so repeating it is harmless.
//!
//! **Submission.** `POST /v1/orders` parses its body once into a checked order and stores the idempotency
//! key, the request's fingerprint (SHA-256 of the method, the path and the order's canonical JSON, so key
//! order, white space and `"1520.5"` against `"1520.50"` make no difference) and the exact answer in the same transaction as the order,
//! its `created` action, its reservation and its `order.created` event. A replay returns the stored bytes.
//! A second request while the first is running gets `409` (an in-process map of keys in flight, with the
//! primary key `(account, key)` as the final word). Validation errors are not stored; business refusals are.
//! The commit and what must follow it (the order's actor) run on a task of their own, so a client that
//! resets the connection mid-request cannot leave a committed order unsent; a sweep every 5 s gives any open
//! order without a live actor its actor back, through the same path as start-up recovery.
//!
//! **Order actors** (`src/engine/`). Each open order has one actix actor under `actix::Supervisor`, found
//! through a `DashMap` registry. Every message is handled to its end before the next (an atomic response),
//! so the actor's steps never overlap; the one other writer is the customer's cancel, recorded at once by
//! `DELETE` (which answers 202 without waiting for the actor's current step), and every phase reads the order
//! inside its own transaction. A step reads the order once it has its place among the steps; only a new
//! order's first step starts from the row its submit committed, unless a cancel came in meanwhile. The
//! actor carries the order on from whatever its log says:
//!
//! | recorded state | next step |
//! |---|---|
//! | `pending_new`, never sent | record `placement_sent`, then place (retried with backoff and full jitter) |
//! | `pending_new`, sent | look the order up by client order id: record what the exchange has, or place it if it has nothing |
//! | `held` (a stop) | nothing is on the exchange: watch it again for its trigger |
//! | `pending_cancel`, never sent | nothing is on the exchange: cancel and release at once |
//! | `pending_cancel`, sent | cancel on the exchange (which also tombstones an id it never saw), then follow its answer |
//! | `new`, `partially_filled` | poll the exchange's copy on a jittered timer (1–3 s) and record what is missing |
//!
//! **After an unknown outcome, a refusal is no answer.** When an exchange call's outcome is unknown (a
//! timeout, a cut connection, a 5xx) and its retry is refused with a 4xx, the venue may only be refusing a
//! repeat of something it did: many venues answer a repeated `client_order_id` with 409. The client reports
//! such a refusal as ambiguous, and the actor looks the order up by `client_order_id` and follows what the
//! exchange holds. A placement refused after an earlier unanswered one is looked up too; if the exchange
//! holds nothing, the id is tombstoned (cancelled) there before the order is rejected and its cash released.
//!
//! Fills come by push (`POST /v1/exchange/events`, HMAC-checked in constant time, stored once per event: its
//! id together with what it says, since a venue that restarts may number its events from the start again) and
//! by poll. A `DashMap` of recorded fills is the fast path; `PRIMARY KEY (order_id, fill_id)` with
//! `ON CONFLICT DO NOTHING` decides, and the ledger moves only when the row is new. A fill is refused, with an
//! alarm and without moving anything, when it would take the order over its quantity, when its price is
//! outside the order's limit (a buy above its limit or protection price, a sell below its limit), when its id
//! was recorded before with another quantity or price, or when a balance would overflow. Before any terminal
//! status the actor reads the exchange's own copy and records every fill it lacks; then it ends the order as
//! the exchange's copy ended (`filled` only when every share was recorded here, else `canceled` or
//! `rejected`), releasing what is still reserved (the compensating step). If the two disagree on the
//! quantity filled, the order still ends, and the difference is alarmed for an operator: no order stays open
//! once its exchange copy has ended. Nothing is refunded without the exchange's answer, except an order that
//! was provably never sent.
//!
//! Alarms (`alarms` table, `orderkeeper_alarms_total{kind}`) are counted per condition: a wedged condition
//! seen on every poll grows one row's `count`, it does not add rows.
//!
//! A panic inside a step stops the actor, and its supervisor restarts it from the log after a backoff that
//! doubles with each restart in a row (100 ms up to 30 s); a step that fails is tried again the same way. At
//! start-up every open order gets its actor back; a step takes its place among the 32 that may run at once
//! before it even loads its order, so a restart with many open orders is paced. The venue is listed once
//! first: orders in step with it only poll, and a placement in doubt takes its listed copy as the answer
//! to its lookup. `/readyz` says 503 until every order in doubt has finished its first step; those start
//! first, ahead of any backlog of orders never sent.
//!
//! **Ledger** (`src/db/ledger.rs`). Money is integer cents, shares are integers; nothing is computed in floating
//! point. Every movement is an entry with its own key (`order:{id}:reserve`, `order:{id}:fill-cash:{fill}`,
//! `order:{id}:fill-shares:{fill}`, `order:{id}:release`, …): the same effect applied twice changes nothing,
//! and since the exchange's fill id always comes last, after a fixed name for the effect, no fill id can
//! collide with another entry's key. Balances are the running sum of the entries, summed with checked
//! arithmetic (SQLite would turn an overflowing sum into a float), with `CHECK (>= 0)`. A buy reserves `qty × limit` (a market buy `qty × last price × 1.05`, rounded
//! up, which is also its protection limit on the exchange); each fill spends the reservation for its shares
//! and returns any price improvement; a sell reserves shares and is credited per fill.
//!
//! **After a restart** the dashboard shows a banner ("engine restarted at …; N open orders picked up, M
//! carried on by recovery, K fills recovered by polling", from `/healthz`'s `started_at` and `recovery`), and
//! marks each order an `order.recovered` event named. Its badge shows the last money audit's verdict.
//!
//! **Live feed** (`src/feed/`). Each transaction's events go to the outbox with a per-account `seq` taken in
//! the same transaction. A relay, woken after commits and sweeping every 250 ms, reads the events after the
//! hub's cursor for each account it follows and hands them, in seq order, to a hub actor. A WebSocket session authenticates with its first message, subscribes,
//! replays `seq > since` from the outbox, then goes live, dropping the overlap by seq. Each session's queue is
//! bounded (256 events, behind a 64 KiB kernel send buffer); a client that stops reading is closed with 4008 and
//! resumes with `since`. The hub never waits on a session. Pings go out every 10 s. The feed uses
//! `actix-web-actors`, which is deprecated upstream in favour of `actix-ws`; it is still maintained and was
//! asked for by name.
//!
//! On SQLite one engine process owns the database file. On PostgreSQL several engines share one database,
//! each open order owned by one of them through a lease (see the README's "Running several engines").
//! Over FIX the engines given one session share it as they share orders: one holds it under an epoch
//! (`db::fix_sessions::claim`), the others stand by and claim it once the holder's lease runs out.
//!
//! ## Durability
//!
//! SQLite runs in WAL mode with `synchronous = FULL`: every commit fsyncs the log before the answer is sent,
//! so anything acknowledged survives `kill -9` and a power loss alike.
//!
//! **Group commit** (`src/db/writer.rs`). Every atomic phase, from every request and every actor, runs on
//! one writer thread with a connection of its own. The writer takes the first phase waiting and every phase
//! already queued behind it (at most 512), runs each in a savepoint of one `BEGIN IMMEDIATE` transaction,
//! commits once, and only then answers each caller. A phase that fails (a business refusal, a CHECK
//! violation) rolls back to its savepoint and spoils no other phase. There is no waiting window: a lone phase
//! commits at once, and batches grow only while the previous commit is on its way to disk, so one fsync
//! serves many answers. Reads use a pool of their own connections; WAL readers never wait for the writer.
//! Phases read only what they need: an order's state is its projection row (written with each action, so it
//! always equals the fold of its log), a fill is checked by its key, an account's token hash is read once.
//! On PostgreSQL, which groups the commits of concurrent transactions into one flush of its log by itself,
//! `--db-writers` threads (16) each run one phase per transaction on a connection of their own; rows are
//! locked as they are written, so the phases of one account wait for each other, not for the whole engine.
//! Commits are `synchronous_commit = on`: a 201 is on disk.
//!
//! **Batched submits** (`src/db/batcher.rs`, `orders::submit::submit`). On PostgreSQL every statement
//! is a round trip, and a submission alone is about ten of them. So new orders are gathered across
//! requests: while two batches are in the database, the submissions that arrive wait together and
//! go in as the next batch (at most 128), written in one phase with one statement per table. There is
//! one submit path, and a lone submission is a batch of one. The phase reads the stored keys among the
//! batch's, locks the balances it needs in the order every phase takes them (by account; cash before
//! shares), then the accounts, and decides each submission in turn under those locks: a replay (of a key
//! stored before, or answered earlier in the same batch), a reused key, the stored-key cap, a refusal kept
//! under its key, or a new order whose reservation lands. Then it takes each account's event seqs and key
//! places in one statement and inserts the orders, their first actions, the ledger entries, the events and
//! the keys, each table in one statement. A batch that rolls back (a key stored meanwhile by another
//! engine) runs again one submission at a time. SQLite uses the same path (its writer already commits
//! many phases at once; the batch saves statements). The `orderkeeper_submit_batch_orders` histogram shows
//! the batch sizes.
//!
//! **Batched actor phases** (`orders::status`, `orders::intake`). Every status step of an order's actor
//! (`placement_sent`, `accepted`, the end the venue reported, the release of an order never sent) goes
//! through one entry point, `engine::writers::Writers`, which gathers steps across actors, one batch in
//! the database at a time. A batch is answered item by item, as TigerBeetle answers events: one phase
//! locks the orders it moves in id order (and, on PostgreSQL, the balances a terminal step releases),
//! checks each one's fence and its move in the transition table, raises an alarm for a refused move,
//! releases what an ended order holds, takes the accounts' event seqs in one statement, and writes the
//! actions, the projection rows and the events a statement per table. An order named twice starts its
//! second step from the first one's row. A step alone is a batch of one, and a batch that rolls back
//! runs again one item at a time, so one bad item never costs its neighbours their answer. A push
//! without a fill does not lock its order, so it never waits for the actor's phase to commit, unless
//! it names a replace's new version while the engine still waits for the replace's answer: then the
//! phase locks what every push names and records the replace first (the venue took it), so a fill of
//! the new terms fits them whichever report comes first. Pushes
//! that bring a fill are batched too (`orders::intake::take_in_pushes`), but only for their commit: each
//! fill is recorded exactly as alone, in arrival order, so a fill that comes twice in one batch is
//! recorded once. On
//! PostgreSQL the batch first locks the rows its fills will write, orders by id, then balances, then
//! accounts by id, the order every phase takes them in; taken a fill at a time, two fills of different
//! accounts could lock them crosswise against another batch. The actor remembers
//! whether the order may still be pending new: an acknowledgement that arrives while the placing step
//! records the placement's own answer finds nothing to do and runs no step.
//!
//! Migrations for each backend (`migrations/sqlite`, `migrations/postgres`) are embedded in the binary and run
//! at start-up. Both schemas use TEXT UUIDv7 ids, BIGINT cents and shares, and BIGINT microsecond times; the
//! store has one interface over both (`src/db/connection.rs`), and the few statements that differ (row locks,
//! `SKIP LOCKED`) say so where they are.

#[macro_use]
mod macros;

#[cfg(test)]
mod layering;

pub(crate) mod app;
pub mod audit;
pub(crate) mod auth;
pub mod config;
pub(crate) mod db;
pub mod demo;
pub mod domain;
pub(crate) mod engine;
pub(crate) mod error;
pub mod exchange;
pub mod fault_points;
pub(crate) mod feed;
pub(crate) mod http;
pub(crate) mod idempotency;
pub(crate) mod limits;
pub(crate) mod metrics;
pub(crate) mod orders;
pub(crate) mod reaper;
pub(crate) mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod testing;

/// Each backend's own connection, named for `with_conn!` wherever it expands.
#[doc(hidden)]
pub use db::connection::Inner as __BackendConnection;
