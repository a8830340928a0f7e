//! Newtype ids, so an account id can never be passed where an order id belongs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($name:ident) => {
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            Serialize,
            Deserialize,
            diesel::expression::AsExpression,
            diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh time-ordered (v7) id: new rows land at the end of the B-tree.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(AccountId);
uuid_id!(OrderId);

/// The id under which an order is known to the exchange. Derived from the order id (and, after a
/// replace, its version), so every retry of a placement, lookup, cancel or replace names the same
/// exchange order.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(transparent)]
pub struct ClientOrderId(pub String);

impl ClientOrderId {
    pub fn for_order(order: OrderId) -> Self {
        Self(format!("ok-{}", order.0.simple()))
    }

    /// The id of the order's `version` at the venue: the first is [`ClientOrderId::for_order`],
    /// each replace the venue takes makes the next.
    pub fn for_version(order: OrderId, version: i64) -> Self {
        match version {
            ..=1 => Self::for_order(order),
            v => Self(format!("ok-{}-v{v}", order.0.simple())),
        }
    }
}

impl ClientOrderId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The order this id names (any version of it), when it is one of ours.
    pub fn order_id(&self) -> Option<OrderId> {
        self.order_and_version().map(|(order, _)| order)
    }

    /// The version of the order's terms this id names, when it is one of ours.
    pub fn version(&self) -> Option<i64> {
        self.order_and_version().map(|(_, version)| version)
    }

    fn order_and_version(&self) -> Option<(OrderId, i64)> {
        let named = self.0.strip_prefix("ok-")?;
        let (simple, version) = match named.split_once("-v") {
            Some((simple, version)) => match version.parse::<i64>() {
                Ok(v) if v >= 2 => (simple, v),
                _ => return None,
            },
            None => (named, 1),
        };
        Some((OrderId(Uuid::try_parse(simple).ok()?), version))
    }
}

impl fmt::Display for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_order_id_is_stable_per_order() {
        let order = OrderId::new();
        assert_eq!(
            ClientOrderId::for_order(order),
            ClientOrderId::for_order(order)
        );
        assert_ne!(
            ClientOrderId::for_order(order),
            ClientOrderId::for_order(OrderId::new())
        );
    }

    #[test]
    fn a_client_order_id_names_its_order() {
        let order = OrderId::new();
        assert_eq!(ClientOrderId::for_order(order).order_id(), Some(order));
        assert_eq!(
            ClientOrderId::for_version(order, 1),
            ClientOrderId::for_order(order)
        );
        let third = ClientOrderId::for_version(order, 3);
        assert!(third.as_str().ends_with("-v3"), "{third}");
        assert_eq!(third.order_id(), Some(order));
        assert_eq!(third.version(), Some(3));
        assert_eq!(ClientOrderId::for_order(order).version(), Some(1));
        let simple = order.0.simple();
        assert_eq!(ClientOrderId(format!("ok-{simple}-v1")).order_id(), None);
        assert_eq!(ClientOrderId(format!("ok-{simple}-vx")).order_id(), None);
        assert_eq!(ClientOrderId(format!("ok-{simple}-vx")).version(), None);
        assert_eq!(ClientOrderId("ok-nonsense".into()).order_id(), None);
        assert_eq!(ClientOrderId("someone-else".into()).order_id(), None);
    }

    #[test]
    fn ids_round_trip_through_text() {
        let id = AccountId::new();
        assert_eq!(id.to_string().parse::<AccountId>().ok(), Some(id));
        assert!("not-a-uuid".parse::<OrderId>().is_err());
    }
}
