//! Index / manifest / config / manifest.json / repositories parsing (the runtimes' reading).
#![no_main]
use libfuzzer_sys::fuzz_target;
use x1_validate::image::json::{Doc, parse};
use x1_validate::image::walk::parse_config;

fuzz_target!(|data: &[u8]| {
    let Some((&which, doc)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            let _ = parse(doc, "fuzz", Doc::Descriptors);
        }
        1 => {
            let _ = parse_config(doc, "fuzz");
        }
        2 => {
            let _ = parse(doc, "fuzz", Doc::DockerManifest);
        }
        3 => {
            let _ = parse(doc, "fuzz", Doc::Repositories);
        }
        _ => {
            if let Ok(v) = parse(doc, "fuzz", Doc::Descriptors) {
                let _ = x1_validate::image::walk::descriptor(&v, "fuzz");
            }
        }
    }
});
