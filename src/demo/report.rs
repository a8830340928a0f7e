//! What the demonstration shows at its end, and its verdict.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use serde_json::Value;

use super::ending::Findings;
use super::traders::Tally;
use crate::config::{DemoVenue, FaultArgs};

/// `n` and a noun, in the plural unless `n` is 1: "1 kill", "3 kills".
pub fn counted(n: u64, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// One SIGKILL and the start after it.
#[derive(Debug, Clone, Copy)]
pub struct Restart {
    /// From the SIGKILL until the new process answered `/readyz` (the demo waits a moment
    /// before it starts the process again).
    pub kill_to_ready: Duration,
    /// From the new process's start until it answered `/readyz`.
    pub start_to_ready: Duration,
    /// Open orders the new process picked up, and fills its first polls recovered.
    pub picked_up: u64,
    pub fills_recovered: u64,
}

/// What the feed followers saw, over all accounts.
#[derive(Debug, Default)]
pub struct FeedSummary {
    pub events: usize,
    pub connections: u32,
    /// Gaps, repeats and resyncs, each named.
    pub breaks: Vec<String>,
    /// Followers whose events a fresh replay from the start did not give back exactly.
    pub replays_differ: usize,
}

impl FeedSummary {
    pub fn add(&mut self, followed: &super::feed_watch::Followed, matches_a_replay: bool) {
        self.events += followed.events.len();
        self.connections += followed.connections;
        self.breaks.extend(followed.breaks.iter().cloned());
        self.replays_differ += usize::from(!matches_a_replay);
    }
}

#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub duration: Duration,
    pub rate: u32,
    pub accounts: usize,
    pub venue: DemoVenue,
    pub faults: FaultArgs,
    pub tally: Tally,
    pub restarts: Vec<Restart>,
    pub findings: Findings,
    pub feed: FeedSummary,
    /// Pushed fills each engine process dropped as already recorded, summed over the processes.
    pub duplicate_pushes: u64,
    /// Orders still open when the end's patience ran out.
    pub still_open: usize,
    /// The engine's own audit (`GET /v1/admin/audit`), or `null` when it did not answer.
    pub audit: Value,
    /// Whether the engine exited with 0 on SIGTERM at the end.
    pub clean_stop: bool,
    pub directory: PathBuf,
    pub database_url: String,
}

impl Report {
    /// The audit passed, with the exchange's record checked too.
    pub fn audit_passed(&self) -> bool {
        let checks = self.audit["checks"].as_array();
        let exchange_checked =
            checks.is_some_and(|checks| checks.iter().all(|c| c["skipped"].is_null()));
        self.audit["ok"] == true && exchange_checked
    }

    pub fn passed(&self) -> bool {
        let f = &self.findings;
        self.audit_passed()
            && f.lost.is_empty()
            && f.replay_differs.is_empty()
            && self.still_open == 0
            && self.tally.unanswered == 0
            && self.tally.unexpected == 0
            && self.clean_stop
            && self.feed.breaks.is_empty()
            && self.feed.replays_differ == 0
    }

    fn audit_line(&self) -> String {
        let checks = self.audit["checks"].as_array().map_or(0, Vec::len);
        let took = &self.audit["duration_ms"];
        if self.audit_passed() {
            return format!("pass: {checks} checks in {took} ms, the exchange's record included");
        }
        if self.audit.is_null() {
            return "FAIL: the engine did not answer".to_owned();
        }
        let failing: Vec<String> = self.audit["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                !c["skipped"].is_null() || c["violations"].as_array().is_some_and(|v| !v.is_empty())
            })
            .map(|c| {
                let name = c["name"].as_str().unwrap_or("?");
                match c["skipped"].as_str() {
                    Some(why) => format!("{name} skipped ({why})"),
                    None => format!("{name}: {}", c["violations"]),
                }
            })
            .collect();
        format!("FAIL: {}", failing.join("; "))
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

impl fmt::Display for Report {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (t, f) = (&self.tally, &self.findings);
        let x = &self.faults;
        writeln!(
            out,
            "orderkeeper demo: seed {}, {} of orders at {}/s from {} accounts, {}",
            self.seed,
            seconds(self.duration),
            self.rate,
            self.accounts,
            match self.venue {
                DemoVenue::Rest => "over REST and pushes",
                DemoVenue::Fix => "over a FIX 4.4 session",
            }
        )?;
        writeln!(
            out,
            "  faults        pushes dropped {} · duplicated {} · reordered {} · 503s {} · responses lost {} · repeated placement {}",
            x.drop_rate, x.duplicate_rate, x.reorder_rate, x.error_rate, x.lost_response_rate,
            x.duplicate_placement.to_possible_value().map_or_else(String::new, |v| v.get_name().to_owned())
        )?;
        writeln!(
            out,
            "  orders        {} acknowledged, {} refused (funds or shares), {} cancels asked",
            t.acknowledged, t.refused, t.cancels
        )?;
        let list = |of: fn(&Restart) -> Duration| -> String {
            let times: Vec<String> = self.restarts.iter().map(|r| seconds(of(r))).collect();
            times.join(", ")
        };
        if self.restarts.is_empty() {
            writeln!(out, "  kills         none")?;
        } else {
            writeln!(
                out,
                "  kills         {}; ready in {} after each start ({} after each kill)",
                counted(self.restarts.len() as u64, "SIGKILL"),
                list(|r| r.start_to_ready),
                list(|r| r.kill_to_ready)
            )?;
        }
        let picked_up: u64 = self.restarts.iter().map(|r| r.picked_up).sum();
        let recovered: u64 = self.restarts.iter().map(|r| r.fills_recovered).sum();
        writeln!(
            out,
            "  recovery      {picked_up} open orders picked up by the restarted engine, {recovered} fills recovered by its first polls"
        )?;
        writeln!(
            out,
            "  retries       {} requests sent again under the same key (no answer, 5xx, 429, key in use)",
            t.retried
        )?;
        writeln!(
            out,
            "  fills         {} recorded: {} by push, {} by poll",
            f.fills_by_push + f.fills_by_poll,
            f.fills_by_push,
            f.fills_by_poll
        )?;
        writeln!(
            out,
            "  duplicates    {} pushed fills dropped as already recorded",
            self.duplicate_pushes
        )?;
        writeln!(
            out,
            "  same key      {} of {} keys answered the same when sent again",
            f.replayed - f.replay_differs.len() as u64,
            f.replayed
        )?;
        writeln!(
            out,
            "  lost orders   {} of {} acknowledged",
            f.lost.len(),
            t.acknowledged
        )?;
        writeln!(
            out,
            "  feed          {} events followed over {} connections: {} breaks, {} followers unlike a replay from the start",
            self.feed.events,
            self.feed.connections,
            self.feed.breaks.len(),
            self.feed.replays_differ
        )?;
        writeln!(out, "  audit         {}", self.audit_line())?;
        let problems = [
            (
                t.unanswered > 0,
                format!("{} requests never answered", t.unanswered),
            ),
            (
                t.unexpected > 0,
                format!("{} submissions answered neither 201 nor 422", t.unexpected),
            ),
            (
                self.still_open > 0,
                format!(
                    "{} orders still open after the end's cancels",
                    self.still_open
                ),
            ),
            (
                !self.clean_stop,
                "the engine did not exit with 0 on SIGTERM".to_owned(),
            ),
        ];
        for (_, problem) in problems.iter().filter(|(shown, _)| *shown) {
            writeln!(out, "  problem       {problem}")?;
        }
        for line in f
            .lost
            .iter()
            .chain(&f.replay_differs)
            .chain(&self.feed.breaks)
            .take(10)
        {
            writeln!(out, "  problem       {line}")?;
        }
        writeln!(
            out,
            "  files         {} (database {}, engine.log)",
            self.directory.display(),
            self.database_url
        )?;
        write!(
            out,
            "result: {}",
            if self.passed() { "pass" } else { "FAIL" }
        )
    }
}
