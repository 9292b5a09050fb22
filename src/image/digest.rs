//! Content digests (`algorithm:hex`), validated once where they are read: a [`Digest`] that exists names
//! a blob x1-validate can verify, and its text is safe in a path (`blobs/sha256/<hex>`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// The digest algorithms x1-validate verifies (the OCI spec's registered ones it can hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The spelling in a digest (`sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The length of the lowercase hex encoding of a hash.
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A content digest `algorithm:hex`: sha256 or sha512 with lowercase hex of the right length. Ordered
/// as its text is (`sha256:…` before `sha512:…`, then by hex).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// A string that is not a digest x1-validate verifies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: not a valid sha256/sha512 digest")]
pub struct BadDigest(pub String);

impl FromStr for Digest {
    type Err = BadDigest;

    fn from_str(s: &str) -> std::result::Result<Digest, BadDigest> {
        let bad = || BadDigest(s.into());
        let (alg, hex) = s.split_once(':').ok_or_else(bad)?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(bad()),
        };
        if hex.len() != algorithm.hex_len()
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad());
        }
        Ok(Digest {
            algorithm,
            hex: hex.into(),
        })
    }
}

impl Digest {
    /// Parse `algorithm:hex`, a malformed digest being corrupt input (exit 3).
    pub fn parse(s: &str) -> Result<Digest> {
        s.parse().map_err(|_: BadDigest| {
            Error::corrupt(format!("digest {s:?}"), "not a valid sha256/sha512 digest")
        })
    }

    /// The digest of a finished hash of `algorithm`.
    pub fn from_hash(algorithm: Algorithm, hash: &[u8]) -> Digest {
        debug_assert_eq!(hash.len() * 2, algorithm.hex_len(), "a whole hash");
        Digest {
            algorithm,
            hex: hex::encode(hash),
        }
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest::from_hash(Algorithm::Sha256, &Sha256::digest(bytes))
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex encoding of the hash.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits (for human output).
    pub fn short(&self) -> &str {
        &self.hex[..self.hex.len().min(12)]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_string()
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strictly() {
        assert!(
            format!("sha256:{}", "a".repeat(64))
                .parse::<Digest>()
                .is_ok()
        );
        assert!(
            format!("sha512:{}", "0".repeat(128))
                .parse::<Digest>()
                .is_ok()
        );
        for bad in [
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha512:{}", "a".repeat(64)),
            format!("md5:{}", "a".repeat(32)),
            "sha256:../../etc/passwd".to_string(),
            "sha256".to_string(),
            String::new(),
        ] {
            assert_eq!(bad.parse::<Digest>(), Err(BadDigest(bad.clone())), "{bad}");
        }
    }

    #[test]
    fn text_serde_and_order_agree() {
        let d = Digest::sha256_of(b"hello");
        let text = d.to_string();
        assert_eq!(
            text,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(text.parse::<Digest>(), Ok(d.clone()));
        let json = serde_json::to_string(&d).expect("serialises");
        assert_eq!(json, format!("{text:?}"));
        assert_eq!(serde_json::from_str::<Digest>(&json).expect("reads"), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:00\"").is_err());
        let long: Digest = format!("sha512:{}", "0".repeat(128))
            .parse()
            .expect("valid");
        let high: Digest = format!("sha256:{}", "f".repeat(64)).parse().expect("valid");
        assert!(high < long && high.to_string() < long.to_string());
        assert_eq!(d.short(), "2cf24dba5fb0");
        assert_eq!(d.algorithm(), Algorithm::Sha256);
    }
}
