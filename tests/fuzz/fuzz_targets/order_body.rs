//! A body of `POST /v1/orders`: never a panic, and only a checked order gets through.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orderkeeper::domain::{OrderType, MAX_QTY};
use orderkeeper::testing::orders::request::parse_order_body;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(parsed) = parse_order_body(bytes) {
        let order = &parsed.order;
        assert!(order.qty >= 1 && order.qty <= MAX_QTY);
        assert_eq!(order.limit_price.is_some(), order.order_type == OrderType::Limit);
        assert!(order
            .limit_price
            .is_none_or(|p| p.0 > 0 && p.times(order.qty).is_some()));
    }
});
