//! The verifying reader: hashes bytes as they pass and fails at EOF when digest or size differ. Also
//! digest parsing and the bridge that carries a corrupt-input error through `std::io::Error`.

use std::fmt;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256, Sha512};

use super::digest::{Algorithm, Digest};
use crate::error::Error;

/// A corrupt-input error travelling inside an `io::Error` (decoders and the tar parser only speak io).
#[derive(Debug)]
pub struct CorruptIo {
    pub what: String,
    pub detail: String,
}

impl fmt::Display for CorruptIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.detail)
    }
}

impl std::error::Error for CorruptIo {}

/// Wrap a corrupt-input error in an `io::Error`.
pub fn corrupt_io(what: impl Into<String>, detail: impl Into<String>) -> io::Error {
    io::Error::other(CorruptIo {
        what: what.into(),
        detail: detail.into(),
    })
}

/// Turn an `io::Error` met while reading `what` into `Error::Corrupt`, keeping an inner [`CorruptIo`]'s
/// own blob name and detail when there is one.
pub fn from_io(e: io::Error, what: &str) -> Error {
    if e.get_ref()
        .is_some_and(<dyn std::error::Error + Send + Sync>::is::<CorruptIo>)
    {
        let inner = e
            .into_inner()
            .expect("checked above")
            .downcast::<CorruptIo>()
            .expect("checked above");
        return Error::corrupt(inner.what, inner.detail);
    }
    let detail = match e.kind() {
        io::ErrorKind::UnexpectedEof => format!("truncated stream ({e})"),
        _ => e.to_string(),
    };
    Error::corrupt(what, detail)
}

/// A running hash of the digest's algorithm.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    /// A hasher for `d`'s algorithm (sha256 for anything `Digest::parse` did not vet).
    pub fn for_digest(d: &Digest) -> Hasher {
        if d.algorithm() == Algorithm::Sha512 {
            Hasher::Sha512(Sha512::new())
        } else {
            Hasher::Sha256(Sha256::new())
        }
    }
    pub fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }
    /// Finish into a [`Digest`].
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::from_hash(Algorithm::Sha256, &h.finalize()),
            Hasher::Sha512(h) => Digest::from_hash(Algorithm::Sha512, &h.finalize()),
        }
    }
}

/// Yields exactly `size` bytes of `inner`, hashing them; at the end compares with `expected` and
/// returns a [`CorruptIo`] error on a digest mismatch or a short stream.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    size: u64,
    seen: u64,
    what: String,
}

impl<R: Read> VerifyingReader<R> {
    /// `what` names the blob in error messages.
    pub fn new(inner: R, expected: Digest, size: u64, what: String) -> Self {
        VerifyingReader {
            inner,
            hasher: Some(Hasher::for_digest(&expected)),
            expected,
            size,
            seen: 0,
            what,
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Some(h) = self.hasher.take() {
            let got = h.finish();
            if got != self.expected {
                return Err(corrupt_io(
                    &self.what,
                    format!(
                        "content digest is {got}, but the descriptor says {}",
                        self.expected
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.size - self.seen;
        if left == 0 {
            self.finish()?;
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(corrupt_io(
                &self.what,
                format!(
                    "truncated: the descriptor says {} bytes, the blob ended after {}",
                    self.size, self.seen
                ),
            ));
        }
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.seen += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &mut impl Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    #[test]
    fn passes_matching_blob() {
        let d = Digest::sha256_of(b"hello");
        let mut r = VerifyingReader::new(&b"hello"[..], d, 5, "blob".into());
        assert_eq!(read_all(&mut r).expect("verified"), b"hello");
    }

    #[test]
    fn fails_on_digest_mismatch_naming_blob() {
        let d = Digest::sha256_of(b"hellO");
        let mut r = VerifyingReader::new(&b"hello"[..], d, 5, "layer 3".into());
        let e = from_io(read_all(&mut r).expect_err("mismatch"), "x");
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("layer 3"), "{e}");
        assert!(e.to_string().contains("digest"), "{e}");
    }

    #[test]
    fn fails_on_short_stream() {
        let d = Digest::sha256_of(b"hello");
        let mut r = VerifyingReader::new(&b"hel"[..], d, 5, "b".into());
        let e = from_io(read_all(&mut r).expect_err("short"), "x");
        assert!(e.to_string().contains("truncated"), "{e}");
    }
}
