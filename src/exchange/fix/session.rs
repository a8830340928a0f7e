//! The FIX session to the venue, on a thread of its own: it logs on with the session's state from
//! the database ([`super::store`]), keeps the session up (reconnecting with backoff and jitter),
//! and hands what the venue sends to whoever waits for it: the answer to a request to the
//! [`FixVenue`] call that sent it, every fill and every unasked-for report to the engine's push
//! intake, prices to the price map.
//!
//! Inbound delivery is made at least once. The session layer counts a message as handled once its
//! `from_app` returns, and a push returns only once the engine has recorded it. Whatever the
//! layer took but the engine may not have (a kill in between) lies above the stored watermark,
//! and the next logon starts expecting from there, so the venue sends it again with PossDupFlag
//! and it is deduplicated like any repeated push.
//!
//! In a fleet, the engines configured with one session share it: one holds it at a time (see
//! `db::fix_sessions`), and the others stand by, claiming it once its holder's lease has
//! run out. A holder that finds the session claimed by another logs out at once; its writes to
//! the session's store are refused by then.
//!
//! An order, a replace or a cancel is never sent again from the store on a ResendRequest: it is
//! gap-filled. The engine asks the venue what it holds and decides anew, so an order the venue
//! never read cannot arrive later, after its customer cancelled it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ironfix_core::message::RawMessage;
use ironfix_core::types::CompId;
use ironfix_engine::application::{Application, RejectReason, SendVerdict, SessionId};
use ironfix_engine::{InboundLoss, Initiator, OutboundMessage, SessionConfig, StoreFailurePolicy};
use ironfix_store::SyncMessageStore;
use rand::RngExt;
use tokio::sync::{mpsc, oneshot};

use super::market;
use super::messages::{tag, ExecutionReport};
use super::store::{Opened, SessionStore};
use super::venue::{Answer, FixVenue, MassPart, Shared, Want};
use crate::db::fix_sessions::{self, Holding};
use crate::db::pool::Connector;
use crate::domain::VenueReport;
use crate::shutdown::Shutdown;

/// Where a `fix://HOST:PORT?sender=…&target=…` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixEndpoint {
    pub addr: String,
    pub sender: String,
    pub target: String,
}

impl FixEndpoint {
    /// Reads a `fix://` URL; None when the URL is not one.
    pub fn parse(url: &str) -> Option<Result<FixEndpoint, String>> {
        let rest = url.strip_prefix("fix://")?;
        let (addr, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut sender = None;
        let mut target = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sender", v)) => sender = Some(v.to_owned()),
                Some(("target", v)) => target = Some(v.to_owned()),
                _ => return Some(Err(format!("{url}: unknown parameter {pair:?}"))),
            }
        }
        let addr = addr.trim_end_matches('/');
        let port = addr
            .rsplit_once(':')
            .map(|(host, port)| (host, port.parse::<u16>()));
        if !matches!(port, Some((host, Ok(_))) if !host.is_empty()) {
            return Some(Err(format!("{url}: the address is HOST:PORT")));
        }
        let ids = sender.zip(target).filter(|(s, t)| {
            [s, t]
                .iter()
                .all(|id| !id.is_empty() && CompId::new(id.as_str()).is_ok())
        });
        let Some((sender, target)) = ids else {
            return Some(Err(format!(
                "{url}: name both CompIDs, as ?sender=OK&target=EXCH"
            )));
        };
        Some(Ok(FixEndpoint {
            addr: addr.to_owned(),
            sender,
            target,
        }))
    }

    /// The session's name in the store: one per pair of CompIDs.
    pub fn session_name(&self) -> String {
        format!("FIX.4.4:{}->{}", self.sender, self.target)
    }
}

/// A report the engine must record before the session counts it handled; `recorded` says
/// whether it was.
pub struct PushDelivery {
    pub report: VenueReport,
    pub raw: String,
    pub recorded: oneshot::Sender<bool>,
}

/// Starts the session's thread for `engine`. Returns the venue the engine calls, and the reports
/// the engine must take in as pushes.
pub fn start(
    endpoint: FixEndpoint,
    engine: &str,
    connector: Connector,
    answer_within: Duration,
    shutdown: Shutdown,
) -> std::io::Result<(FixVenue, mpsc::Receiver<PushDelivery>)> {
    let shared = Arc::new(Shared::default());
    let (pushes, delivered) = mpsc::channel(256);
    let session = Arc::new(Session {
        shared: Arc::clone(&shared),
        pushes,
        name: endpoint.session_name(),
        engine: engine.to_owned(),
        resend_from: Mutex::new(None),
    });
    shutdown.spawn_thread("fix session", move |shutdown| {
        let system = actix_web::rt::System::new();
        system.block_on(keep_up(endpoint, connector, session, shutdown));
    })?;
    Ok((FixVenue::new(shared, answer_within), delivered))
}

const FIRST_WAIT: Duration = Duration::from_millis(100);
const MOST_WAIT: Duration = Duration::from_secs(5);
/// How often a standing-by engine tries to claim the session, and a holder checks that it still
/// holds it.
const HOLDER_CHECK: Duration = Duration::from_secs(1);

/// How a session ended.
enum Ended {
    /// It was up, and closed.
    Closed,
    /// Another live engine holds it.
    HeldElsewhere,
}

/// Logs on, and on again each time the session ends, until the shutdown.
async fn keep_up(
    endpoint: FixEndpoint,
    connector: Connector,
    session: Arc<Session>,
    shutdown: Shutdown,
) {
    let mut wait = FIRST_WAIT;
    while !shutdown.is_triggered() {
        match shutdown
            .or(one_session(&endpoint, &connector, &session, &shutdown))
            .await
        {
            None => return,
            Some(Ok(Ended::Closed)) => wait = FIRST_WAIT,
            Some(Ok(Ended::HeldElsewhere)) => wait = HOLDER_CHECK,
            Some(Err(e)) => tracing::warn!(error = %e, venue = %endpoint.addr, "FIX session down"),
        }
        session.shared.connected(None);
        // Full jitter: engines that lost the venue together do not all dial it together.
        let micros = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        let jittered = Duration::from_micros(rand::rng().random_range(micros / 2..=micros));
        if shutdown
            .or(actix_web::rt::time::sleep(jittered))
            .await
            .is_none()
        {
            return;
        }
        wait = (wait * 2).min(MOST_WAIT);
    }
}

/// One session, from its claim and logon to its end.
async fn one_session(
    endpoint: &FixEndpoint,
    connector: &Connector,
    session: &Arc<Session>,
    shutdown: &Shutdown,
) -> Result<Ended, String> {
    let conn = connector.open().map_err(|e| e.to_string())?;
    let claimed = SessionStore::claim(conn, &session.name, &session.engine);
    let store = match claimed.map_err(|e| e.to_string())? {
        Opened::Held(store) => *store,
        Opened::HeldBy(holder) => {
            session.shared.standing_by(Some(holder));
            return Ok(Ended::HeldElsewhere);
        }
    };
    if session.shared.standing_by(None) {
        tracing::info!(session = %session.name, "this engine holds the FIX session now");
    }
    let holding = store.holding();
    session.hear_again(&store)?;
    let config = session_config(endpoint)?;
    // Nothing goes on the wire, and nothing heard is acted on, that the store did not take: a
    // frame numbered but not stored would leave the venue expecting a number the session's next
    // holder does not know, and refusing its logon as too low. A failed write (the database gone,
    // or the session claimed by another engine) ends the session; the next one starts from what
    // is stored.
    let initiator = Initiator::new(config, Arc::clone(session))
        .with_store(store.into_message_store())
        .with_store_failure_policy(StoreFailurePolicy::CloseSession);
    let connection = initiator
        .connect(endpoint.addr.as_str())
        .await
        .map_err(|e| format!("logon: {e}"))?;
    tracing::info!(venue = %endpoint.addr, session = %session.name, "FIX session logged on");
    session.shared.connected(Some(connection.clone()));
    let list = market::security_list_request(&session.shared.request_id("sec"));
    if let Some(message) = list.outbound() {
        let _ = connection.send(message).await;
    }
    tokio::select! {
        () = connection.wait_closed() => {}
        () = shutdown.triggered() => {
            let _ = connection.logout().await;
            connection.wait_closed().await;
        }
        () = claimed_by_another(connector, &session.name, holding) => {
            tracing::warn!(session = %session.name, "another engine holds the FIX session now; logging out");
            let _ = connection.logout().await;
            connection.wait_closed().await;
        }
    }
    let why = connection
        .close_reason()
        .map(|reason| reason.to_string())
        .unwrap_or_default();
    tracing::info!(session = %session.name, %why, "FIX session ended");
    Ok(Ended::Closed)
}

/// Returns once another engine has claimed the session `holding` held (an engine that paused past
/// its lease). A check that cannot reach the database waits for the next: the store's writes are
/// fenced whatever it finds.
async fn claimed_by_another(connector: &Connector, session: &str, holding: Holding) {
    let mut conn = None;
    loop {
        actix_web::rt::time::sleep(HOLDER_CHECK).await;
        if conn.is_none() {
            conn = connector.open().ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        match fix_sessions::holds(c, session, holding) {
            Ok(true) => {}
            Ok(false) => return,
            Err(_) => conn = None,
        }
    }
}

fn session_config(endpoint: &FixEndpoint) -> Result<SessionConfig, String> {
    let id = |s: &str| CompId::new(s).map_err(|e| format!("CompID {s:?}: {e}"));
    Ok(
        SessionConfig::new(id(&endpoint.sender)?, id(&endpoint.target)?, "FIX.4.4")
            .with_heartbeat_interval(Duration::from_secs(10)),
    )
}

/// The session's side of the venue: what the session layer calls back.
struct Session {
    shared: Arc<Shared>,
    pushes: mpsc::Sender<PushDelivery>,
    name: String,
    /// The engine this one is, claiming the session.
    engine: String,
    /// The first inbound number the engine may not have recorded, as the session layer reported
    /// at a close: the next logon expects from there.
    resend_from: Mutex<Option<u64>>,
}

impl Session {
    /// Makes the next logon expect every inbound message the engine may not have recorded again.
    fn hear_again(&self, store: &SessionStore) -> Result<(), String> {
        let handled_through = store.app_watermark();
        let next = store.next_target_seq();
        let reported = self
            .resend_from
            .lock()
            .map(|mut r| r.take())
            .unwrap_or(None);
        let from = reported
            .unwrap_or(u64::MAX)
            .min(handled_through.saturating_add(1));
        if from < next {
            tracing::info!(session = %self.name, from, next, "asking the venue again for what may not have been recorded");
            store
                .set_next_target_seq(from)
                .map_err(|e| format!("rewinding the session: {e}"))?;
        }
        Ok(())
    }

    /// Takes `report` in as a push, until the engine has recorded it or the session ends.
    async fn deliver(&self, report: VenueReport, raw: String) {
        let mut wait = Duration::from_millis(20);
        loop {
            let (recorded, answer) = oneshot::channel();
            let delivery = PushDelivery {
                report: report.clone(),
                raw: raw.clone(),
                recorded,
            };
            if self.pushes.send(delivery).await.is_err() {
                return;
            }
            if answer.await == Ok(true) {
                return;
            }
            actix_web::rt::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }

    async fn execution_report(&self, message: &RawMessage<'_>) {
        let field = |tag| message.get_field_str(tag);
        if let Some(request_id) = field(tag::MASS_STATUS_REQ_ID) {
            let part = MassPart {
                request_id: request_id.to_owned(),
                total: field(tag::TOT_NUM_REPORTS).and_then(|t| t.parse().ok()),
                last: field(tag::LAST_RPT_REQUESTED) == Some("Y"),
            };
            // A venue that holds no order answers with one report that names none.
            let report = ExecutionReport::read(field)
                .ok()
                .filter(|_| part.total != Some(0));
            self.shared.mass_report(&part, report);
            return;
        }
        let report = match ExecutionReport::read(field) {
            Ok(report) => report,
            Err(e) => {
                return tracing::warn!(session = %self.name, error = %e, raw = %readable(message), "an ExecutionReport the engine cannot read");
            }
        };
        let taken = self.shared.report(&report);
        let Some(push) = report.as_push(&self.name) else {
            return;
        };
        // A fill is recorded from its own report, answered or not; an answer is the caller's.
        if push.fill.is_some() || !taken {
            self.deliver(push, readable(message)).await;
        }
    }

    fn cancel_reject(&self, message: &RawMessage<'_>) {
        let field = |tag| message.get_field_str(tag).unwrap_or_default();
        let answer = Answer::CancelRejected {
            too_late: field(tag::CXL_REJ_REASON) == "0",
            unknown: field(tag::CXL_REJ_REASON) == "1",
            text: format!("cancel rejected: {}", field(tag::TEXT)),
        };
        // A cancel and a replace wait under their own ClOrdID alike.
        self.shared
            .reject(Want::Cancel, field(tag::CL_ORD_ID), answer);
    }

    fn business_reject(&self, message: &RawMessage<'_>) {
        let field = |tag| message.get_field_str(tag).unwrap_or_default();
        let want = match field(tag::REF_MSG_TYPE) {
            "H" => Want::Status,
            "AF" => Want::Mass,
            _ => Want::Placement,
        };
        let text = format!("{} refused: {}", field(tag::REF_MSG_TYPE), field(tag::TEXT));
        let answer = if field(tag::BUSINESS_REJECT_REASON) == APPLICATION_NOT_AVAILABLE {
            Answer::Unavailable(text)
        } else {
            Answer::Refused(text)
        };
        self.shared
            .reject(want, field(tag::BUSINESS_REJECT_REF_ID), answer);
    }

    async fn security_list(&self, message: &RawMessage<'_>) {
        let symbols = market::listed_symbols(message.fields().map(field_of));
        if symbols.is_empty() {
            return;
        }
        self.shared.set_listed(symbols.clone());
        let request = market::market_data_request(&self.shared.request_id("md"), &symbols);
        if let (Some(connection), Some(message)) = (self.shared.connection(), request.outbound()) {
            let _ = connection.send(message).await;
        }
    }
}

/// `BusinessRejectReason` 4: the venue's application is not available.
const APPLICATION_NOT_AVAILABLE: &str = "4";

fn field_of<'a>(field: &ironfix_core::field::FieldRef<'a>) -> (u32, &'a str) {
    (field.tag, field.as_str().unwrap_or_default())
}

/// A message as text, fields split by `|`, for the stored event and the log.
fn readable(message: &RawMessage<'_>) -> String {
    message
        .fields()
        .map(|f| format!("{}={}", f.tag, f.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("|")
}

#[async_trait]
impl Application for Session {
    async fn on_create(&self, _: &SessionId) {}

    async fn on_logon(&self, _: &SessionId) {}

    async fn on_logout(&self, _: &SessionId) {}

    async fn on_inbound_lost(&self, _: &SessionId, loss: &InboundLoss) {
        tracing::warn!(session = %self.name, %loss, "the venue is asked for these again at the next logon");
        if let Ok(mut from) = self.resend_from.lock() {
            *from = Some(from.map_or(loss.first(), |f| f.min(loss.first())));
        }
    }

    async fn to_admin(&self, _: &mut OutboundMessage, _: &SessionId) {}

    async fn from_admin(
        &self,
        message: &RawMessage<'_>,
        _: &SessionId,
    ) -> Result<(), RejectReason> {
        if message.msg_type().as_str() == "3" {
            let seq = message
                .get_field_str(tag::REF_SEQ_NUM)
                .and_then(|s| s.parse().ok());
            if let Some(seq) = seq {
                let text = message.get_field_str(tag::TEXT).unwrap_or_default();
                self.shared
                    .reject_seq(seq, format!("session reject: {text}"));
            }
        }
        Ok(())
    }

    async fn to_app(&self, _: &mut OutboundMessage, _: &SessionId) {}

    fn to_app_resend<'a>(
        &'a self,
        message: &'a RawMessage<'_>,
        _: &'a SessionId,
    ) -> SendVerdict<'a> {
        let changes_an_order = matches!(message.msg_type().as_str(), "D" | "F" | "G");
        SendVerdict::ready(if changes_an_order {
            Err(RejectReason::new(
                0,
                "orders are decided anew, not replayed",
            ))
        } else {
            Ok(())
        })
    }

    async fn from_app(&self, message: &RawMessage<'_>, _: &SessionId) -> Result<(), RejectReason> {
        match message.msg_type().as_str() {
            "8" => self.execution_report(message).await,
            "9" => self.cancel_reject(message),
            "j" => self.business_reject(message),
            "y" => self.security_list(message).await,
            "W" | "X" => self
                .shared
                .set_prices(market::last_prices(message.fields().map(field_of))),
            other => {
                tracing::debug!(session = %self.name, msg_type = other, "a FIX message the engine does not read")
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fix_url_names_the_address_and_both_comp_ids() {
        assert_eq!(FixEndpoint::parse("http://x"), None);
        let ok = FixEndpoint::parse("fix://127.0.0.1:9878?sender=OK&target=EXCH");
        assert_eq!(
            ok,
            Some(Ok(FixEndpoint {
                addr: "127.0.0.1:9878".into(),
                sender: "OK".into(),
                target: "EXCH".into(),
            }))
        );
        assert_eq!(
            ok.and_then(Result::ok).map(|e| e.session_name()),
            Some("FIX.4.4:OK->EXCH".to_owned())
        );
        for bad in [
            "fix://127.0.0.1:9878",
            "fix://127.0.0.1:9878?sender=OK",
            "fix://:?sender=OK&target=EXCH",
            "fix://host?sender=OK&target=EXCH",
            "fix://h:1?sender=OK&target=EXCH&x=1",
        ] {
            assert!(matches!(FixEndpoint::parse(bad), Some(Err(_))), "{bad}");
        }
    }
}
