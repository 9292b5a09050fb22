//! A whole input file: the tar index, `index.json` / `manifest.json` / `repositories` discovery, the
//! graph walk and selection, then `inspect`-level reading of every selected image's layers.
#![no_main]
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use x1_validate::image::layer::{CapturePolicy, NoScan};

fuzz_target!(|data: &[u8]| {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(data).expect("write");
    let path = f.path().to_str().expect("utf-8 temp path").to_string();
    let Ok(opened) = x1_validate::image::open(&path, None) else {
        return;
    };
    let capture = CapturePolicy::from_globs(["etc/**".to_string()], 4096, 64).expect("globs");
    for img in opened.images.iter().take(4) {
        if let Ok(out) = x1_validate::image::read_layers(&opened.source, img, &capture, |_| NoScan) {
            let listings: Vec<_> = out.into_iter().map(|o| o.listing).collect();
            let _ = x1_validate::image::MergedTree::merge(&listings);
        }
    }
});
