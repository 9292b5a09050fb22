//! The hardened tar walk of one layer stream.
#![no_main]
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let _ = listing(0, data);
});
