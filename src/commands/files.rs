//! `x1-validate files`: the merged filesystem of each selected image with type, mode, uid/gid, size,
//! link target and supplying layer; with `--all-layers`, every entry of every layer with its fate.
//! The output names layers by index and `diff_id` only, so an image gives the same output whichever
//! form (OCI layout, OCI archive, `docker save`) it comes in. JSON shape: `docs/json-output.md`.

use std::io::Write;

use serde_json::{Value, json};

use super::inspect::{ListFormat, load};
use crate::error::{Error, Result};
use crate::image::tree::{Fate, MergedTree, NodeRef};
use crate::image::{Entry, EntryKind, Image, LayerListing, Opened};
use crate::report::{ImageText as T, mask_json};

/// Arguments of `x1-validate files`.
#[derive(Debug, Clone, clap::Args)]
pub struct FilesArgs {
    /// The image: OCI layout dir, OCI archive, docker-archive tar, or `-` for stdin; `PATH:TAG` or
    /// `PATH@sha256:…` picks one image of several.
    pub image: String,
    /// List every entry of every layer with its fate instead of the merged tree.
    #[arg(long)]
    pub all_layers: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Human)]
    pub format: ListFormat,
    /// Only this platform (`os/arch[/variant]`, or `all`).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]|all", default_value = "all")]
    pub platform: crate::image::PlatformChoice,
}

/// Run the command; returns the exit code.
pub fn run(args: &FilesArgs, out: &mut dyn Write) -> Result<u8> {
    let (opened, listings) = load(&args.image, &args.platform)?;
    render(&opened, &listings, args.all_layers, args.format, out)?;
    Ok(0)
}

/// Write the `files` output for already-read listings (one `Vec` per image of `opened`).
pub fn render(
    opened: &Opened,
    listings: &[Vec<LayerListing>],
    all_layers: bool,
    format: ListFormat,
    out: &mut dyn Write,
) -> Result<()> {
    let w = |e: std::io::Error| Error::output("<stdout>", e);
    let mut docs = Vec::new();
    let several = opened.images.len() > 1;
    for (img, ls) in opened.images.iter().zip(listings) {
        let tree = MergedTree::merge(ls);
        match format {
            ListFormat::Json => docs.push(image_json(img, ls, &tree, all_layers)),
            ListFormat::Human => {
                if several {
                    writeln!(
                        out,
                        "# {} (config {})",
                        T(&img.platform.to_string()),
                        img.config_descriptor.digest
                    )
                    .map_err(w)?;
                }
                if all_layers {
                    human_layers(img, ls, &tree, out).map_err(w)?;
                } else {
                    human_tree(ls, &tree, out).map_err(w)?;
                }
            }
        }
    }
    if format == ListFormat::Json {
        let mut doc = json!({ "images": docs });
        mask_json(&mut doc);
        serde_json::to_writer_pretty(&mut *out, &doc).map_err(|e| w(e.into()))?;
        writeln!(out).map_err(w)?;
    }
    Ok(())
}

fn type_name(k: &EntryKind) -> &'static str {
    match k {
        EntryKind::File => "file",
        EntryKind::Dir => "dir",
        EntryKind::Symlink { .. } => "symlink",
        EntryKind::Hardlink { .. } => "hardlink",
        EntryKind::Char { .. } => "char",
        EntryKind::Block { .. } => "block",
        EntryKind::Fifo => "fifo",
    }
}

fn type_char(k: &EntryKind) -> char {
    match k {
        EntryKind::File => '-',
        EntryKind::Dir => 'd',
        EntryKind::Symlink { .. } => 'l',
        EntryKind::Hardlink { .. } => 'h',
        EntryKind::Char { .. } => 'c',
        EntryKind::Block { .. } => 'b',
        EntryKind::Fifo => 'p',
    }
}

/// Size of an entry's content (a hardlink has its origin's size).
fn content_size(ls: &[LayerListing], tree: &MergedTree, n: NodeRef) -> u64 {
    MergedTree::entry(ls, tree.origin(n)).size
}

fn link_text(e: &Entry) -> String {
    match &e.kind {
        EntryKind::Symlink { target } => format!(" -> {}", T(target)),
        EntryKind::Hardlink { target } => format!(" => /{}", T(target)),
        EntryKind::Char { major, minor } | EntryKind::Block { major, minor } => {
            format!(" [{major},{minor}]")
        }
        _ => String::new(),
    }
}

fn entry_json(ls: &[LayerListing], tree: &MergedTree, path: &str, n: NodeRef) -> Value {
    let e = MergedTree::entry(ls, n);
    let mut v = json!({
        "path": format!("/{path}"),
        "type": type_name(&e.kind),
        "mode": format!("{:04o}", e.mode),
        "uid": e.uid,
        "gid": e.gid,
        "size": content_size(ls, tree, n),
        "layer": n.layer,
    });
    match &e.kind {
        EntryKind::Symlink { target } => v["link_target"] = json!(target),
        EntryKind::Hardlink { target } => {
            v["link_target"] = json!(format!("/{target}"));
            let o = tree.origin(n);
            v["content_layer"] = if o == n { Value::Null } else { json!(o.layer) };
        }
        EntryKind::Char { major, minor } | EntryKind::Block { major, minor } => {
            v["device"] = json!([major, minor]);
        }
        _ => {}
    }
    v
}

fn fate_json(f: Fate) -> Value {
    match f {
        Fate::Visible => json!({"fate": "visible"}),
        Fate::Overwritten { by } => json!({"fate": "overwritten", "by": by}),
        Fate::Deleted { by } => json!({"fate": "deleted", "by": by}),
        Fate::HiddenByOpaque { by } => json!({"fate": "hidden-by-opaque", "by": by}),
    }
}

fn image_json(img: &Image, ls: &[LayerListing], tree: &MergedTree, all: bool) -> Value {
    let mut doc = json!({
        "platform": img.platform.to_string(),
        "config": img.config_descriptor.digest,
    });
    if all {
        doc["layers"] = img
            .layers
            .iter()
            .zip(ls)
            .map(|(l, x)| {
                let entries: Vec<Value> = x
                    .entries
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let n = NodeRef { layer: l.index, entry: i };
                        let mut v = entry_json(ls, tree, e.path, n);
                        v["ordinal"] = json!(e.ordinal);
                        v["fate"] = fate_json(tree.fates[l.index][i]);
                        if let Some(link) = tree.ships_as.get(&n) {
                            v["fate"]["ships_as"] = json!(format!("/{link}"));
                        }
                        v
                    })
                    .collect();
                json!({
                    "index": l.index,
                    "diff_id": l.diff_id,
                    "created_by": l.history.as_ref().and_then(|h| h.created_by.as_deref()),
                    "entries": entries,
                    "whiteouts": x.whiteouts.iter().map(|p| format!("/{p}")).collect::<Vec<_>>(),
                    "opaque_dirs": x.opaque_dirs.iter().map(|p| format!("/{p}")).collect::<Vec<_>>(),
                    "hygiene": x.hygiene,
                })
            })
            .collect();
    } else {
        doc["entries"] = tree
            .nodes
            .iter()
            .map(|(p, n)| entry_json(ls, tree, p, n))
            .collect();
    }
    doc
}

fn line(ls: &[LayerListing], tree: &MergedTree, path: &str, n: NodeRef) -> String {
    let e = MergedTree::entry(ls, n);
    format!(
        "{} {:04o} {:>5}:{:<5} {:>10}  L{:<2} /{}{}",
        type_char(&e.kind),
        e.mode,
        e.uid,
        e.gid,
        content_size(ls, tree, n),
        n.layer,
        T(path),
        link_text(&e)
    )
}

fn human_tree(ls: &[LayerListing], tree: &MergedTree, out: &mut dyn Write) -> std::io::Result<()> {
    for (p, n) in &tree.nodes {
        writeln!(out, "{}", line(ls, tree, p, n))?;
    }
    Ok(())
}

fn human_layers(
    img: &Image,
    ls: &[LayerListing],
    tree: &MergedTree,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    for (l, x) in img.layers.iter().zip(ls) {
        let by = l
            .history
            .as_ref()
            .and_then(|h| h.created_by.as_deref())
            .unwrap_or_default();
        writeln!(out, "== layer {} {} {}", l.index, l.diff_id, T(by))?;
        for d in &x.opaque_dirs {
            writeln!(out, "   opaque  /{}", T(d))?;
        }
        for wpath in &x.whiteouts {
            writeln!(out, "   whiteout /{}", T(wpath))?;
        }
        for (i, e) in x.entries.iter().enumerate() {
            let n = NodeRef {
                layer: l.index,
                entry: i,
            };
            writeln!(
                out,
                "{}  [{}]",
                line(ls, tree, e.path, n),
                tree.describe_fate(n)
            )?;
        }
    }
    Ok(())
}
