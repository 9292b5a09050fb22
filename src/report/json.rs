//! `--format json`: the [`Report`] as serde serialises it, plus a computed `verdict` object per image
//! so a CI step can gate on `.images[].verdict.status` without re-deriving it. Keys are sorted
//! (`serde_json::Value` without `preserve_order`), so the document is byte-stable for a given report.
//! Every field is documented in `docs/report-schema.md`. When the run stopped with exit 2 or 3 the
//! top-level `verdict` is `error` and `error` says why (the image was not checked).

use std::io::Write;

use serde_json::{Value, json};

use super::{MaskedReport, WriteOptions};

/// Write the JSON document (pretty-printed, newline-terminated).
pub(super) fn write(
    report: &MaskedReport,
    opts: &WriteOptions,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let doc = to_value(report, opts)?;
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    out.write_all(b"\n")
}

/// The document as a JSON value (also used by tests and by callers that embed it).
pub(super) fn to_value(report: &MaskedReport, opts: &WriteOptions) -> std::io::Result<Value> {
    let fail_on = opts.fail_on();
    let mut doc = serde_json::to_value(&**report)?;
    if let Some(images) = doc.get_mut("images").and_then(Value::as_array_mut) {
        for (val, img) in images.iter_mut().zip(&report.images) {
            let t = img.tally();
            if let Some(obj) = val.as_object_mut() {
                obj.insert(
                    "verdict".into(),
                    json!({
                        "status": img.verdict(fail_on),
                        "fail_on": fail_on,
                        "errors": t.errors,
                        "warnings": t.warnings,
                        "notes": t.notes,
                        "not_run": t.not_run,
                        "suppressed": t.suppressed,
                        "line": img.verdict_line(fail_on),
                    }),
                );
            }
        }
    }
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("verdict".into(), json!(report.verdict(fail_on)));
    }
    Ok(doc)
}
