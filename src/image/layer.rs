//! One streaming pass per layer blob: digest-verified read → compression sniffed from magic bytes →
//! `diff_id` hashed over the uncompressed bytes → hardened tar parse → [`LayerListing`], with every
//! regular file's content handed to a [`ContentScanner`]. Layers run in parallel (rayon) and come back in
//! order. Nothing is extracted to disk; no whole layer or whole file is held in memory.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;

use super::blob::from_io;
use super::entries;
use super::stream::{CHUNK, HashingReader, decoder, layer_name, pipelined, pump, sniff};
use super::{Compression, Digest, Image, LayerInfo, LayerListing, Source};
use crate::error::{Error, Result};

pub use super::capture::{CapturePolicy, ContentScanner, NoScan};

/// What [`read_layers`] returns for each layer, in layer order.
#[derive(Debug)]
pub struct LayerOutput<S> {
    pub listing: LayerListing,
    pub scan: S,
}

/// Stream every layer of `image` once, in parallel, verifying compressed digest+size and `diff_id`.
/// Any mismatch, truncation or unknown compression is `Error::Corrupt` (exit 3) naming the blob.
pub fn read_layers<S, F>(
    source: &Source,
    image: &Image,
    capture: &CapturePolicy,
    make_scanner: F,
) -> Result<Vec<LayerOutput<S>>>
where
    S: ContentScanner,
    F: Fn(&LayerInfo) -> S + Sync,
{
    let all: Vec<&LayerInfo> = image.layers.iter().collect();
    read_some(source, &all, capture, make_scanner, None)
}

/// Work for a layer worker that finds no layer left to start, while the other workers finish
/// theirs (the core would idle otherwise): license texts matched ahead of time
/// (`crate::license::memo`).
pub trait Idle: Sync {
    /// Use the listings of layers finished so far; each listing is given once, to one worker.
    fn work(&self, finished: &[&LayerListing]);
    /// The pass is over (every layer is done, or one failed): stop soon, start nothing more.
    fn stop(&self);
}

/// What a layer worker does next: read the layer at this position of the queue, or (no layer left
/// to start, some still being read) idle work, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Layer(usize),
    Idle,
    Done,
}

/// The scheduling decision: `claimed` is the queue position this worker just took, `len` the queue's
/// length, `finished` the layers done so far. Idle work only once every layer has been started and
/// while one is still being read.
fn next_task(claimed: usize, len: usize, finished: usize, failed: bool) -> Next {
    if failed {
        Next::Done
    } else if claimed < len {
        Next::Layer(claimed)
    } else if finished < len {
        Next::Idle
    } else {
        Next::Done
    }
}

/// [`read_layers`] for some layers of an image only (the others come from the layer result cache):
/// the outputs come back in layer order. A worker that finds no layer left to start hands the
/// listings finished so far to `idle` (if given) until none is new, and the worker that ends the
/// pass calls [`Idle::stop`].
pub fn read_some<S, F>(
    source: &Source,
    layers: &[&LayerInfo],
    capture: &CapturePolicy,
    make_scanner: F,
    idle: Option<&dyn Idle>,
) -> Result<Vec<LayerOutput<S>>>
where
    S: ContentScanner,
    F: Fn(&LayerInfo) -> S + Sync,
{
    // Largest first, each worker taking the next layer as soon as it is free (greedy
    // longest-processing-time). Rayon's halving of the list would give one worker both of the two largest
    // layers: on the corpus docker-archive (372, 278, 252, 183 MB) that is 650 MB on one core against
    // 555 MB this way.
    let mut order: Vec<&LayerInfo> = layers.to_vec();
    order.sort_by_key(|l| std::cmp::Reverse(l.descriptor.size));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let finished = AtomicUsize::new(0);
    // Finished listings, by queue position, readable by an idle worker while the others run.
    let listings: Vec<OnceLock<LayerListing>> = order.iter().map(|_| OnceLock::new()).collect();
    let offered: Vec<AtomicBool> = order.iter().map(|_| AtomicBool::new(false)).collect();
    let workers = rayon::current_num_threads().clamp(1, order.len().max(1));
    let worker = |_| {
        let mut mine = Vec::new();
        loop {
            let claimed = next.fetch_add(1, Ordering::Relaxed);
            let task = next_task(
                claimed,
                order.len(),
                finished.load(Ordering::Acquire),
                failed.load(Ordering::Relaxed),
            );
            let pos = match task {
                Next::Layer(pos) => pos,
                Next::Idle => {
                    if let Some(idle) = idle {
                        idle_work(idle, &listings, &offered);
                    }
                    break;
                }
                Next::Done => break,
            };
            let l = order[pos];
            let out = read_one(source, l, capture, make_scanner(l));
            failed.fetch_or(out.is_err(), Ordering::Relaxed);
            mine.push((
                pos,
                out.map(|o| {
                    let _ = listings[pos].set(o.listing);
                    o.scan
                }),
            ));
            let all = finished.fetch_add(1, Ordering::AcqRel) + 1 == order.len();
            if let Some(idle) = idle
                && (all || failed.load(Ordering::Relaxed))
            {
                idle.stop();
            }
        }
        mine
    };
    let mut done: Vec<(usize, Result<S>)> = (0..workers)
        .into_par_iter()
        .with_max_len(1)
        .flat_map_iter(worker)
        .collect();
    let mut listings: Vec<Option<LayerListing>> =
        listings.into_iter().map(OnceLock::into_inner).collect();
    // In layer order; of several failures, the first layer's.
    done.sort_by_key(|(pos, _)| order[*pos].index);
    done.into_iter()
        .map(|(pos, scan)| {
            let scan = scan?;
            let listing = listings[pos].take().ok_or_else(|| {
                Error::corrupt(layer_name(order[pos]), "the layer's listing went missing")
            })?;
            Ok(LayerOutput { listing, scan })
        })
        .collect()
}

/// Hand `idle` the finished listings no worker was given yet, until there are none.
fn idle_work(idle: &dyn Idle, listings: &[OnceLock<LayerListing>], offered: &[AtomicBool]) {
    loop {
        let new: Vec<&LayerListing> = listings
            .iter()
            .zip(offered)
            .filter_map(|(l, o)| {
                let l = l.get()?;
                (!o.swap(true, Ordering::AcqRel)).then_some(l)
            })
            .collect();
        if new.is_empty() {
            return;
        }
        idle.work(&new);
    }
}

/// One layer: verified blob → sniff → decode (on its own thread) → hash `diff_id` → tar walk.
pub fn read_one<S: ContentScanner>(
    source: &Source,
    info: &LayerInfo,
    capture: &CapturePolicy,
    mut scanner: S,
) -> Result<LayerOutput<S>> {
    let what = layer_name(info);
    let blob = source.blob(&info.descriptor)?;
    let mut raw = BufReader::with_capacity(CHUNK, blob);
    let head = fill_head(&mut raw).map_err(|e| from_io(e, &what))?;
    let compression = sniff(&head).map_err(|d| Error::corrupt(&what, d))?;
    let mut listing = LayerListing {
        index: info.index,
        compression: Some(compression),
        compressed_size: info.descriptor.size,
        ..LayerListing::default()
    };
    // The bytes decide how the blob is read; a media type that says otherwise is reported.
    if let Some(declared) = super::media::declared_compression(&info.descriptor.media_type)
        && declared != compression
    {
        listing
            .hygiene
            .push(super::HygieneIssue::MediaTypeMismatch {
                media_type: info.descriptor.media_type.clone(),
                detail: format!(
                    "the media type says {} but the blob is {} (read by its magic bytes)",
                    super::media::compression_words(declared),
                    super::media::compression_words(compression)
                ),
            });
    }
    // An uncompressed blob whose descriptor digest is the diff_id (docker save) is hashed once, by the
    // verifying blob reader, which fails at EOF (reached by `drain_zeros`) on a mismatch.
    let hashed_by_blob = compression == Compression::None && info.descriptor.digest == info.diff_id;
    let consume =
        |r: &mut dyn Read, listing: &mut LayerListing, scanner: &mut S| -> io::Result<Digest> {
            let mut hashing = if hashed_by_blob {
                HashingReader::counting(r)
            } else {
                HashingReader::new(r, &info.diff_id)
            };
            let mut padded = PadAtEof::new(&mut hashing);
            let content_end = entries::walk(&mut padded, info, capture, scanner, listing, &what)?;
            padded.check_complete(content_end, &what)?;
            hashing.drain_zeros(&what)?;
            listing.uncompressed_size = hashing.count;
            Ok(hashing.finish().unwrap_or_else(|| info.diff_id.clone()))
        };
    let got = if compression == Compression::None {
        let mut r: &mut dyn Read = &mut raw;
        consume(&mut r, &mut listing, &mut scanner)
    } else {
        pipelined(
            |send| {
                let ok = match decoder(compression, &mut raw) {
                    Ok(mut d) => {
                        pump(&mut d, send);
                        true
                    }
                    Err(e) => !send(Err(e)),
                };
                // the decoder may stop before the blob's end: read the rest so it is verified
                if ok && let Err(e) = io::copy(&mut raw, &mut io::sink()) {
                    send(Err(e));
                }
            },
            |mut ch| consume(&mut ch, &mut listing, &mut scanner),
        )
    }
    .map_err(|e| from_io(e, &what))?;
    if got != info.diff_id {
        return Err(Error::corrupt(
            what,
            format!(
                "diff_id differs: the uncompressed layer hashes to {got}, the config says {}",
                info.diff_id
            ),
        ));
    }
    scanner.finish();
    Ok(LayerOutput {
        listing,
        scan: scanner,
    })
}

/// Up to 512 leading bytes without consuming them.
fn fill_head<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    let b = r.fill_buf()?;
    Ok(b[..b.len().min(512)].to_vec())
}

/// Real producers (umoci 0.4.7 `insert`, seen here) end a layer right after the last file's content: no
/// padding to the 512-byte block and no end-of-archive blocks. The tar crate reports that as an
/// unexpected EOF. This reader passes the real bytes through and, at their end, supplies only what is
/// missing of the padding plus the two zero blocks. Whether the real bytes covered every entry's content
/// is then checked by [`PadAtEof::check_complete`]: a stream cut inside content stays corrupt (exit 3).
///
/// It also serves the tar parser's skips (padding before each header, content a scanner left unread)
/// as forward seeks: read and dropped through one reused buffer, where the parser's own skip zeroes a
/// 32 KiB stack buffer per entry (2 % of the CPU on a 125,000-file image). Every byte is still read,
/// so hashing and verification see the whole stream.
struct PadAtEof<R> {
    inner: R,
    real: u64,
    synthetic_left: Option<u64>,
    /// Bytes handed out so far (real and synthetic): the parser's stream position.
    pos: u64,
    skip_buf: Vec<u8>,
}

impl<R: Read> PadAtEof<R> {
    fn new(inner: R) -> Self {
        PadAtEof {
            inner,
            real: 0,
            synthetic_left: None,
            pos: 0,
            skip_buf: Vec::new(),
        }
    }

    /// After the walk: fail when an entry's content ran past the real bytes (synthetic zeros were taken
    /// for content), so only missing padding and terminator are ever forgiven.
    fn check_complete(&self, content_end: u64, what: &str) -> io::Result<()> {
        if self.synthetic_left.is_some() && content_end > self.real {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{what}: truncated tar: the stream ends after {} bytes, inside entry content that runs to byte {content_end}",
                    self.real
                ),
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for PadAtEof<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(left) = self.synthetic_left.as_mut() {
            let n = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
            buf[..n].fill(0);
            *left -= n as u64;
            self.pos += n as u64;
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let pad = (512 - self.real % 512) % 512;
            self.synthetic_left = Some(pad + 1024);
            return self.read(buf);
        }
        self.real += n as u64;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Forward only, relative only (all the tar parser asks): the skipped bytes are read and dropped.
impl<R: Read> io::Seek for PadAtEof<R> {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let mut left = match to {
            io::SeekFrom::Current(n) if n >= 0 => n.unsigned_abs(),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "a layer stream only skips forward",
                ));
            }
        };
        if left > 0 && self.skip_buf.is_empty() {
            self.skip_buf = vec![0u8; 32 * 1024];
        }
        let mut buf = std::mem::take(&mut self.skip_buf);
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match self.read(&mut buf[..want]) {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "unexpected EOF during skip",
                )),
                Ok(n) => Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
                Err(e) => Err(e),
            };
            match n {
                Ok(n) => left -= n as u64,
                Err(e) => {
                    self.skip_buf = buf;
                    return Err(e);
                }
            }
        }
        self.skip_buf = buf;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    #[test]
    fn idle_work_only_once_every_layer_is_started_and_one_still_runs() {
        // layers left to start: always the next layer, however many are finished
        assert_eq!(next_task(0, 3, 0, false), Next::Layer(0));
        assert_eq!(next_task(2, 3, 2, false), Next::Layer(2));
        assert_eq!(next_task(2, 3, 3, false), Next::Layer(2));
        // none left to start, some still being read: idle work
        assert_eq!(next_task(3, 3, 0, false), Next::Idle);
        assert_eq!(next_task(7, 3, 2, false), Next::Idle);
        // the pass is over, or a layer failed: nothing
        assert_eq!(next_task(3, 3, 3, false), Next::Done);
        assert_eq!(next_task(5, 3, 1, true), Next::Done);
        assert_eq!(next_task(0, 3, 0, true), Next::Done);
        assert_eq!(next_task(0, 0, 0, false), Next::Done);
    }

    #[test]
    fn pad_at_eof_skips_forward_through_real_and_synthetic_bytes() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut p = PadAtEof::new(&data[..]);
        assert_eq!(p.seek(SeekFrom::Current(10)).expect("forward"), 10);
        let mut b = [0u8; 5];
        p.read_exact(&mut b).expect("read");
        assert_eq!(b, data[10..15]);
        // 1000 real bytes, padded to 1024, then two zero blocks: 2048 in all
        assert_eq!(p.seek(SeekFrom::Current(2009)).expect("forward"), 2024);
        let mut rest = Vec::new();
        p.read_to_end(&mut rest).expect("read");
        assert_eq!(rest, vec![0u8; 24]);
        assert_eq!(p.real, 1000);
        assert!(p.seek(SeekFrom::Current(1)).is_err(), "past the end");
        assert!(p.seek(SeekFrom::Current(-1)).is_err(), "backwards");
        assert!(p.seek(SeekFrom::Start(0)).is_err(), "absolute");
    }
}
