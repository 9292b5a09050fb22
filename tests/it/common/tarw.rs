//! A tiny GNU-format tar writer that writes names exactly as given (so tests can produce `../x`, `/abs`,
//! whiteouts and other hostile entries the `tar` crate's builder refuses), and the [`Layer`] builder.

use std::fmt::Write as _;
use std::io::Write;

/// Layer blob compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comp {
    None,
    Gzip,
    /// Two concatenated gzip members (what `pigz`/some producers write).
    GzipMulti,
    Zstd,
}

impl Comp {
    pub fn compress(self, raw: &[u8]) -> Vec<u8> {
        match self {
            Comp::None => raw.to_vec(),
            Comp::Gzip => gz(raw),
            Comp::GzipMulti => {
                let mid = raw.len() / 2;
                let mut v = gz(&raw[..mid]);
                v.extend(gz(&raw[mid..]));
                v
            }
            Comp::Zstd => zstd::encode_all(raw, 3).unwrap(),
        }
    }
}

fn gz(raw: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(raw).unwrap();
    e.finish().unwrap()
}

/// One entry of a test layer. Names are raw tar names.
#[derive(Debug, Clone)]
pub enum Spec {
    File {
        name: String,
        content: Vec<u8>,
        mode: u32,
        uid: u64,
        gid: u64,
        pax: bool,
    },
    Dir {
        name: String,
        mode: u32,
    },
    /// A directory with an owner (e.g. a home directory owned by uid 1000).
    DirOwned {
        name: String,
        mode: u32,
        uid: u64,
        gid: u64,
    },
    Symlink {
        name: String,
        target: String,
    },
    Hardlink {
        name: String,
        target: String,
    },
    Fifo {
        name: String,
    },
    Char {
        name: String,
        major: u32,
        minor: u32,
    },
    /// Bytes appended verbatim to the tar stream (hand-made headers for hostile cases).
    RawBytes(Vec<u8>),
}

/// A layer built from entries, in the order given.
#[derive(Debug, Clone)]
pub struct Layer {
    pub entries: Vec<Spec>,
    pub comp: Comp,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Self {
        Layer {
            entries: Vec::new(),
            comp: Comp::Gzip,
        }
    }
    #[must_use]
    pub fn compression(mut self, c: Comp) -> Self {
        self.comp = c;
        self
    }
    /// A regular file, mode 0644, root-owned.
    #[must_use]
    pub fn file(self, name: &str, content: &[u8]) -> Self {
        self.file_full(name, content, 0o644, 0, 0)
    }
    #[must_use]
    pub fn file_mode(self, name: &str, content: &[u8], mode: u32) -> Self {
        self.file_full(name, content, mode, 0, 0)
    }
    #[must_use]
    pub fn file_full(mut self, name: &str, content: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        self.entries.push(Spec::File {
            name: name.into(),
            content: content.to_vec(),
            mode,
            uid,
            gid,
            pax: false,
        });
        self
    }
    /// A regular file whose name is carried in a PAX `path` record.
    #[must_use]
    pub fn file_pax(mut self, name: &str, content: &[u8]) -> Self {
        self.entries.push(Spec::File {
            name: name.into(),
            content: content.to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            pax: true,
        });
        self
    }
    /// A setuid-root executable (mode 04755).
    #[must_use]
    pub fn setuid(self, name: &str, content: &[u8]) -> Self {
        self.file_full(name, content, 0o4755, 0, 0)
    }
    #[must_use]
    pub fn dir(self, name: &str) -> Self {
        self.dir_mode(name, 0o755)
    }
    #[must_use]
    pub fn dir_mode(mut self, name: &str, mode: u32) -> Self {
        let name = if name.ends_with('/') {
            name.to_string()
        } else {
            format!("{name}/")
        };
        self.entries.push(Spec::Dir { name, mode });
        self
    }
    #[must_use]
    pub fn dir_owned(mut self, name: &str, mode: u32, uid: u64, gid: u64) -> Self {
        let name = if name.ends_with('/') {
            name.to_string()
        } else {
            format!("{name}/")
        };
        self.entries.push(Spec::DirOwned {
            name,
            mode,
            uid,
            gid,
        });
        self
    }
    #[must_use]
    pub fn symlink(mut self, name: &str, target: &str) -> Self {
        self.entries.push(Spec::Symlink {
            name: name.into(),
            target: target.into(),
        });
        self
    }
    #[must_use]
    pub fn hardlink(mut self, name: &str, target: &str) -> Self {
        self.entries.push(Spec::Hardlink {
            name: name.into(),
            target: target.into(),
        });
        self
    }
    #[must_use]
    pub fn fifo(mut self, name: &str) -> Self {
        self.entries.push(Spec::Fifo { name: name.into() });
        self
    }
    #[must_use]
    pub fn char_dev(mut self, name: &str, major: u32, minor: u32) -> Self {
        self.entries.push(Spec::Char {
            name: name.into(),
            major,
            minor,
        });
        self
    }
    /// Bytes appended verbatim to the layer's tar stream (see [`TarWriter::into_bytes`]).
    #[must_use]
    pub fn raw_bytes(mut self, bytes: Vec<u8>) -> Self {
        self.entries.push(Spec::RawBytes(bytes));
        self
    }
    /// A regular file with a raw tar name, written as-is (`../x`, `/abs`, `a/./b` …).
    #[must_use]
    pub fn raw(self, raw_name: &str, content: &[u8]) -> Self {
        self.file(raw_name, content)
    }
    /// `.wh.<base>` in the parent of `path`.
    #[must_use]
    pub fn whiteout(self, path: &str) -> Self {
        let (parent, base) = match path.rsplit_once('/') {
            Some((p, b)) => (format!("{p}/"), b),
            None => (String::new(), path),
        };
        self.file(&format!("{parent}.wh.{base}"), b"")
    }
    /// `<dir>/.wh..wh..opq` (`""` for the root).
    #[must_use]
    pub fn opaque(self, dir: &str) -> Self {
        if dir.is_empty() {
            self.file(".wh..wh..opq", b"")
        } else {
            self.file(&format!("{}/.wh..wh..opq", dir.trim_end_matches('/')), b"")
        }
    }

    /// The uncompressed tar bytes.
    pub fn tar_bytes(&self) -> Vec<u8> {
        let mut t = TarWriter::new();
        for e in &self.entries {
            match e {
                Spec::File {
                    name,
                    content,
                    mode,
                    uid,
                    gid,
                    pax,
                } => {
                    let h = Hdr {
                        name,
                        kind: b'0',
                        mode: *mode,
                        uid: *uid,
                        gid: *gid,
                        size: content.len() as u64,
                        link: "",
                        dev: (0, 0),
                    };
                    if *pax {
                        t.pax_path(name);
                    }
                    t.entry(&h, content);
                }
                Spec::Dir { name, mode } => t.entry(&Hdr::simple(name, b'5', *mode, ""), b""),
                Spec::DirOwned {
                    name,
                    mode,
                    uid,
                    gid,
                } => {
                    let mut h = Hdr::simple(name, b'5', *mode, "");
                    h.uid = *uid;
                    h.gid = *gid;
                    t.entry(&h, b"");
                }
                Spec::Symlink { name, target } => {
                    t.entry(&Hdr::simple(name, b'2', 0o777, target), b"");
                }
                Spec::Hardlink { name, target } => {
                    t.entry(&Hdr::simple(name, b'1', 0o644, target), b"");
                }
                Spec::RawBytes(b) => t.buf.extend_from_slice(b),
                Spec::Fifo { name } => t.entry(&Hdr::simple(name, b'6', 0o644, ""), b""),
                Spec::Char { name, major, minor } => {
                    let mut h = Hdr::simple(name, b'3', 0o644, "");
                    h.dev = (*major, *minor);
                    t.entry(&h, b"");
                }
            }
        }
        t.finish()
    }
}

/// Header fields for [`TarWriter::entry`].
#[derive(Debug, Clone)]
pub struct Hdr<'a> {
    pub name: &'a str,
    pub kind: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub link: &'a str,
    pub dev: (u32, u32),
}

impl<'a> Hdr<'a> {
    pub fn simple(name: &'a str, kind: u8, mode: u32, link: &'a str) -> Self {
        Hdr {
            name,
            kind,
            mode,
            uid: 0,
            gid: 0,
            size: 0,
            link,
            dev: (0, 0),
        }
    }
}

/// Writes GNU tar headers byte by byte.
#[derive(Debug, Default)]
pub struct TarWriter {
    buf: Vec<u8>,
}

fn octal(field: &mut [u8], v: u64) {
    let n = field.len() - 1;
    let s = format!("{v:0n$o}");
    field[..n].copy_from_slice(s.as_bytes());
    field[n] = 0;
}

impl TarWriter {
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&mut self, h: &Hdr<'_>, name: &[u8], link: &[u8]) {
        let mut b = [0u8; 512];
        b[..name.len()].copy_from_slice(name);
        octal(&mut b[100..108], u64::from(h.mode));
        octal(&mut b[108..116], h.uid);
        octal(&mut b[116..124], h.gid);
        octal(&mut b[124..136], h.size);
        octal(&mut b[136..148], 0);
        b[156] = h.kind;
        b[157..157 + link.len()].copy_from_slice(link);
        b[257..265].copy_from_slice(b"ustar  \0");
        b[265..269].copy_from_slice(b"root");
        b[297..301].copy_from_slice(b"root");
        octal(&mut b[329..337], u64::from(h.dev.0));
        octal(&mut b[337..345], u64::from(h.dev.1));
        b[148..156].copy_from_slice(b"        ");
        let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
        let s = format!("{sum:06o}\0 ");
        b[148..156].copy_from_slice(s.as_bytes());
        self.buf.extend_from_slice(&b);
    }

    fn data(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
    }

    /// A GNU `L`/`K` long-name record.
    fn long(&mut self, kind: u8, value: &str) {
        let mut v = value.as_bytes().to_vec();
        v.push(0);
        let h = Hdr {
            name: "././@LongLink",
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: v.len() as u64,
            link: "",
            dev: (0, 0),
        };
        self.header(&h, b"././@LongLink", b"");
        self.data(&v);
    }

    /// A PAX extended header carrying `path` for the next entry.
    pub fn pax_path(&mut self, path: &str) {
        self.pax(&[("path", path)]);
    }

    /// A PAX extended header with the given records for the next entry.
    pub fn pax(&mut self, records: &[(&str, &str)]) {
        let mut rec = String::new();
        for (k, v) in records {
            let body = format!(" {k}={v}\n");
            let mut len = body.len() + 1;
            while format!("{len}{body}").len() != len {
                len += 1;
            }
            let _ = write!(rec, "{len}{body}");
        }
        let h = Hdr {
            name: "PaxHeaders/x",
            kind: b'x',
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: rec.len() as u64,
            link: "",
            dev: (0, 0),
        };
        self.header(&h, b"PaxHeaders/x", b"");
        self.data(rec.as_bytes());
    }

    /// One entry; names and link targets longer than 100 bytes get GNU long-name records.
    pub fn entry(&mut self, h: &Hdr<'_>, data: &[u8]) {
        let name = h.name.as_bytes();
        let link = h.link.as_bytes();
        if link.len() > 100 {
            self.long(b'K', h.link);
        }
        if name.len() > 100 {
            self.long(b'L', h.name);
        }
        let n = &name[..name.len().min(100)];
        let l = &link[..link.len().min(100)];
        self.header(h, n, l);
        self.data(data);
    }

    pub fn file(&mut self, name: &str, data: &[u8]) {
        let mut h = Hdr::simple(name, b'0', 0o644, "");
        h.size = data.len() as u64;
        self.entry(&h, data);
    }
    pub fn dir(&mut self, name: &str) {
        self.entry(&Hdr::simple(name, b'5', 0o755, ""), b"");
    }
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(&Hdr::simple(name, b'2', 0o777, target), b"");
    }

    /// The bytes written so far, without the end-of-archive blocks.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Two zero blocks end the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend(std::iter::repeat_n(0u8, 1024));
        self.buf
    }
}
