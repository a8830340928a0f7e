//! Money text: never a panic; what parses prints back to a text that parses to the same amount.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orderkeeper::domain::Cents;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(cents) = Cents::parse(text) {
        assert!(cents.0 >= 0);
        assert_eq!(Cents::parse(&cents.to_string()), Ok(cents));
    }
});
