// Shared by the layer targets (included with `include!`).
use std::collections::BTreeMap;

use x1_validate::image::layer::{CapturePolicy, NoScan};
use x1_validate::image::{Descriptor, Digest, LayerInfo, LayerListing};

fn info(index: usize) -> LayerInfo {
    let d = Digest::parse("sha256:0000000000000000000000000000000000000000000000000000000000000000")
        .expect("a valid digest");
    LayerInfo {
        index,
        descriptor: Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            digest: d.clone(),
            size: 0,
            annotations: BTreeMap::new(),
            platform: None,
        },
        diff_id: d,
        history: None,
    }
}

/// Walk one (uncompressed) layer tar; errors are fine, panics are not.
fn listing(index: usize, data: &[u8]) -> LayerListing {
    let capture = CapturePolicy::from_globs(
        ["etc/passwd".to_string(), "etc/**".to_string()],
        4096,
        64,
    )
    .expect("globs");
    let mut listing = LayerListing {
        index,
        ..LayerListing::default()
    };
    let mut r = std::io::Cursor::new(data);
    let _ = x1_validate::image::entries::walk(
        &mut r,
        &info(index),
        &capture,
        &mut NoScan,
        &mut listing,
        "fuzz",
    );
    listing
}
