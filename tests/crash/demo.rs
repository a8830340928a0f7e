//! `orderkeeper demo` as a newcomer runs it: its kills, its report, and a verdict that comes from
//! the books, not from the script.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use orderkeeper::demo::EXCHANGE_BOOK;
use orderkeeper::exchange::sim::market::LISTINGS;
use serde_json::json;

use crate::books::{self, Opening};
use crate::processes::{self, Engine, Simulator};

/// The line of the report that starts with `label`, after its label.
fn report_line<'a>(report: &'a str, label: &str) -> &'a str {
    report
        .lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .map_or("", str::trim)
}

/// The first number in `text`.
fn first_number(text: &str) -> u64 {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Runs the demo with `flags`; requires its pass, the audit's with the exchange's record, its
/// `kills`, and no acknowledged order lost. Returns its report.
fn a_passing_run(dir: &Path, url: &str, flags: &[&str], kills: u32) -> String {
    let (passed, report, log) = processes::run_demo(dir, url, flags);
    assert!(passed, "the demo failed:\n{report}\n{log}");
    let audit = report_line(&report, "audit");
    assert!(audit.starts_with("pass:"), "{report}");
    assert!(audit.contains("the exchange's record included"), "{report}");
    assert_eq!(report.lines().last(), Some("result: pass"), "{report}");
    let killed = format!("{kills} SIGKILLs");
    assert!(
        report_line(&report, "kills").starts_with(&killed),
        "{report}"
    );
    let acknowledged = first_number(report_line(&report, "orders"));
    assert!(acknowledged > 50, "{report}");
    assert_eq!(
        report_line(&report, "lost orders"),
        format!("0 of {acknowledged} acknowledged"),
        "{report}"
    );
    report
}

#[test]
fn the_demo_kills_the_engine_three_times_and_passes_the_audit() {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::database::url_for(dir.path());
    let report = a_passing_run(dir.path(), &url, &["--duration", "20s"], 3);
    // A fifth of the pushes are dropped and the engine is killed three times: some fills can
    // only have come by polling.
    let fills = report_line(&report, "fills");
    let by_poll = fills.split(", ").nth(1).map_or(0, first_number);
    assert!(by_poll > 0, "{report}");
    let feed = report_line(&report, "feed");
    assert!(feed.contains(": 0 breaks, 0 followers unlike"), "{report}");
    // Each follower reconnected after each kill.
    let connections = feed.split(" over ").nth(1).map_or(0, first_number);
    assert!(connections >= 4 * 4, "{report}");
    check_the_books_of_the_run(dir.path(), &url);
    crate::database::drop_for(dir.path());
}

#[test]
fn the_demo_over_fix_passes_the_audit_and_the_books() {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::database::url_for(dir.path());
    let flags = ["--venue", "fix", "--duration", "15s", "--kills", "2"];
    let report = a_passing_run(dir.path(), &url, &flags, 2);
    assert!(
        report
            .lines()
            .any(|l| l.ends_with("over a FIX 4.4 session")),
        "{report}"
    );
    // Fills came over the session.
    let fills = report_line(&report, "fills");
    assert!(first_number(fills) > 0, "{report}");
    check_the_books_of_the_run(dir.path(), &url);
    crate::database::drop_for(dir.path());
}

/// The books checker, not the demo's own audit: the demo's database against the exchange's
/// record, which the run kept in its directory and a simulator of its own reopens here.
fn check_the_books_of_the_run(dir: &Path, url: &str) {
    let book = std::fs::read_dir(dir)
        .expect("the test's directory")
        .flatten()
        .map(|entry| entry.path().join(EXCHANGE_BOOK))
        .find(|path| path.exists())
        .expect("the demo kept the exchange's book");
    let sim = Simulator::start_with(
        processes::free_port(),
        1,
        &[("--book-file".to_owned(), book.display().to_string())],
        50,
    );
    let shares: BTreeMap<String, i64> = LISTINGS
        .iter()
        .map(|(symbol, _)| ((*symbol).to_owned(), 1000))
        .collect();
    let openings: HashMap<String, Opening> = books::accounts(url)
        .into_iter()
        .filter(|(_, name)| name.starts_with("trader-"))
        .map(|(id, _)| {
            let opening = Opening {
                cash: 1_000_000_000,
                shares: shares.clone(),
            };
            (id, opening)
        })
        .collect();
    assert_eq!(openings.len(), 4, "the demo's four traders");
    let exchange = actix_web::rt::System::new().block_on(sim.orders());
    assert!(
        exchange.len() > 50,
        "{} orders on the exchange",
        exchange.len()
    );
    let wrong = books::check(url, &exchange, &openings);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// On a database whose books were changed behind the engine's back, the demo's audit fails,
/// names the check, and the demo exits with a failure.
#[actix_web::test]
async fn the_demo_fails_when_the_books_do_not_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let engine_port = processes::free_port();
    let sim = Simulator::start(engine_port, 5, false);
    let mut engine = Engine::start(dir.path(), engine_port, &sim.url());
    let account = engine
        .admin_post(
            "/v1/admin/accounts",
            &json!({"name": "mallory", "cash": "100.00", "positions": {}}),
        )
        .await;
    let account_id = account["account_id"].as_str().unwrap().to_owned();
    assert!(engine.terminate().await);
    let url = engine.database_url().to_owned();
    processes::tamper_with_balance(&url, &account_id, "CASH", 1);

    let flags = ["--duration", "3s", "--kills", "1"];
    let (passed, report, log) = processes::run_demo(dir.path(), &url, &flags);
    assert!(
        !passed,
        "the demo passed on corrupted books:\n{report}\n{log}"
    );
    let audit = report_line(&report, "audit");
    assert!(audit.starts_with("FAIL:"), "{report}");
    assert!(audit.contains("balances_equal_ledger"), "{report}");
    assert!(audit.contains(&account_id), "{report}");
    assert_eq!(report.lines().last(), Some("result: FAIL"), "{report}");
    // One kill is said in the singular, in the report and in the line that announces it.
    assert!(
        report_line(&report, "kills").starts_with("1 SIGKILL;"),
        "{report}"
    );
    assert!(report.contains(" with 1 kill;"), "{report}");
    crate::database::drop_for(dir.path());
}
