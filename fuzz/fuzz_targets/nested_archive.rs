//! The nested-archive scanner (gzip / zstd / tar / zip, nested, with bomb limits) on one file's bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use x1_validate::scan::SecretScanner;

fuzz_target!(|data: &[u8]| {
    let mut s = SecretScanner::default();
    let mut r: &[u8] = data;
    let _ = s.scan_stream(0, "/fuzz/input.tgz", &mut r);
});
