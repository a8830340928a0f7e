//! A push from the exchange: never a panic; a parsed event reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orderkeeper::testing::parse_push;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(event) = parse_push(bytes) {
        let again = serde_json::to_vec(&event).expect("an event serialises");
        assert_eq!(parse_push(&again).expect("and parses back"), event);
    }
});
