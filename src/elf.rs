//! Just enough ELF to gate an entrypoint and to refuse running a foreign binary: class, byte order,
//! `e_machine`, and the `PT_INTERP` path, parsed from the captured head bytes of a file (never beyond
//! them). Shared by the `entrypoint` check and the healthcheck sandbox.

/// What the ELF header and program headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub machine: u16,
    /// `PT_INTERP`: `Some(Ok(path))`, `Some(Err(why))` when it lies beyond the captured bytes or is
    /// malformed, `None` for a static binary.
    pub interp: Option<Result<String, String>>,
}

const PT_INTERP: u32 = 3;

/// Whether `head` starts with the ELF magic.
pub fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

/// Parse the header of an ELF file from its first bytes. `Err` when the header itself is malformed or
/// truncated.
pub fn parse(head: &[u8]) -> Result<ElfInfo, String> {
    parse_tracked(head, &std::cell::Cell::new(0))
}

/// How many leading bytes of `head` [`parse`] depends on: `parse(&head[..n]) == parse(head)` for
/// `n = extent(head)` (the header, the program headers up to `PT_INTERP`, and the interpreter path; every
/// read beyond `head` fails the same way on the shorter slice). Lets the walk keep a few hundred bytes
/// of an executable instead of its whole captured head.
pub fn extent(head: &[u8]) -> usize {
    let hi = std::cell::Cell::new(0);
    let _ = parse_tracked(head, &hi);
    // The length checks of the header (52, 64) must see the same answer.
    hi.get().max(head.len().min(64)).min(head.len())
}

fn parse_tracked(head: &[u8], hi: &std::cell::Cell<usize>) -> Result<ElfInfo, String> {
    if !is_elf(head) || head.len() < 52 {
        return Err("truncated ELF header".into());
    }
    let wide = match head[4] {
        1 => false,
        2 => true,
        c => return Err(format!("unknown ELF class {c}")),
    };
    let le = match head[5] {
        1 => true,
        2 => false,
        d => return Err(format!("unknown ELF byte order {d}")),
    };
    let rd = Reader { b: head, le, hi };
    let machine = rd.u16(18).ok_or("truncated ELF header")?;
    let (phoff, phentsize, phnum) = if wide {
        if head.len() < 64 {
            return Err("truncated ELF header".into());
        }
        (rd.u64(32), rd.u16(54), rd.u16(56))
    } else {
        (rd.u32(28).map(u64::from), rd.u16(42), rd.u16(44))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        return Err("truncated ELF header".into());
    };
    let mut interp = None;
    for i in 0..u64::from(phnum) {
        let Some(at) = phoff
            .checked_add(i * u64::from(phentsize))
            .and_then(|a| usize::try_from(a).ok())
        else {
            break;
        };
        let Some(p_type) = rd.u32(at) else {
            interp = Some(Err("program headers lie beyond the captured bytes".into()));
            break;
        };
        if p_type != PT_INTERP {
            continue;
        }
        let (off, size) = if wide {
            (rd.u64(at + 8), rd.u64(at + 32))
        } else {
            (
                rd.u32(at + 4).map(u64::from),
                rd.u32(at + 16).map(u64::from),
            )
        };
        interp = Some(match (off, size) {
            (Some(off), Some(size)) => read_interp(head, off, size, hi),
            _ => Err("PT_INTERP lies beyond the captured bytes".into()),
        });
        break;
    }
    Ok(ElfInfo { machine, interp })
}

fn read_interp(
    head: &[u8],
    off: u64,
    size: u64,
    hi: &std::cell::Cell<usize>,
) -> Result<String, String> {
    let start = usize::try_from(off).map_err(|_| "PT_INTERP offset overflows")?;
    let end = start
        .checked_add(usize::try_from(size).map_err(|_| "PT_INTERP size overflows")?)
        .ok_or("PT_INTERP size overflows")?;
    let bytes = head
        .get(start..end)
        .ok_or("PT_INTERP lies beyond the captured bytes")?;
    hi.set(hi.get().max(end));
    let bytes = bytes.split(|b| *b == 0).next().unwrap_or_default();
    if bytes.is_empty() {
        return Err("empty PT_INTERP".into());
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

struct Reader<'a> {
    b: &'a [u8],
    le: bool,
    /// The end of the furthest successful read.
    hi: &'a std::cell::Cell<usize>,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        let end = at.checked_add(N)?;
        let b = self.b.get(at..end)?.try_into().ok()?;
        self.hi.set(self.hi.get().max(end));
        Some(b)
    }
    fn u16(&self, at: usize) -> Option<u16> {
        let a = self.bytes::<2>(at)?;
        Some(if self.le {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        })
    }
    fn u32(&self, at: usize) -> Option<u32> {
        let a = self.bytes::<4>(at)?;
        Some(if self.le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    }
    fn u64(&self, at: usize) -> Option<u64> {
        let a = self.bytes::<8>(at)?;
        Some(if self.le {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        })
    }
}

/// `e_machine` when `head` is an ELF header (needs only the first 20 bytes).
pub fn machine(head: &[u8]) -> Option<u16> {
    if head.len() < 20 || !is_elf(head) {
        return None;
    }
    let bytes = [head[18], head[19]];
    Some(if head[5] == 2 {
        u16::from_be_bytes(bytes)
    } else {
        u16::from_le_bytes(bytes)
    })
}

/// `e_machine` of the machine this binary was built for.
pub fn host_machine() -> Option<u16> {
    machine_for_arch(match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    })
}

/// The ELF `e_machine` for an OCI architecture name.
pub fn machine_for_arch(arch: &str) -> Option<u16> {
    Some(match arch {
        "amd64" => 62,
        "arm64" => 183,
        "386" => 3,
        "arm" => 40,
        "ppc64le" | "ppc64" => 21,
        "s390x" => 22,
        "riscv64" => 243,
        "mips64" | "mips64le" | "mips" | "mipsle" => 8,
        "loong64" => 258,
        _ => return None,
    })
}

/// A name for an `e_machine` value.
pub fn machine_name(m: u16) -> String {
    match m {
        62 => "x86-64 (amd64)".into(),
        183 => "AArch64 (arm64)".into(),
        3 => "i386".into(),
        40 => "ARM".into(),
        21 => "PowerPC64".into(),
        22 => "s390".into(),
        243 => "RISC-V".into(),
        8 => "MIPS".into(),
        258 => "LoongArch".into(),
        other => format!("e_machine {other}"),
    }
}

/// Build a minimal ELF64 little-endian header with one `PT_INTERP` program header (for tests of the
/// checks that consume heads; not a runnable binary).
pub fn synth_elf64(machine: u16, interp: Option<&str>) -> Vec<u8> {
    let mut b = vec![0u8; 64 + 56];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[6] = 1;
    b[16..18].copy_from_slice(&2u16.to_le_bytes());
    b[18..20].copy_from_slice(&machine.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&u16::from(interp.is_some()).to_le_bytes());
    if let Some(path) = interp {
        let off = b.len() as u64;
        b[64..68].copy_from_slice(&PT_INTERP.to_le_bytes());
        b[72..80].copy_from_slice(&off.to_le_bytes());
        b[96..104].copy_from_slice(&(path.len() as u64 + 1).to_le_bytes());
        b.extend_from_slice(path.as_bytes());
        b.push(0);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_synthetic_headers() {
        let e = parse(&synth_elf64(62, Some("/lib64/ld-linux-x86-64.so.2"))).expect("valid");
        assert_eq!(e.machine, 62);
        assert_eq!(e.interp, Some(Ok("/lib64/ld-linux-x86-64.so.2".into())));
        let s = parse(&synth_elf64(183, None)).expect("valid");
        assert_eq!((s.machine, s.interp), (183, None));
        let mut cut = synth_elf64(62, Some("/lib/ld.so"));
        cut.truncate(70);
        assert!(matches!(
            parse(&cut).expect("header ok").interp,
            Some(Err(_))
        ));
        assert!(parse(b"\x7fELF\x02").is_err());
    }

    #[test]
    fn parses_the_running_test_binary() {
        let bytes = std::fs::read("/proc/self/exe").expect("readable");
        let head = &bytes[..bytes.len().min(8192)];
        let e = parse(head).expect("our own binary is ELF");
        let arch = if cfg!(target_arch = "x86_64") {
            "amd64"
        } else {
            "arm64"
        };
        assert_eq!(Some(e.machine), machine_for_arch(arch));
    }

    #[test]
    fn extent_keeps_what_parse_reads() {
        let bytes = std::fs::read("/proc/self/exe").expect("readable");
        let head = &bytes[..bytes.len().min(8192)];
        let n = extent(head);
        assert_eq!(parse(&head[..n]), parse(head));
        assert!(
            n < 2048,
            "a real ELF needs its header, phdrs and interp only: {n}"
        );
        let synth = synth_elf64(62, Some("/lib/ld.so"));
        assert_eq!(extent(&synth), synth.len());
        // Hostile heads: every prefix length and random program-header fields keep the same answer.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..2000 {
            let mut h = synth_elf64(62, Some("/lib64/ld-linux-x86-64.so.2"));
            h.resize(64 + 56 + 64 + (round % 300), 0);
            for _ in 0..(round % 7) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x as usize) % h.len();
                h[at] = (x >> 32) as u8;
            }
            h[..4].copy_from_slice(b"\x7fELF");
            let cut = &h[..h.len() - (round % 50).min(h.len())];
            let n = extent(cut);
            assert!(n <= cut.len());
            assert_eq!(parse(&cut[..n]), parse(cut), "round {round}");
        }
        assert_eq!(extent(b"\x7fELF\x02"), 5);
    }
}
