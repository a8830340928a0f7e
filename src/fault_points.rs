//! Named fault points for the crash matrix and the fault tests.
//!
//! They cost nothing unless the `fail` crate's `failpoints` feature is compiled in, which `cargo
//! test` does through the dev-dependency (or `--features failpoints`). A release build has none.
//! Armed from the `FAILPOINTS` environment variable (`FAILPOINTS=submit.after_commit=return`) or
//! with `fail::cfg` in a test.

/// Every place an order's placement, fills and end can make the process exit, at the boundaries
/// of the atomic phases (the crash matrix runs each). `expiry.after_commit` is the expiry test's
/// own, `stops.after_trigger` the stop test's.
pub const CRASH_POINTS: &[&str] = &[
    "submit.after_commit",
    "exchange.before_place",
    "exchange.after_place",
    "exchange.before_replace",
    "exchange.after_replace",
    "exchange.before_cancel",
    "exchange.after_cancel",
    "exchange.before_lookup",
    "exchange.after_lookup",
    "fill.after_commit",
    "terminal.after_commit",
    "recovery.during",
];

/// Ends the process on the spot, as `kill -9` would, when `name` is armed with `return`.
pub fn crash_point(name: &str) {
    if armed(name) {
        eprintln!("fault point {name}: exiting");
        std::process::abort();
    }
}

/// Whether `name` is armed with `return` (or `return(subject)` for this `subject`).
pub fn armed_for(name: &str, subject: &str) -> bool {
    let _ = (name, subject); // unused in a build without fault points
    fail::fail_point!(name, |arg: Option<String>| arg
        .as_deref()
        .is_none_or(|wanted| wanted == subject));
    false
}

fn armed(name: &str) -> bool {
    let _ = name;
    fail::fail_point!(name, |_| true);
    false
}

/// Reads `FAILPOINTS` from the environment (a no-op without the feature).
pub fn setup_from_env() {
    if std::env::var_os("FAILPOINTS").is_some() {
        std::mem::forget(fail::FailScenario::setup());
    }
}
