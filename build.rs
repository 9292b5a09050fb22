//! Builds the compact license store (`src/license/textmatch/store.rs`) from the `spdx` crate's
//! askalono store: every SPDX license text and standard header, plus the GNU notices Debian quotes,
//! as word-bigram tables read in place at run time. Written to `$OUT_DIR/license-store.bin`; its
//! SHA-256 becomes `X1_LICENSE_STORE_SHA256` (part of the text-match cache key).

use std::path::PathBuf;

use sha2::{Digest as _, Sha256};
use spdx::detection::Store as SpdxStore;

#[allow(dead_code)]
#[path = "src/license/textmatch/preproc.rs"]
mod preproc;
#[allow(dead_code)]
#[path = "src/license/textmatch/store.rs"]
mod store;
#[path = "src/license/textmatch/store_build.rs"]
mod store_build;

use store::Kind;
use store_build::{BuildText, GNU_SHORT_NOTICES};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/license/textmatch/preproc.rs");
    println!("cargo::rerun-if-changed=src/license/textmatch/store.rs");
    println!("cargo::rerun-if-changed=src/license/textmatch/store_build.rs");
    let spdx = SpdxStore::load_inline().expect("the spdx crate's inline store decodes");
    let mut entries: Vec<_> = spdx.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut texts = Vec::new();
    for (name, entry) in entries {
        // A stored text keeps its normalised lines; askalono's match data is the aggressive pass
        // over them joined (`TextData::new`), so the same bigrams come back.
        let from_lines = |kind, lines: &[String]| {
            let processed = preproc::apply_aggressive(&lines.join("\n"));
            BuildText::new(name, kind, &processed, &lines.join(" "))
        };
        texts.push(from_lines(Kind::Original, entry.original.lines()));
        for h in &entry.headers {
            texts.push(from_lines(Kind::Header, h.lines()));
        }
        for (n, notice) in GNU_SHORT_NOTICES {
            if n == name {
                let lines = preproc::apply_normalizers(notice);
                let processed = preproc::apply_aggressive(&lines.join("\n"));
                texts.push(BuildText::new(
                    name,
                    Kind::Header,
                    &processed,
                    &lines.join(" "),
                ));
            }
        }
        for a in &entry.alternates {
            texts.push(from_lines(Kind::Alternate, a.lines()));
        }
    }
    for (n, _) in GNU_SHORT_NOTICES {
        assert!(
            texts.iter().any(|t| t.name == *n),
            "the spdx store has no {n}"
        );
    }
    let bytes = store_build::build(&texts).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        store::Store::parse(&bytes).is_some_and(|s| s.len() == texts.len() && s.is_consistent())
    );
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set"));
    std::fs::write(out.join("license-store.bin"), &bytes).expect("write the license store");
    println!(
        "cargo::rustc-env=X1_LICENSE_STORE_SHA256={}",
        hex::encode(Sha256::digest(&bytes))
    );
}
