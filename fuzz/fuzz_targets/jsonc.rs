//! The JSONC reader (comments and trailing commas blanked, byte offsets kept).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let json = x1_validate::checks::jsonc::to_json(text);
    assert_eq!(json.len(), text.len(), "byte offsets must be preserved");
    let _ = serde_json::from_str::<serde_json::Value>(&json);
});
