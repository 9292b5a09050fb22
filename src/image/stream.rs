//! Byte-stream plumbing for the layer pass: compression sniffing from magic bytes, the decoder stack,
//! the `diff_id`-hashing reader, and an inflate thread that hands large buffers to the tar parser
//! through a bounded channel (so decompression and parsing use both cores).

use std::io::{self, BufRead, Read};
use std::sync::mpsc;

use super::Compression;
use super::blob::{Hasher, corrupt_io};
use super::{Digest, LayerInfo};

/// Size of the buffers handed from the inflate thread to the parser.
pub const CHUNK: usize = 256 * 1024;
/// Buffers in flight between the threads (bounds memory at `DEPTH * CHUNK`).
const DEPTH: usize = 4;

/// A stream the tar parser can skip forward in (see `layer::PadAtEof`).
pub trait ReadSeek: Read + io::Seek {}
impl<T: Read + io::Seek> ReadSeek for T {}

/// Sniff the compression of a layer from its first bytes. `Err` names an unsupported format.
pub fn sniff(head: &[u8]) -> Result<Compression, String> {
    match head {
        [0x1f, 0x8b, ..] => Ok(Compression::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Ok(Compression::Zstd),
        [b'B', b'Z', b'h', ..] => Err("bzip2 compression is not supported".into()),
        [0xfd, b'7', b'z', b'X', b'Z', ..] => Err("xz compression is not supported".into()),
        [b'h', b's', b'q', b's', ..] => {
            Err("this is a squashfs image, not a tar layer (unsupported layer type)".into())
        }
        _ if looks_like_tar(head) || head.iter().all(|&b| b == 0) => Ok(Compression::None),
        _ => Err(
            "unknown compression: the blob starts with neither a gzip, a zstd nor a tar header"
                .into(),
        ),
    }
}

/// A tar header has `ustar` at offset 257, or (old v7) a valid octal checksum.
fn looks_like_tar(head: &[u8]) -> bool {
    if head.len() < 512 {
        return false;
    }
    if &head[257..262] == b"ustar" {
        return true;
    }
    let stored = std::str::from_utf8(&head[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u64::from_str_radix(s, 8).ok());
    let sum: u64 = head[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    stored == Some(sum)
}

/// A decoder over `r` for the sniffed compression.
pub fn decoder<'a, R: BufRead + Send + 'a>(
    c: Compression,
    r: R,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
    })
}

/// Hashes and counts the bytes read through it (the uncompressed layer → `diff_id`).
pub struct HashingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    pub count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, like: &Digest) -> Self {
        HashingReader {
            inner,
            hasher: Some(Hasher::for_digest(like)),
            count: 0,
        }
    }
    /// Count only: for an uncompressed blob whose verified digest already is the `diff_id`.
    pub fn counting(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: None,
            count: 0,
        }
    }
    /// Read to EOF; fails if any byte is non-zero (data after the tar's end-of-archive marker is a
    /// parser differential: another reader could see hidden entries).
    pub fn drain_zeros(&mut self, what: &str) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            if buf[..n].iter().any(|&b| b != 0) {
                return Err(corrupt_io(
                    what,
                    "ambiguous tar: non-zero data follows the end-of-archive marker",
                ));
            }
        }
    }
    /// The digest of everything read so far (`None` for a counting reader).
    pub fn finish(self) -> Option<Digest> {
        self.hasher.map(Hasher::finish)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// Spent buffers, handed back by [`ChannelReader`] to [`pump`] so that a layer's inflate does not
/// allocate and zero a fresh [`CHUNK`] for every 256 KiB (≈ 2 % of the CPU of an OCI layout check).
/// At most [`POOL_MAX`] are kept.
static POOL: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
const POOL_MAX: usize = 4;

fn take_buffer() -> Vec<u8> {
    let mut v = POOL
        .lock()
        .ok()
        .and_then(|mut p| p.pop())
        .unwrap_or_default();
    // a recycled buffer is full length unless it carried a stream's short last chunk
    v.resize(CHUNK, 0);
    v
}

fn give_back(v: Vec<u8>) {
    if v.capacity() == CHUNK
        && let Ok(mut p) = POOL.lock()
        && p.len() < POOL_MAX
    {
        p.push(v);
    }
}

/// The parser side of the inflate thread: reads the buffers the thread sends.
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(v)) => {
                    give_back(std::mem::replace(&mut self.cur, v));
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Run `produce` (which decodes the layer and writes uncompressed bytes into the sender) on a scoped
/// thread, and give the consumer a reader over its output.
pub fn pipelined<T, P, C>(produce: P, consume: C) -> T
where
    P: FnOnce(&mut dyn FnMut(io::Result<Vec<u8>>) -> bool) + Send,
    C: FnOnce(ChannelReader) -> T,
{
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(DEPTH);
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut send = |item: io::Result<Vec<u8>>| tx.send(item).is_ok();
            produce(&mut send);
        });
        consume(ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            done: false,
        })
    })
}

/// Read `r` to EOF in [`CHUNK`] buffers, sending each; stops early when the receiver is gone.
pub fn pump(r: &mut dyn Read, send: &mut dyn FnMut(io::Result<Vec<u8>>) -> bool) {
    loop {
        let mut buf = take_buffer();
        let mut filled = 0;
        while filled < CHUNK {
            match r.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    send(Err(e));
                    return;
                }
            }
        }
        if filled == 0 {
            return;
        }
        buf.truncate(filled);
        if !send(Ok(buf)) || filled < CHUNK {
            return;
        }
    }
}

/// The human name of a layer in messages.
pub fn layer_name(l: &LayerInfo) -> String {
    format!("layer {} ({})", l.index, l.descriptor.digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_magic() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Ok(Compression::Gzip));
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Ok(Compression::Zstd));
        assert!(sniff(b"BZh91AY&SY").is_err());
        assert!(sniff(b"hsqs....").is_err());
        assert!(sniff(b"{\"json\": true}").is_err());
        assert_eq!(sniff(&[0u8; 1024]), Ok(Compression::None));
    }

    #[test]
    fn pipeline_passes_all_bytes_in_order() {
        // twice, with different bytes: the second pass runs on buffers recycled from the first
        for salt in [0usize, 7] {
            let data: Vec<u8> = (0..(CHUNK * 3 + 17))
                .map(|i| ((i + salt) % 251) as u8)
                .collect();
            let got = pipelined(
                |send| pump(&mut &data[..], send),
                |mut r| {
                    let mut v = Vec::new();
                    r.read_to_end(&mut v).map(|_| v)
                },
            )
            .expect("read");
            assert_eq!(got, data);
        }
    }
}
