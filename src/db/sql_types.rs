//! How the domain's types are stored, in SQLite and PostgreSQL alike: ids, symbols and enums as
//! text, money as BIGINT cents. Rows carry these types, so no query result is ever re-parsed by
//! hand, and a value the domain does not know (an unknown side, a malformed id) is an error where
//! it is read, never a silent default.

use std::io::Write;

use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::{Sqlite, SqliteValue};

use super::alarms::AlarmKind;
use crate::domain::{
    AccountId, ActionKind, Cents, ClientOrderId, FillSource, OrderId, OrderStatus, OrderType, Side,
    Symbol, TimeInForce,
};

/// Stores a type as its text form; reads it back through `parse`.
macro_rules! stored_as_text {
    ($($ty:ty => $parse:expr),+ $(,)?) => {$(
        impl ToSql<Text, Sqlite> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                out.set_value(self.to_string());
                Ok(IsNull::No)
            }
        }

        impl FromSql<Text, Sqlite> for $ty {
            fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
                let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
                let parse: fn(&str) -> Option<$ty> = $parse;
                parse(&text).ok_or_else(|| {
                    format!("{text:?} is not a valid {}", stringify!($ty)).into()
                })
            }
        }

        impl ToSql<Text, Pg> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                out.write_all(self.to_string().as_bytes())?;
                Ok(IsNull::No)
            }
        }

        impl FromSql<Text, Pg> for $ty {
            fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
                let text = <String as FromSql<Text, Pg>>::from_sql(value)?;
                let parse: fn(&str) -> Option<$ty> = $parse;
                parse(&text).ok_or_else(|| {
                    format!("{text:?} is not a valid {}", stringify!($ty)).into()
                })
            }
        }
    )+};
}

stored_as_text! {
    AccountId => |t| t.parse().ok(),
    OrderId => |t| t.parse().ok(),
    ClientOrderId => |t| Some(ClientOrderId(t.to_owned())),
    Symbol => |t| Symbol::parse(t).ok(),
    Side => Side::parse,
    OrderType => OrderType::parse,
    TimeInForce => TimeInForce::parse,
    OrderStatus => OrderStatus::parse,
    ActionKind => ActionKind::parse,
    FillSource => FillSource::parse,
    AlarmKind => AlarmKind::parse,
}

impl ToSql<BigInt, Sqlite> for Cents {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        <i64 as ToSql<BigInt, Sqlite>>::to_sql(&self.0, out)
    }
}

impl FromSql<BigInt, Sqlite> for Cents {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        <i64 as FromSql<BigInt, Sqlite>>::from_sql(value).map(Cents)
    }
}

impl ToSql<BigInt, Pg> for Cents {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <i64 as ToSql<BigInt, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<BigInt, Pg> for Cents {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <i64 as FromSql<BigInt, Pg>>::from_sql(value).map(Cents)
    }
}
