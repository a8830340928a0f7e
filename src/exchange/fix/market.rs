//! Prices over the FIX session: the venue's list of symbols (SecurityListRequest `x`, answered by
//! SecurityList `y`), then one MarketDataRequest (`V`) for the last trade of each, answered by a
//! snapshot (`W`) per symbol and incremental refreshes (`X`) after. The symbols the venue lists are
//! the symbols the engine quotes.

use std::collections::BTreeMap;

use super::messages::{price, tag, Body};
use crate::domain::Cents;

/// `MDEntryType` 2: a trade, whose price is the last price.
const TRADE: &str = "2";

/// A SecurityListRequest (x) for every symbol the venue trades (`SecurityListRequestType` 4).
pub fn security_list_request(request_id: &str) -> Body {
    Body {
        msg_type: "x",
        fields: vec![
            (tag::SECURITY_REQ_ID, request_id.to_owned()),
            (tag::SECURITY_LIST_REQUEST_TYPE, "4".to_owned()),
        ],
    }
}

/// The symbols a SecurityList (y) names, in its order.
pub fn listed_symbols<'a>(fields: impl Iterator<Item = (u32, &'a str)>) -> Vec<String> {
    fields
        .filter(|(tag, value)| *tag == tag::SYMBOL && !value.is_empty())
        .map(|(_, value)| value.to_owned())
        .collect()
}

/// A MarketDataRequest (V): a snapshot of each symbol's last trade, then its changes
/// (`SubscriptionRequestType` 1, top of book, incremental refreshes).
pub fn market_data_request(request_id: &str, symbols: &[String]) -> Body {
    let mut fields = vec![
        (tag::MD_REQ_ID, request_id.to_owned()),
        (tag::SUBSCRIPTION_REQUEST_TYPE, "1".to_owned()),
        (tag::MARKET_DEPTH, "1".to_owned()),
        (tag::MD_UPDATE_TYPE, "1".to_owned()),
        (tag::NO_MD_ENTRY_TYPES, "1".to_owned()),
        (tag::MD_ENTRY_TYPE, TRADE.to_owned()),
        (tag::NO_RELATED_SYM, symbols.len().to_string()),
    ];
    fields.extend(symbols.iter().map(|s| (tag::SYMBOL, s.clone())));
    Body {
        msg_type: "V",
        fields,
    }
}

/// The last prices a snapshot (W) or an incremental refresh (X) carries, by symbol. A snapshot
/// names its symbol once, before its entries; a refresh names it in each entry. Entries of other
/// types, deletions, and prices not exact in cents are passed over.
pub fn last_prices<'a>(fields: impl Iterator<Item = (u32, &'a str)>) -> BTreeMap<String, Cents> {
    let mut prices = BTreeMap::new();
    let mut symbol: Option<&str> = None;
    let mut entry: Option<Entry<'a>> = None;
    let mut finish = |entry: Option<Entry<'a>>, symbol: Option<&str>| {
        if let Some(e) = entry {
            if let (Some(sym), Some(px), true, false) =
                (e.symbol.or(symbol), e.price, e.is_trade, e.is_delete)
            {
                prices.insert(sym.to_owned(), px);
            }
        }
    };
    for (tag, value) in fields {
        match tag {
            // Each entry starts with its action (X) or its type (W).
            tag::MD_UPDATE_ACTION => {
                finish(entry.take(), symbol);
                entry = Some(Entry {
                    is_delete: value == "2",
                    ..Entry::default()
                });
            }
            tag::MD_ENTRY_TYPE => match &mut entry {
                Some(e) if e.type_seen => {
                    finish(entry.take(), symbol);
                    entry = Some(Entry::of_type(value));
                }
                Some(e) => {
                    e.type_seen = true;
                    e.is_trade = value == TRADE;
                }
                None => entry = Some(Entry::of_type(value)),
            },
            tag::SYMBOL => match &mut entry {
                Some(e) => e.symbol = Some(value),
                None => symbol = Some(value),
            },
            tag::MD_ENTRY_PX => {
                if let Some(e) = &mut entry {
                    e.price = price(value);
                }
            }
            _ => {}
        }
    }
    finish(entry, symbol);
    prices
}

#[derive(Default)]
struct Entry<'a> {
    type_seen: bool,
    is_trade: bool,
    is_delete: bool,
    symbol: Option<&'a str>,
    price: Option<Cents>,
}

impl Entry<'_> {
    fn of_type(value: &str) -> Self {
        Entry {
            type_seen: true,
            is_trade: value == TRADE,
            ..Entry::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<(u32, String)> {
        text.split('|')
            .filter(|f| !f.is_empty())
            .map(|f| {
                let (tag, value) = f.split_once('=').unwrap();
                (tag.parse().unwrap(), value.to_owned())
            })
            .collect()
    }

    fn read(text: &str) -> BTreeMap<String, Cents> {
        let fields = fields(text);
        last_prices(fields.iter().map(|(t, v)| (*t, v.as_str())))
    }

    #[test]
    fn a_snapshot_names_its_symbol_once_and_a_refresh_in_each_entry() {
        assert_eq!(
            read("262=md|55=INFY|268=2|269=0|270=1519.00|269=2|270=1520.50"),
            BTreeMap::from([("INFY".to_owned(), Cents(152_050))])
        );
        assert_eq!(
            read("262=md|268=3|279=1|269=2|55=INFY|270=1521|279=2|269=2|55=TCS|270=1|279=0|269=2|55=TCS|270=3500.25"),
            BTreeMap::from([
                ("INFY".to_owned(), Cents(152_100)),
                ("TCS".to_owned(), Cents(350_025)),
            ]),
            "a deletion moves nothing"
        );
        assert!(
            read("55=INFY|268=1|269=2|270=1.005").is_empty(),
            "not exact in cents"
        );
    }

    #[test]
    fn a_market_data_request_asks_for_each_listed_symbol() {
        let symbols =
            listed_symbols([(320, "s1"), (146, "2"), (55, "INFY"), (55, "TCS")].into_iter());
        let request = market_data_request("md-1", &symbols);
        assert_eq!(request.msg_type, "V");
        let tail: Vec<_> = request.fields[6..].to_vec();
        assert_eq!(
            tail,
            [(146, "2".into()), (55, "INFY".into()), (55, "TCS".into())]
        );
    }
}
