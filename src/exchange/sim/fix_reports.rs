//! What the simulator says over FIX, built from its book: ExecutionReports for what happened to
//! an order (the fill's id as the ExecID, as over HTTP), the answers to cancels, replaces and
//! status requests, rejects, and market data.

use std::collections::{BTreeMap, HashMap};

use super::book::{Book, BookEvent};
use crate::domain::{Cents, Side};
use crate::exchange::fix::messages::{side, tag, Body};
use crate::exchange::wire::{ExchangeFill, ExchangeOrder, ExchangeStatus, PushType};

/// `OrdStatus` (39) of a status.
fn ord_status(status: ExchangeStatus) -> &'static str {
    match status {
        ExchangeStatus::New => "0",
        ExchangeStatus::PartiallyFilled => "1",
        ExchangeStatus::Filled => "2",
        ExchangeStatus::Canceled => "4",
        ExchangeStatus::Rejected => "8",
        ExchangeStatus::Expired => "C",
    }
}

/// One ExecutionReport (8).
pub struct Report<'a> {
    pub exec_id: String,
    /// `ExecType` (150).
    pub exec_type: &'static str,
    pub status: ExchangeStatus,
    pub client_order_id: &'a str,
    pub orig_client_order_id: Option<&'a str>,
    pub order_id: Option<&'a str>,
    pub symbol: &'a str,
    pub side: Side,
    pub qty: i64,
    /// What the order has filled as of this report.
    pub cum: i64,
    pub fill: Option<&'a ExchangeFill>,
}

impl Report<'_> {
    /// The report for `order` as it stands.
    pub fn of<'a>(
        order: &'a ExchangeOrder,
        exec_id: String,
        exec_type: &'static str,
        symbol: &'a str,
        side: Side,
    ) -> Report<'a> {
        Report {
            exec_id,
            exec_type,
            status: order.status,
            client_order_id: &order.client_order_id,
            orig_client_order_id: None,
            order_id: order.exchange_order_id.as_deref(),
            symbol,
            side,
            qty: order.qty,
            cum: order.filled_qty,
            fill: None,
        }
    }

    pub fn body(&self, extra: Vec<(u32, String)>) -> Body {
        let open = !self.status.is_terminal();
        let mut fields = vec![
            (tag::ORDER_ID, self.order_id.unwrap_or("NONE").to_owned()),
            (tag::EXEC_ID, self.exec_id.clone()),
            (tag::CL_ORD_ID, self.client_order_id.to_owned()),
        ];
        if let Some(orig) = self.orig_client_order_id {
            fields.push((tag::ORIG_CL_ORD_ID, orig.to_owned()));
        }
        fields.extend([
            (tag::EXEC_TYPE, self.exec_type.to_owned()),
            (tag::ORD_STATUS, ord_status(self.status).to_owned()),
            (tag::SYMBOL, self.symbol.to_owned()),
            (tag::SIDE, side(self.side)),
            (tag::ORDER_QTY, self.qty.to_string()),
            (
                tag::LEAVES_QTY,
                if open { self.qty - self.cum } else { 0 }.to_string(),
            ),
            (tag::CUM_QTY, self.cum.to_string()),
            (tag::AVG_PX, "0".to_owned()),
        ]);
        if let Some(fill) = self.fill {
            fields.push((tag::LAST_QTY, fill.qty.to_string()));
            fields.push((tag::LAST_PX, fill.price.to_string()));
        }
        fields.extend(extra);
        Body {
            msg_type: "8",
            fields,
        }
    }
}

/// The ExecutionReports for what a book change did, each with the order as that event left it
/// (several fills in one round each carry their own CumQty). `event_id` numbers the reports that
/// are not fills.
pub fn of_events(
    events: &[BookEvent],
    book: &Book,
    mut event_id: impl FnMut() -> String,
) -> Vec<Body> {
    let mut filled_before: HashMap<&str, i64> = HashMap::new();
    for event in events {
        if let Some(fill) = &event.fill {
            *filled_before
                .entry(event.client_order_id.as_str())
                .or_default() += fill.qty;
        }
    }
    let mut bodies = Vec::new();
    for event in events {
        let cid = event.client_order_id.as_str();
        let (Some(order), Some(terms)) = (book.get(cid), book.terms(cid)) else {
            continue;
        };
        let pending = filled_before.entry(cid).or_default();
        let cum_before = order.filled_qty - *pending;
        let (exec_type, status, cum, exec_id) = match (&event.event_type, &event.fill) {
            (PushType::Fill, Some(fill)) => {
                *pending -= fill.qty;
                let cum = cum_before + fill.qty;
                let status = if cum == order.qty {
                    ExchangeStatus::Filled
                } else {
                    ExchangeStatus::PartiallyFilled
                };
                ("F", status, cum, fill.fill_id.clone())
            }
            (PushType::Accepted, _) => ("0", ExchangeStatus::New, cum_before, event_id()),
            (PushType::Rejected, _) => ("8", ExchangeStatus::Rejected, cum_before, event_id()),
            (PushType::Canceled | PushType::Fill, _) => {
                let exec_type = if order.status == ExchangeStatus::Expired {
                    "C"
                } else {
                    "4"
                };
                (exec_type, order.status, cum_before, event_id())
            }
        };
        let report = Report {
            exec_id,
            exec_type,
            status,
            cum,
            fill: event.fill.as_ref(),
            ..Report::of(&order, String::new(), "", &terms.symbol, terms.side)
        };
        bodies.push(report.body(Vec::new()));
    }
    bodies
}

/// An OrderCancelReject (9): `response_to` 1 for a cancel, 2 for a replace; `reason` 0 too
/// late, 1 unknown order, 6 a ClOrdID already in use.
pub fn cancel_reject(
    client_order_id: &str,
    orig: &str,
    order: Option<&ExchangeOrder>,
    response_to: &str,
    reason: &str,
    text: &str,
) -> Body {
    let status = order.map_or(ExchangeStatus::Rejected, |o| o.status);
    let order_id = order
        .and_then(|o| o.exchange_order_id.clone())
        .unwrap_or_else(|| "NONE".to_owned());
    Body {
        msg_type: "9",
        fields: vec![
            (tag::ORDER_ID, order_id),
            (tag::CL_ORD_ID, client_order_id.to_owned()),
            (tag::ORIG_CL_ORD_ID, orig.to_owned()),
            (tag::ORD_STATUS, ord_status(status).to_owned()),
            (tag::CXL_REJ_RESPONSE_TO, response_to.to_owned()),
            (tag::CXL_REJ_REASON, reason.to_owned()),
            (tag::TEXT, text.to_owned()),
        ],
    }
}

/// A BusinessMessageReject (j) for a request the venue cannot take now
/// (`BusinessRejectReason` 4, application not available): it did nothing.
pub fn unavailable(ref_seq: &str, ref_msg_type: &str, ref_id: &str) -> Body {
    Body {
        msg_type: "j",
        fields: vec![
            (tag::REF_SEQ_NUM, ref_seq.to_owned()),
            (tag::REF_MSG_TYPE, ref_msg_type.to_owned()),
            (tag::BUSINESS_REJECT_REF_ID, ref_id.to_owned()),
            (tag::BUSINESS_REJECT_REASON, "4".to_owned()),
            (tag::TEXT, "injected fault: try again".to_owned()),
        ],
    }
}

/// A SecurityList (y) naming every symbol the venue quotes.
pub fn security_list(request_id: &str, response_id: &str, symbols: &[&String]) -> Body {
    let mut fields = vec![
        (tag::SECURITY_REQ_ID, request_id.to_owned()),
        (tag::SECURITY_RESPONSE_ID, response_id.to_owned()),
        (tag::SECURITY_REQUEST_RESULT, "0".to_owned()),
        (tag::NO_RELATED_SYM, symbols.len().to_string()),
    ];
    fields.extend(symbols.iter().map(|s| (tag::SYMBOL, (*s).clone())));
    Body {
        msg_type: "y",
        fields,
    }
}

/// A snapshot (W) of one symbol's last trade.
pub fn snapshot(request_id: &str, symbol: &str, price: Cents) -> Body {
    Body {
        msg_type: "W",
        fields: vec![
            (tag::MD_REQ_ID, request_id.to_owned()),
            (tag::SYMBOL, symbol.to_owned()),
            (tag::NO_MD_ENTRIES, "1".to_owned()),
            (tag::MD_ENTRY_TYPE, "2".to_owned()),
            (tag::MD_ENTRY_PX, price.to_string()),
        ],
    }
}

/// An incremental refresh (X) of the last trade of each symbol in `changed`.
pub fn refresh(request_id: &str, changed: &BTreeMap<String, Cents>) -> Body {
    let mut fields = vec![
        (tag::MD_REQ_ID, request_id.to_owned()),
        (tag::NO_MD_ENTRIES, changed.len().to_string()),
    ];
    for (symbol, price) in changed {
        fields.extend([
            (tag::MD_UPDATE_ACTION, "1".to_owned()),
            (tag::MD_ENTRY_TYPE, "2".to_owned()),
            (tag::SYMBOL, symbol.clone()),
            (tag::MD_ENTRY_PX, price.to_string()),
        ]);
    }
    Body {
        msg_type: "X",
        fields,
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::domain::{OrderType, TimeInForce};
    use crate::exchange::sim::market::Market;
    use crate::exchange::wire::PlaceOrder;

    #[test]
    fn each_report_of_a_batch_carries_the_order_as_its_own_event_left_it() {
        let market = Market::default();
        let mut book = Book::default();
        let placed = book.place(
            PlaceOrder {
                client_order_id: "c1".into(),
                symbol: "INFY".into(),
                side: Side::Buy,
                order_type: OrderType::Limit,
                qty: 10,
                limit_price: Some(Cents(1_000_000)),
                time_in_force: TimeInForce::Gtc,
            },
            &market,
        );
        // Every event up to the last fill, told at once.
        let mut events = placed.events;
        let mut rng = StdRng::seed_from_u64(3);
        while book.get("c1").is_some_and(|o| o.filled_qty < 10) {
            events.extend(book.match_round(&market, &mut rng));
        }
        assert!(events.len() >= 3, "{events:?}");
        let mut n = 0;
        let bodies = of_events(&events, &book, || {
            n += 1;
            format!("E{n}")
        });
        assert_eq!(bodies.len(), events.len());
        assert_eq!(bodies[0].field(tag::EXEC_TYPE), Some("0"));
        assert_eq!(bodies[0].field(tag::CUM_QTY), Some("0"));
        let mut cum = 0;
        for (body, event) in bodies.iter().zip(&events).skip(1) {
            let fill = event.fill.as_ref().expect("a fill");
            cum += fill.qty;
            assert_eq!(body.field(tag::EXEC_ID), Some(fill.fill_id.as_str()));
            assert_eq!(body.field(tag::CUM_QTY), Some(cum.to_string().as_str()));
            assert_eq!(
                body.field(tag::LAST_QTY),
                Some(fill.qty.to_string().as_str())
            );
            let status = if cum == 10 { "2" } else { "1" };
            assert_eq!(body.field(tag::ORD_STATUS), Some(status));
            assert_eq!(
                body.field(tag::LEAVES_QTY),
                Some((10 - cum).to_string().as_str())
            );
        }
        assert_eq!(cum, 10);
    }
}
