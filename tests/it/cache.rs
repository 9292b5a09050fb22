//! The per-layer result cache (`src/cache`): reports are identical cold and warm on every test image
//! (and the corpus when present), a hit reads no blob, a miss stores, a damaged entry is ignored and
//! rewritten, the size bound evicts, two runs at once share a cache, and no secret reaches the disk.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rand::Rng;

use crate::common::{ImageBuilder, Layer, bin, corpus_dir, fixtures_dir};

fn key(template: &str) -> String {
    let mut rng = rand::rng();
    x1_validate::scan::template::expand(template, &mut |a: &[u8]| a[rng.random_range(0..a.len())])
        .expect("known template classes")
}

/// `check --exec never --format json IMAGE` with the cache in `cache` (`None`: `--no-cache`).
fn check(image: &Path, cache: Option<&Path>, extra_env: &[(&str, &str)]) -> Output {
    check_with(
        image,
        cache,
        extra_env,
        &["--exec", "never", "--format", "json"],
    )
}

/// `check ARGS… IMAGE` with the cache in `cache` (`None`: `--no-cache`).
fn check_with(
    image: &Path,
    cache: Option<&Path>,
    extra_env: &[(&str, &str)],
    args: &[&str],
) -> Output {
    let mut c = Command::new(bin());
    c.arg("check")
        .args(args)
        .arg(image)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100");
    match cache {
        Some(d) => {
            c.env("X1_VALIDATE_CACHE_DIR", d);
        }
        None => {
            c.arg("--no-cache");
        }
    }
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.output().expect("run x1-validate")
}

/// What must be equal between two runs: exit code, stdout, stderr.
fn outcome(o: &Output) -> (Option<i32>, String, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn entries(cache: &Path) -> Vec<PathBuf> {
    files_in(&cache.join(format!("layers-v{}", x1_validate::cache::SCHEMA)))
}

fn memo_entries(cache: &Path) -> Vec<PathBuf> {
    files_in(&cache.join(format!("images-v{}", x1_validate::cache::MEMO_SCHEMA)))
}

/// Remove every image memo, so that the next run reads the layer entries.
fn forget_memos(cache: &Path) {
    for m in memo_entries(cache) {
        std::fs::remove_file(m).unwrap();
    }
}

fn text_entries(cache: &Path) -> Vec<PathBuf> {
    files_in(&cache.join(format!("texts-v{}", x1_validate::cache::TEXT_SCHEMA)))
}

/// The entries of one cache directory (not the temp files or the lock), sorted.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every image under testdata/: OCI layout dirs (an `index.json`) and archives (`*.tar`, except the
/// squash goldens, which are filesystems, not images).
fn test_images() -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.join("index.json").is_file() {
                    out.push(p.clone());
                }
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "tar")
                && !p.to_string_lossy().contains("squash-golden")
            {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(&fixtures_dir().join(".."), &mut v);
    v.sort();
    v
}

#[test]
fn reports_are_identical_cold_warm_and_uncached_on_every_test_image() {
    let images = test_images();
    assert!(
        images.len() >= 20,
        "found only {} test images",
        images.len()
    );
    let cache = tempfile::tempdir().unwrap();
    let mut stored_any = false;
    let mut memo_any = false;
    for img in &images {
        let uncached = check(img, None, &[]);
        let cold = check(img, Some(cache.path()), &[]);
        let before = entries(cache.path()).len();
        let texts_before = text_entries(cache.path()).len();
        let memos_before = memo_entries(cache.path()).len();
        let warm = check(img, Some(cache.path()), &[]);
        let name = img.display();
        assert_eq!(
            outcome(&uncached),
            outcome(&cold),
            "{name}: cold run differs from --no-cache"
        );
        assert_eq!(
            outcome(&cold),
            outcome(&warm),
            "{name}: warm run differs from cold"
        );
        assert_eq!(
            before,
            entries(cache.path()).len(),
            "{name}: a warm run stored new entries"
        );
        assert_eq!(
            texts_before,
            text_entries(cache.path()).len(),
            "{name}: a warm run stored new text-match results"
        );
        assert_eq!(
            memos_before,
            memo_entries(cache.path()).len(),
            "{name}: a warm run stored a new image memo"
        );
        // Without the image memo (the layer entries alone): the same report again.
        forget_memos(cache.path());
        let layers_only = check(img, Some(cache.path()), &[]);
        assert_eq!(
            outcome(&cold),
            outcome(&layers_only),
            "{name}: a run from the layer entries differs from cold"
        );
        stored_any |= before > 0;
        memo_any |= memos_before > 0;
    }
    assert!(stored_any, "no test image was cached");
    assert!(memo_any, "no test image was memoised");
}

#[test]
fn corpus_report_is_identical_cold_and_warm() {
    let Some(corpus) = corpus_dir() else {
        crate::common::skip("corpus not found (X1_CORPUS_DIR)");
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let timings = regex::Regex::new(r"in [0-9.]+ m?s; ran [0-9.]+ m?s").unwrap();
    for input in [corpus.join("oci"), corpus.join("image.docker.tar")] {
        let uncached = check(&input, None, &[]);
        let cold = check(&input, Some(cache.path()), &[]);
        let texts = text_entries(cache.path());
        let warm = check(&input, Some(cache.path()), &[]);
        assert_eq!(outcome(&uncached), outcome(&cold), "{}", input.display());
        assert_eq!(outcome(&cold), outcome(&warm), "{}", input.display());
        let memos = memo_entries(cache.path());
        assert!(!memos.is_empty(), "{}: no image memo", input.display());
        // The healthcheck's path on a memo hit: layers read (from their entries), the rest
        // memoised.
        // (but for the healthcheck's own timings)
        let auto = ["--exec", "auto", "--format", "json"];
        let untimed = |o: &Output| {
            let (code, out, err) = outcome(o);
            (code, timings.replace_all(&out, "").into_owned(), err)
        };
        let (uncached, warm) = (
            untimed(&check_with(&input, None, &[], &auto)),
            untimed(&check_with(&input, Some(cache.path()), &[], &auto)),
        );
        assert_eq!(uncached, warm, "{}", input.display());
        assert_eq!(memo_entries(cache.path()), memos);
        // The license texts (Debian copyright files, LICENSE files) were matched once and read
        // back warm.
        assert!(texts.len() >= 10, "{} text-match results", texts.len());
        assert_eq!(text_entries(cache.path()), texts);
    }
    assert!(!entries(cache.path()).is_empty());
}

/// An image with a planted key in a layer and a second, clean layer.
fn keyed_image(k: &str) -> ImageBuilder {
    ImageBuilder::new()
        .layer(
            Layer::new()
                .dir("etc")
                .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
                .file(
                    "opt/app/settings.js",
                    format!("const k = \"{k}\";\n").as_bytes(),
                ),
        )
        .layer(Layer::new().dir("srv").file("srv/readme.txt", b"hello\n"))
        .env("PATH=/usr/bin")
}

#[test]
fn a_hit_reads_no_blob_a_miss_stores_and_a_new_top_layer_is_the_only_miss() {
    let k = key("ghp_{alnum:36}");
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let img = keyed_image(&k).write_oci_dir(&work.path().join("a"));
    let cold = check(&img, Some(cache.path()), &[]);
    assert_eq!(
        cold.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&cold.stderr)
    );
    let stdout = String::from_utf8_lossy(&cold.stdout);
    assert!(
        stdout.contains("secret-in-layer") && stdout.contains("ghp_"),
        "{stdout}"
    );
    assert!(!stdout.contains(&k), "the key leaked into the report");
    let stored = entries(cache.path());
    assert_eq!(stored.len(), 2, "one entry per layer");
    // No stored byte holds the key (hits keep redacted evidence only; entries are compressed, so
    // decode them through the cache's own reader as well).
    for e in &stored {
        let raw = std::fs::read(e).unwrap();
        assert!(!raw.windows(k.len()).any(|w| w == k.as_bytes()));
    }

    // A hit does not read the blob: overwrite every layer blob with zeros of the same size; the warm
    // run still answers from the cache, a --no-cache run finds the damage (exit 3).
    let manifest = layer_blobs(&img);
    for b in &manifest {
        let len = std::fs::metadata(b).unwrap().len();
        std::fs::write(b, vec![0u8; len as usize]).unwrap();
    }
    // (the image memo would answer alone: this is about the layer entries)
    forget_memos(cache.path());
    let warm = check(&img, Some(cache.path()), &[]);
    assert_eq!(outcome(&cold), outcome(&warm));
    assert_eq!(check(&img, None, &[]).status.code(), Some(3));

    // Only a new top layer: exactly one new entry, and the report is the uncached one.
    let img2 = keyed_image(&k)
        .layer(Layer::new().file("srv/new.txt", b"new top layer\n"))
        .write_oci_dir(&work.path().join("b"));
    let cold2 = check(&img2, None, &[]);
    // (the two lower layers of img2 are the same blobs as img's, which now hold zeros on disk in `a`
    // only; `b` has its own intact copies)
    let warm2 = check(&img2, Some(cache.path()), &[]);
    assert_eq!(outcome(&cold2), outcome(&warm2));
    let name = |p: &PathBuf| p.file_name().unwrap().to_owned();
    let (a, b) = (layer_blobs(&img), layer_blobs(&img2));
    assert_eq!(
        a.iter().map(name).collect::<Vec<_>>(),
        b[..2].iter().map(name).collect::<Vec<_>>()
    );
    assert_eq!(
        entries(cache.path()).len(),
        3,
        "only the new top layer was a miss"
    );
}

/// The layer blob files of a one-image OCI layout, in manifest order.
fn layer_blobs(layout: &Path) -> Vec<PathBuf> {
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let man: serde_json::Value = serde_json::from_slice(&std::fs::read(blob(m)).unwrap()).unwrap();
    man["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(l["digest"].as_str().unwrap()))
        .collect()
}

#[test]
fn a_hit_still_needs_the_blob_and_the_configs_diff_id() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let img = keyed_image("none").write_oci_dir(&work.path().join("img"));
    assert_ne!(check(&img, Some(cache.path()), &[]).status.code(), Some(3));
    assert_eq!(entries(cache.path()).len(), 2);
    // The same layer blobs under a config whose diff_ids are wrong: exit 3, cold and warm alike.
    let other = keyed_image("none")
        .corrupt(crate::common::Corruption::WrongDiffId(1))
        .write_oci_dir(&work.path().join("other"));
    let (cold, warm) = (
        check(&other, None, &[]),
        check(&other, Some(cache.path()), &[]),
    );
    assert_eq!(
        cold.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&cold.stderr)
    );
    assert_eq!(outcome(&cold), outcome(&warm));
    // A blob gone from the input: exit 3 although its result is stored.
    let blobs = layer_blobs(&img);
    std::fs::remove_file(&blobs[1]).unwrap();
    let warm = check(&img, Some(cache.path()), &[]);
    let cold = check(&img, None, &[]);
    assert_eq!(warm.status.code(), Some(3));
    assert_eq!(outcome(&cold), outcome(&warm));
}

#[test]
fn a_damaged_entry_is_ignored_and_rewritten() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let img = keyed_image(&key("ghp_{alnum:36}")).write_oci_dir(work.path());
    let cold = check(&img, Some(cache.path()), &[]);
    let stored = entries(cache.path());
    assert_eq!(stored.len(), 2);
    let good: Vec<Vec<u8>> = stored.iter().map(|p| std::fs::read(p).unwrap()).collect();
    // Flip one payload byte of the first entry, truncate the second.
    let mut bad = good[0].clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    std::fs::write(&stored[0], &bad).unwrap();
    std::fs::write(&stored[1], &good[1][..good[1].len() / 2]).unwrap();
    // (the image memo would answer alone: this is about the layer entries)
    forget_memos(cache.path());
    let warm = check(&img, Some(cache.path()), &[]);
    assert_eq!(outcome(&cold), outcome(&warm));
    for (p, g) in stored.iter().zip(&good) {
        assert_eq!(
            &std::fs::read(p).unwrap(),
            g,
            "{} was not rewritten",
            p.display()
        );
    }
}

#[test]
fn the_size_bound_evicts_least_recently_used_entries() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    // Three images of one layer each, of the same shape (random names: entries of similar size).
    let mut imgs = Vec::new();
    for i in 0..3 {
        let mut layer = Layer::new();
        for j in 0..400 {
            layer = layer.file(&format!("d{i}/file-{j}-{}", key("{alnum:24}")), b"x");
        }
        imgs.push(
            ImageBuilder::new()
                .layer(layer)
                .write_oci_dir(&work.path().join(format!("i{i}"))),
        );
    }
    check(&imgs[0], Some(cache.path()), &[]);
    let first = entries(cache.path());
    assert_eq!(first.len(), 1);
    let one = std::fs::metadata(&first[0]).unwrap().len();
    // Room for two entries, not three.
    let bound = one * 5 / 2;
    let bound_s = bound.to_string();
    let env = [("X1_VALIDATE_CACHE_MAX", bound_s.as_str())];
    std::thread::sleep(std::time::Duration::from_millis(20));
    check(&imgs[1], Some(cache.path()), &env);
    assert_eq!(entries(cache.path()).len(), 2);
    std::thread::sleep(std::time::Duration::from_millis(20));
    // Use image 0 again: its entry becomes the most recently used.
    check(&imgs[0], Some(cache.path()), &env);
    std::thread::sleep(std::time::Duration::from_millis(20));
    check(&imgs[2], Some(cache.path()), &env);
    let left = entries(cache.path());
    let total: u64 = left
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(total <= bound, "{total} bytes left over a bound of {bound}");
    assert_eq!(left.len(), 2);
    assert!(
        left.contains(&first[0]),
        "the recently used entry was evicted"
    );
}

#[test]
fn two_runs_at_once_share_one_cache() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let img = keyed_image(&key("ghp_{alnum:36}"))
        .layer(Layer::new().file("a/b/c.txt", &vec![b'a'; 300_000]))
        .write_oci_dir(work.path());
    let reference = outcome(&check(&img, None, &[]));
    for _round in 0..3 {
        let spawn = || {
            Command::new(bin())
                .args(["check", "--exec", "never", "--format", "json"])
                .arg(&img)
                .env("X1_VALIDATE_CACHE_DIR", cache.path())
                .env("NO_COLOR", "1")
                .env("COLUMNS", "100")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        assert_eq!(outcome(&a), reference);
        assert_eq!(outcome(&b), reference);
    }
    assert_eq!(entries(cache.path()).len(), 3);
    assert_eq!(memo_entries(cache.path()).len(), 1);
    for sub in [
        format!("layers-v{}", x1_validate::cache::SCHEMA),
        format!("images-v{}", x1_validate::cache::MEMO_SCHEMA),
    ] {
        let temps = std::fs::read_dir(cache.path().join(sub))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .count();
        assert_eq!(temps, 0, "temp files left behind");
    }
}

#[test]
fn the_cache_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let root = cache.path().join("x1");
    let img = keyed_image("none").write_oci_dir(work.path());
    check(&img, Some(&root), &[]);
    for d in [
        root.clone(),
        root.join(format!("layers-v{}", x1_validate::cache::SCHEMA)),
        root.join(format!("images-v{}", x1_validate::cache::MEMO_SCHEMA)),
    ] {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }
    assert_eq!(memo_entries(&root).len(), 1);
    for e in entries(&root).into_iter().chain(memo_entries(&root)) {
        let mode = std::fs::metadata(&e).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", e.display());
    }
}

#[test]
fn a_layer_capturing_a_secret_or_a_credential_file_is_not_stored() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let k = key("ghp_{alnum:36}");
    // /etc/passwd is captured for the checks; a key in it must not be written to the cache.
    let img = ImageBuilder::new()
        .layer(Layer::new().dir("etc").file(
            "etc/passwd",
            format!("root:x:0:0:{k}:/root:/bin/sh\n").as_bytes(),
        ))
        // A credential file (captured for its content condition) holding no pattern-shaped key.
        .layer(Layer::new().file("root/.npmrc", b"_password=hunter2hunter2\n"))
        .layer(Layer::new().file("srv/readme.txt", b"hello\n"))
        .env("PATH=/usr/bin")
        .write_oci_dir(work.path());
    let cold = check(&img, Some(cache.path()), &[]);
    assert_eq!(
        entries(cache.path()).len(),
        1,
        "only the clean layer is stored"
    );
    let warm = check(&img, Some(cache.path()), &[]);
    assert_eq!(outcome(&cold), outcome(&warm));
}

#[test]
fn license_text_matches_are_cached_by_text_and_reports_stay_identical() {
    let text = |id: &str| {
        spdx::text::LICENSE_TEXTS
            .iter()
            .find(|(n, _)| *n == id)
            .map(|(_, t)| *t)
            .unwrap()
    };
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    // A stray AGPL text (denied), an MIT text twice (one match), a text that matches nothing.
    let img = ImageBuilder::new()
        .layer(
            Layer::new()
                .file("opt/agpl/LICENSE", text("AGPL-3.0-only").as_bytes())
                .file("opt/mit/LICENSE", text("MIT").as_bytes())
                .file("srv/mit/COPYING", text("MIT").as_bytes())
                .file(
                    "opt/own/LICENSE",
                    b"Permission to use this is granted to our friends only.\n",
                ),
        )
        .env("PATH=/usr/bin")
        .write_oci_dir(work.path());
    let uncached = check(&img, None, &[]);
    assert!(
        String::from_utf8_lossy(&uncached.stdout).contains("AGPL-3.0"),
        "the AGPL text is not reported: {}",
        String::from_utf8_lossy(&uncached.stdout)
    );
    assert!(text_entries(cache.path()).is_empty());
    let cold = check(&img, Some(cache.path()), &[]);
    let stored = text_entries(cache.path());
    assert_eq!(stored.len(), 3, "one entry per distinct text");
    let good: Vec<Vec<u8>> = stored.iter().map(|p| std::fs::read(p).unwrap()).collect();
    // Warm: every text a hit (each entry's age refreshed), nothing new stored, the same report.
    let mut old = std::time::SystemTime::now();
    for p in &stored {
        old = age(p);
    }
    // (the image memo would answer alone: this is about the layer entries)
    forget_memos(cache.path());
    let warm = check(&img, Some(cache.path()), &[]);
    assert_eq!(outcome(&uncached), outcome(&cold));
    assert_eq!(outcome(&cold), outcome(&warm));
    assert_eq!(text_entries(cache.path()), stored);
    for p in &stored {
        let m = std::fs::metadata(p).unwrap().modified().unwrap();
        assert!(m > old, "{} was not read", p.display());
    }
    // Damaged entries are not trusted: matched again, the same report, rewritten.
    std::fs::write(&stored[0], b"X1VLTEXT garbage").unwrap();
    let mut flipped = good[1].clone();
    flipped[20] ^= 0x01;
    std::fs::write(&stored[1], &flipped).unwrap();
    forget_memos(cache.path());
    let again = check(&img, Some(cache.path()), &[]);
    assert_eq!(outcome(&cold), outcome(&again));
    for (p, g) in stored.iter().zip(&good) {
        assert_eq!(
            &std::fs::read(p).unwrap(),
            g,
            "{} not rewritten",
            p.display()
        );
    }
}

#[test]
fn an_image_memo_hit_reads_no_layer_but_needs_every_blob() {
    let k = key("ghp_{alnum:36}");
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let img = keyed_image(&k).write_oci_dir(&work.path().join("a"));
    let cold = check(&img, Some(cache.path()), &[]);
    assert_eq!(cold.status.code(), Some(1));
    let memos = memo_entries(cache.path());
    assert_eq!(memos.len(), 1, "one memo per image");
    for m in &memos {
        let raw = std::fs::read(m).unwrap();
        assert!(!raw.windows(k.len()).any(|w| w == k.as_bytes()));
    }
    // No layer entry and every blob zeroed (same sizes): the memo answers alone.
    for e in entries(cache.path()) {
        std::fs::remove_file(e).unwrap();
    }
    let blobs = layer_blobs(&img);
    for b in &blobs {
        let len = std::fs::metadata(b).unwrap().len();
        std::fs::write(b, vec![0u8; len as usize]).unwrap();
    }
    let warm = check(&img, Some(cache.path()), &[]);
    assert_eq!(outcome(&cold), outcome(&warm));
    assert!(entries(cache.path()).is_empty(), "a layer was read");
    assert_eq!(check(&img, None, &[]).status.code(), Some(3));
    // A blob of another size, or gone: exit 3 as without the cache.
    std::fs::write(&blobs[0], b"short").unwrap();
    let (warm, cold) = (check(&img, Some(cache.path()), &[]), check(&img, None, &[]));
    assert_eq!(warm.status.code(), Some(3));
    assert_eq!(outcome(&cold), outcome(&warm));
    std::fs::remove_file(&blobs[0]).unwrap();
    let (warm, cold) = (check(&img, Some(cache.path()), &[]), check(&img, None, &[]));
    assert_eq!(warm.status.code(), Some(3));
    assert_eq!(outcome(&cold), outcome(&warm));
}

#[test]
fn a_damaged_image_memo_is_ignored_and_rewritten() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let img = keyed_image(&key("ghp_{alnum:36}")).write_oci_dir(work.path());
    let cold = check(&img, Some(cache.path()), &[]);
    let memos = memo_entries(cache.path());
    assert_eq!(memos.len(), 1);
    let good = std::fs::read(&memos[0]).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x10;
    for bad in [flipped, good[..good.len() - 3].to_vec(), Vec::new()] {
        std::fs::write(&memos[0], &bad).unwrap();
        let warm = check(&img, Some(cache.path()), &[]);
        assert_eq!(outcome(&cold), outcome(&warm));
        assert_eq!(
            std::fs::read(&memos[0]).unwrap(),
            good,
            "the memo was not rewritten"
        );
    }
}

/// Set `p`'s mtime to a fixed old time, and return it.
fn age(p: &Path) -> std::time::SystemTime {
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1 << 30);
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(old)
        .unwrap();
    old
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn an_image_memo_hit_refreshes_the_text_matches_it_stands_on() {
    let mit = spdx::text::LICENSE_TEXTS
        .iter()
        .find(|(n, _)| *n == "MIT")
        .map(|(_, t)| *t)
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let img = ImageBuilder::new()
        .layer(Layer::new().file("opt/mit/LICENSE", mit.as_bytes()))
        .env("PATH=/usr/bin")
        .write_oci_dir(work.path());
    let cold = check(&img, Some(cache.path()), &[]);
    let (texts, memos) = (text_entries(cache.path()), memo_entries(cache.path()));
    assert_eq!((texts.len(), memos.len()), (1, 1));
    let (old_text, old_memo) = (age(&texts[0]), age(&memos[0]));
    // Every layer entry gone: only a memo hit can give the same report without a layer read.
    for e in entries(cache.path()) {
        std::fs::remove_file(e).unwrap();
    }
    let warm = check(&img, Some(cache.path()), &[]);
    assert_eq!(outcome(&cold), outcome(&warm));
    assert!(entries(cache.path()).is_empty(), "a layer was read");
    assert!(mtime(&memos[0]) > old_memo, "the memo was not read");
    assert!(
        mtime(&texts[0]) > old_text,
        "the memo hit left its text-match entry to age out"
    );
}

#[test]
fn other_schemas_entries_share_the_bound_and_age_out_first() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let img = keyed_image(&key("ghp_{alnum:36}")).write_oci_dir(work.path());
    // An earlier version's entries (nothing reads them any more), a directory that is not the
    // cache's, and a link to a directory outside the cache.
    let stale: Vec<PathBuf> = ["layers-v1", "texts-v0", "images-v1"]
        .iter()
        .map(|d| {
            let dir = cache.path().join(d);
            std::fs::create_dir_all(&dir).unwrap();
            let f = dir.join("a".repeat(64));
            std::fs::write(&f, vec![7u8; 64 * 1024]).unwrap();
            age(&f);
            f
        })
        .collect();
    let not_an_entry = cache.path().join("layers-v1/README");
    std::fs::write(&not_an_entry, vec![3u8; 64 * 1024]).unwrap();
    age(&not_an_entry);
    let foreign = cache.path().join("notes-v1/keep");
    std::fs::create_dir_all(foreign.parent().unwrap()).unwrap();
    std::fs::write(&foreign, vec![1u8; 64 * 1024]).unwrap();
    age(&foreign);
    let linked = outside.path().join("b".repeat(64));
    std::fs::write(&linked, vec![2u8; 64 * 1024]).unwrap();
    age(&linked);
    std::os::unix::fs::symlink(outside.path(), cache.path().join("layers-v9")).unwrap();
    // A bound that any one stale entry exceeds, with room for this run's own (a few KiB).
    let env = [("X1_VALIDATE_CACHE_MAX", "48KiB")];
    let cold = check(&img, Some(cache.path()), &env);
    assert_eq!(cold.status.code(), Some(1));
    for f in &stale {
        assert!(!f.exists(), "{} outlived the bound", f.display());
    }
    assert_eq!(
        entries(cache.path()).len(),
        2,
        "one of this run's two layer entries was evicted"
    );
    assert_eq!(memo_entries(cache.path()).len(), 1);
    assert!(
        foreign.exists(),
        "a file that is not the cache's was removed"
    );
    assert!(linked.exists(), "eviction followed a link out of the cache");
    assert!(
        not_an_entry.exists(),
        "a file not named as an entry was removed"
    );
}

#[test]
fn what_changes_outcomes_changes_the_memo_and_what_applies_after_does_not() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let img = keyed_image(&key("ghp_{alnum:36}")).write_oci_dir(&work.path().join("img"));
    let c = Some(cache.path());
    let same = |args: &[&str], env: &[(&str, &str)]| {
        let cached = check_with(&img, c, env, args);
        assert_eq!(
            outcome(&check_with(&img, None, env, args)),
            outcome(&cached),
            "{args:?}"
        );
        outcome(&cached)
    };
    let base = ["--exec", "never", "--format", "json"];
    let default = same(&base, &[]);
    assert_eq!(memo_entries(cache.path()).len(), 1);
    // --ref decides tag-policy: another memo.
    let with_ref = same(
        &[&base[..], &["--ref", "x1agent/runtime-opencode:edge"]].concat(),
        &[],
    );
    assert_ne!(with_ref, default);
    assert_eq!(memo_entries(cache.path()).len(), 2);
    // Another rule set (one more credential-file kind, no content condition: the capture policy
    // and secret patterns are unchanged, only the rule files' digest tells): another memo.
    let rules = work.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let creds = format!(
        "{}\n[[file]]\nid = \"readme\"\ndescription = \"a readme\"\nglobs = [\"srv/readme.txt\"]\n",
        include_str!("../../rules/credentials.toml")
    );
    std::fs::write(rules.join("credentials.toml"), creds).unwrap();
    let rules_arg = rules.to_str().unwrap();
    let with_rules = same(&[&base[..], &["--rules", rules_arg]].concat(), &[]);
    assert_ne!(with_rules, default);
    assert!(with_rules.1.contains("readme.txt"), "{}", with_rules.1);
    assert_eq!(memo_entries(cache.path()).len(), 3);
    // Applied after the checks: severities, --fail-on, the format, --exec (the healthcheck still
    // runs on a hit). The same memos serve them all.
    let memos = memo_entries(cache.path());
    let allowed = same(&[&base[..], &["--allow", "secret-in-layer"]].concat(), &[]);
    assert_ne!(allowed, default, "--allow changed nothing: a weak test");
    same(
        &[
            &base[..],
            &["--deny", "layer-hygiene", "--warn", "credential-file"],
        ]
        .concat(),
        &[],
    );
    same(&[&base[..], &["--fail-on", "warning"]].concat(), &[]);
    same(&["--exec", "never", "--format", "human"], &[]);
    same(&["--exec", "never", "--format", "sarif"], &[]);
    same(&["--exec", "auto", "--format", "json"], &[]);
    same(&["--exec", "always", "--format", "json"], &[]);
    assert_eq!(memo_entries(cache.path()), memos);
}

#[test]
fn an_input_with_attestations_is_not_memoised_and_each_platform_is() {
    let work = tempfile::tempdir().unwrap();
    for (attested, memos) in [(true, 0), (false, 2)] {
        let cache = tempfile::tempdir().unwrap();
        let dir = work.path().join(format!("l{attested}"));
        crate::common::layout::amd64_arm64(&dir, attested);
        let uncached = check(&dir, None, &[]);
        let cold = check(&dir, Some(cache.path()), &[]);
        let warm = check(&dir, Some(cache.path()), &[]);
        assert_eq!(outcome(&uncached), outcome(&cold));
        assert_eq!(outcome(&cold), outcome(&warm));
        assert_eq!(
            memo_entries(cache.path()).len(),
            memos,
            "attested: {attested}"
        );
        assert!(!entries(cache.path()).is_empty());
    }
}

#[test]
fn outcomes_that_would_put_a_secret_on_disk_are_not_memoised() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let k = key("ghp_{alnum:36}");
    // A setuid file whose name is a key: the layer-hygiene finding names it (masked in the report,
    // whole in the outcome).
    let img = ImageBuilder::new()
        .layer(
            Layer::new()
                .dir("usr/local/bin")
                .setuid(&format!("usr/local/bin/{k}"), b"x"),
        )
        .env("PATH=/usr/bin")
        .write_oci_dir(work.path());
    let cold = check(&img, Some(cache.path()), &[]);
    assert!(
        String::from_utf8_lossy(&cold.stdout).contains("setuid"),
        "{}",
        String::from_utf8_lossy(&cold.stdout)
    );
    assert!(memo_entries(cache.path()).is_empty(), "memoised a secret");
    let warm = check(&img, Some(cache.path()), &[]);
    assert_eq!(outcome(&cold), outcome(&warm));
    assert_eq!(outcome(&check(&img, None, &[])), outcome(&warm));
}

/// An image with more distinct license texts than the text-matching budget covers gives the same
/// report on one core or two, without the cache, cold, with only the text-match results warm, and
/// fully warm: which texts the budget covers is decided in text order, not by the threads' race.
#[test]
fn a_spent_license_budget_gives_one_report_on_any_cores_cold_or_warm() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, mit) = spdx::text::LICENSE_TEXTS
        .iter()
        .find(|(n, _)| *n == "MIT")
        .expect("MIT");
    // 6,100 distinct MIT texts (one analysis each: 100 past the budget of 6,000) in two layers.
    let (mut a, mut b) = (Layer::new(), Layer::new());
    for i in 0..6100 {
        let text = format!("Copyright (c) {i} Someone\n\n{mit}");
        let path = format!("opt/p{i}/LICENSE");
        if i % 2 == 0 {
            a = a.file(&path, text.as_bytes());
        } else {
            b = b.file(&path, text.as_bytes());
        }
    }
    let img = ImageBuilder::new()
        .layer(a)
        .layer(b)
        .write_oci_dir(tmp.path());
    let base = check(&img, None, &[("RAYON_NUM_THREADS", "1")]);
    let report = String::from_utf8_lossy(&base.stdout).into_owned();
    assert!(
        report.contains("6000 identified by their license text"),
        "{report}"
    );
    assert!(report.contains("6100 loose license files"), "{report}");
    let same = |o: &Output, what: &str| assert_eq!(outcome(o), outcome(&base), "{what}");
    same(
        &check(&img, None, &[("RAYON_NUM_THREADS", "2")]),
        "two cores",
    );
    let cache = tempfile::tempdir().unwrap();
    same(&check(&img, Some(cache.path()), &[]), "cold");
    // the text-match results warm, the layers read again
    forget_memos(cache.path());
    for e in entries(cache.path()) {
        std::fs::remove_file(e).unwrap();
    }
    same(&check(&img, Some(cache.path()), &[]), "texts warm");
    same(&check(&img, Some(cache.path()), &[]), "warm");
}
