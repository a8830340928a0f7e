//! An order's recorded action with what it says: one typed value per entry of the action log.
//! It is turned into text only at the edges: [`OrderEvent::detail`] is the log's `detail` column
//! (and what `GET /v1/orders/{id}/actions` shows), and its kind names the feed's `order.*` event.

use serde_json::{json, Value};

use super::{Action, Cents, FillSource, VenueFill, VenueStatus};

text_enum!(
    /// Which answer of the venue showed an order acknowledged.
    AckSource { Push => "push", Placement => "placement", Poll => "poll" }
);

/// Why an order ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndCause {
    /// Cancelled before it was ever sent: released at once, with no venue call.
    NeverSent,
    /// The venue refused the placement.
    PlacementRejected { reason: String },
    /// The venue's copy ended so.
    VenueEnded {
        status: VenueStatus,
        filled_qty: i64,
    },
}

/// An order's terms at the venue, in one version of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    pub client_order_id: String,
    pub version: i64,
    pub qty: i64,
    pub limit_price: Option<Cents>,
}

impl Terms {
    fn detail(&self) -> Value {
        json!({
            "client_order_id": self.client_order_id,
            "version": self.version,
            "qty": self.qty,
            "limit_price": self.limit_price,
        })
    }
}

/// What a recorded action says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderEvent {
    /// A new order; one with a stop price is held until its trigger (the action is `held`).
    Created {
        idempotency_key: String,
        reserved_asset: String,
        reserved_amount: i64,
        protection_price: Option<Cents>,
        stop_price: Option<Cents>,
    },
    /// The last price crossed a held order's stop.
    Triggered {
        last_price: Cents,
    },
    PlacementSent {
        client_order_id: String,
    },
    Accepted {
        venue_order_id: Option<String>,
        source: AckSource,
    },
    Fill {
        fill: VenueFill,
        source: FillSource,
    },
    CancelRequested,
    /// The engine cancels a `day` order at the session's close (`at`, microseconds).
    ExpiryRequested {
        at: i64,
    },
    /// The customer asked for new terms, the venue's next version of the order; `reserved_more`
    /// is what was held back for them before anything was sent.
    ReplaceRequested {
        terms: Terms,
        reserved_more: i64,
    },
    /// The venue took the new terms; `released` is the hold beyond what they need.
    Replaced {
        terms: Terms,
        released: i64,
    },
    /// The venue kept the old terms; `released` is what was held back for the new ones.
    ReplaceRejected {
        reason: String,
        released: i64,
    },
    /// A terminal action (`filled`, `canceled` or `rejected`) with what it released.
    Ended {
        action: Action,
        released: i64,
        cause: EndCause,
    },
}

impl OrderEvent {
    /// The action the transition table sees.
    pub fn action(&self) -> Action {
        match self {
            OrderEvent::Created {
                stop_price: Some(_),
                ..
            } => Action::Held,
            OrderEvent::Created { .. } => Action::Created,
            OrderEvent::Triggered { .. } => Action::Triggered,
            OrderEvent::PlacementSent { .. } => Action::PlacementSent,
            OrderEvent::Accepted { .. } => Action::Accepted,
            OrderEvent::Fill { fill, .. } => Action::Fill { qty: fill.qty },
            OrderEvent::CancelRequested => Action::CancelRequested,
            OrderEvent::ExpiryRequested { .. } => Action::ExpiryRequested,
            OrderEvent::ReplaceRequested { terms, .. } => {
                Action::ReplaceRequested { qty: terms.qty }
            }
            OrderEvent::Replaced { terms, .. } => Action::Replaced { qty: terms.qty },
            OrderEvent::ReplaceRejected { .. } => Action::ReplaceRejected,
            OrderEvent::Ended { action, .. } => *action,
        }
    }

    /// The action log's `detail`: the same JSON for the same event, always.
    pub fn detail(&self) -> Value {
        match self {
            OrderEvent::Created {
                idempotency_key,
                reserved_asset,
                reserved_amount,
                protection_price,
                stop_price,
            } => {
                let mut detail = json!({
                    "idempotency_key": idempotency_key,
                    "reserved": {"asset": reserved_asset, "amount": reserved_amount},
                    "protection_price": protection_price,
                });
                if let Some(stop) = stop_price {
                    detail["stop_price"] = json!(stop);
                }
                detail
            }
            OrderEvent::Triggered { last_price } => json!({"last_price": last_price}),
            OrderEvent::PlacementSent { client_order_id } => {
                json!({"client_order_id": client_order_id})
            }
            OrderEvent::Accepted {
                venue_order_id,
                source,
            } => json!({"exchange_order_id": venue_order_id, "source": source}),
            OrderEvent::Fill { fill, source } => json!({
                "fill_id": fill.fill_id, "qty": fill.qty, "price": fill.price, "source": source,
            }),
            OrderEvent::CancelRequested => json!({"by": "customer"}),
            OrderEvent::ExpiryRequested { at } => {
                json!({"by": "session_close", "expires_at": at})
            }
            OrderEvent::ReplaceRequested {
                terms,
                reserved_more,
            } => {
                let mut detail = terms.detail();
                detail["reserved_more"] = json!(reserved_more);
                detail
            }
            OrderEvent::Replaced { terms, released } => {
                let mut detail = terms.detail();
                detail["released"] = json!(released);
                detail
            }
            OrderEvent::ReplaceRejected { reason, released } => {
                json!({"reason": reason, "released": released})
            }
            OrderEvent::Ended {
                released, cause, ..
            } => {
                let cause = match cause {
                    EndCause::NeverSent => json!({"reason": "never sent to the exchange"}),
                    EndCause::PlacementRejected { reason } => json!({"reason": reason}),
                    EndCause::VenueEnded { status, filled_qty } => {
                        json!({"exchange_status": status, "exchange_filled_qty": filled_qty})
                    }
                };
                json!({"released": released, "detail": cause})
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_writes_the_detail_the_log_has_always_held() {
        let fill = VenueFill {
            fill_id: "F1".into(),
            qty: 3,
            price: Cents(152_050),
        };
        let cases = [
            (
                OrderEvent::Created {
                    idempotency_key: "k1".into(),
                    reserved_asset: "CASH".into(),
                    reserved_amount: 456_150,
                    protection_price: Some(Cents(152_050)),
                    stop_price: None,
                },
                r#"{"idempotency_key":"k1","protection_price":"1520.50","reserved":{"amount":456150,"asset":"CASH"}}"#,
            ),
            (
                OrderEvent::Created {
                    idempotency_key: "k2".into(),
                    reserved_asset: "CASH".into(),
                    reserved_amount: 157_500,
                    protection_price: Some(Cents(157_500)),
                    stop_price: Some(Cents(150_000)),
                },
                r#"{"idempotency_key":"k2","protection_price":"1575.00","reserved":{"amount":157500,"asset":"CASH"},"stop_price":"1500.00"}"#,
            ),
            (
                OrderEvent::Triggered {
                    last_price: Cents(150_010),
                },
                r#"{"last_price":"1500.10"}"#,
            ),
            (
                OrderEvent::PlacementSent {
                    client_order_id: "ok-1".into(),
                },
                r#"{"client_order_id":"ok-1"}"#,
            ),
            (
                OrderEvent::Accepted {
                    venue_order_id: Some("X1".into()),
                    source: AckSource::Placement,
                },
                r#"{"exchange_order_id":"X1","source":"placement"}"#,
            ),
            (
                OrderEvent::Fill {
                    fill,
                    source: FillSource::Poll,
                },
                r#"{"fill_id":"F1","price":"1520.50","qty":3,"source":"poll"}"#,
            ),
            (OrderEvent::CancelRequested, r#"{"by":"customer"}"#),
            (
                OrderEvent::Ended {
                    action: Action::Canceled,
                    released: 500,
                    cause: EndCause::NeverSent,
                },
                r#"{"detail":{"reason":"never sent to the exchange"},"released":500}"#,
            ),
            (
                OrderEvent::Ended {
                    action: Action::Filled,
                    released: 0,
                    cause: EndCause::VenueEnded {
                        status: VenueStatus::Filled,
                        filled_qty: 3,
                    },
                },
                r#"{"detail":{"exchange_filled_qty":3,"exchange_status":"filled"},"released":0}"#,
            ),
        ];
        for (event, detail) in cases {
            assert_eq!(event.detail().to_string(), detail, "{event:?}");
        }
    }

    #[test]
    fn a_fill_event_carries_its_quantity_to_the_table() {
        let event = OrderEvent::Fill {
            fill: VenueFill {
                fill_id: "F".into(),
                qty: 7,
                price: Cents(1),
            },
            source: FillSource::Push,
        };
        assert_eq!(event.action(), Action::Fill { qty: 7 });
    }
}
