#!/usr/bin/env python3
"""Generate a large synthetic image as a docker-archive (`docker save` layout: manifest.json, a config,
uncompressed `layers/<n>.tar`), for bench/scale.sh.

Scale N gives ≈ N × 1 GiB of layer content in LAYERS layers (default 120) and N × 125,000 files (so ×8 is
≈ 8 GiB and 1,000,000 files). The mix is realistic: source-like text (compressible), ELF-headed
binaries (random bytes, mode 0755), gzip files (real gzip streams of text, opened by the secret scan),
symlinks and directories, in layers of skewed sizes (a few large, many small, like distro + runtime +
app layers). Keys are planted at generation time (real prefixes, random bodies, never stored in the
repo): in a text file of a low layer, inside a gzip member, in the middle of a binary, and at the end of
the largest file of the top layer. Their SHA-256 fingerprints (what x1-validate reports, not the keys)
are written to OUT.keys.json so the bench can check each one is found.

With --new-top OUT2, a second archive is written: the same layers (byte-identical blobs) plus one
new small top layer, as after a rebuild that changed only the application.

usage: gen-image.py --scale N --out PATH [--new-top PATH] [--layers 120] [--seed 1] [--files N]
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import string
import sys
import tarfile

GIB = 1 << 30
FILES_PER_SCALE = 125_000
BLOCK = 512


def pad(n):
    return (BLOCK - n % BLOCK) % BLOCK


class Pools:
    """Content pools sampled by slicing (generation must go at disk speed, not Python speed)."""

    def __init__(self, rng):
        words = ["const", "return", "import", "function", "value", "self", "async", "await", "string",
                 "config", "module", "export", "default", "error", "result", "buffer", "license",
                 "the", "and", "for", "with", "from", "None", "true", "false", "null", "package"]
        lines = []
        for _ in range(60_000):
            n = rng.randint(2, 12)
            lines.append("    " * rng.randint(0, 3) + " ".join(rng.choice(words) for _ in range(n))
                         + (";" if rng.random() < 0.5 else ""))
        self.text = ("\n".join(lines) + "\n").encode()
        self.binary = rng.randbytes(48 << 20)
        self.gz = [gzip.compress(self.text[i:i + (64 << 10)], compresslevel=6)
                   for i in range(0, 16 * (64 << 10), 64 << 10)]
        self.rng = rng

    def take(self, pool, n):
        if n <= len(pool):
            o = self.rng.randrange(0, len(pool) - n + 1)
            return pool[o:o + n]
        reps = n // len(pool) + 1
        return (pool * reps)[:n]


def key(rng, template):
    """Expand `{alnum:N}`-style classes with random characters."""
    classes = {
        "alnum": string.ascii_letters + string.digits,
        "b32": string.ascii_uppercase + "234567",
        "b64u": string.ascii_letters + string.digits + "-_",
        "hex": "0123456789abcdef",
    }
    out, i = [], 0
    while i < len(template):
        if template[i] == "{":
            j = template.index("}", i)
            cls, n = template[i + 1:j].split(":")
            out.append("".join(rng.choice(classes[cls]) for _ in range(int(n))))
            i = j + 1
        else:
            out.append(template[i])
            i += 1
    return "".join(out)


class Tee:
    """Writes to several files at once, hashing the current member."""

    def __init__(self, files):
        self.files = files

    def write(self, b):
        for f in self.files:
            f.write(b)


def header(name, size, kind=tarfile.REGTYPE, mode=0o644, link=""):
    ti = tarfile.TarInfo(name)
    ti.size = size if kind == tarfile.REGTYPE else 0
    ti.type = kind
    ti.mode = mode
    ti.mtime = 1_700_000_000
    ti.uname = ti.gname = "root"
    ti.linkname = link
    return ti.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict")


def plan_layers(rng, scale, nlayers, files=None):
    """(bytes, files) per layer: a few large layers, many small ones."""
    total_bytes, total_files = int(scale * GIB), files or int(scale * FILES_PER_SCALE)
    weights = [rng.paretovariate(1.2) for _ in range(nlayers)]
    s = sum(weights)
    out = []
    for w in weights:
        out.append((max(64 << 10, int(total_bytes * w / s)), max(20, int(total_files * w / s))))
    return out


def layer_members(rng, pools, li, nbytes, nfiles, plant):
    """Yield (header bytes, content bytes or None) for one layer."""
    top = f"opt/l{li:03d}"
    dirs = [f"{top}/d{d:03d}" for d in range(max(1, nfiles // 200))]
    yield header(top + "/", 0, tarfile.DIRTYPE, 0o755), None
    for d in dirs:
        yield header(d + "/", 0, tarfile.DIRTYPE, 0o755), None
    avg = max(1, nbytes // nfiles)
    planted = dict(plant)
    for i in range(nfiles):
        d = dirs[i % len(dirs)]
        r = rng.random()
        size = max(0, int(rng.lognormvariate(0, 1.2) * avg / 2.05))
        if i in planted:
            data = planted[i](pools.take(pools.text, size))
            yield header(f"{d}/planted{i}.txt", len(data)), data
            continue
        if r < 0.04:
            yield header(f"{d}/link{i}", 0, tarfile.SYMTYPE, 0o777, f"f{i - 1}.js"), None
            continue
        if r < 0.62:
            name, mode = f"{d}/f{i}.js", 0o644
            data = pools.take(pools.text, size)
        elif r < 0.87:
            name, mode = f"{d}/bin{i}", 0o755
            data = b"\x7fELF\x02\x01\x01" + pools.take(pools.binary, max(0, size - 7))
        else:
            name, mode = f"{d}/pkg{i}.gz", 0o644
            data = pools.rng.choice(pools.gz)
        yield header(name, len(data), tarfile.REGTYPE, mode), data


def write_layer(out, members):
    """Write one layer tar to `out` (a Tee), return (size, sha256 hex)."""
    h = hashlib.sha256()
    n = 0
    for hdr, data in members:
        chunks = [hdr] if data is None else [hdr, data, b"\0" * pad(len(data))]
        for c in chunks:
            h.update(c)
            out.write(c)
            n += len(c)
    end = b"\0" * (2 * BLOCK)
    h.update(end)
    out.write(end)
    return n + len(end), h.hexdigest()


def layer_bytes(rng, pools, li, nbytes, nfiles, plant):
    """The whole layer as bytes is too large: members are generated twice from one seed (size pass,
    then write pass), so the outer tar header can carry the size before the content."""
    state = rng.getstate()
    prng_state = pools.rng.getstate()
    size = 0
    for hdr, data in layer_members(rng, pools, li, nbytes, nfiles, plant):
        size += len(hdr) + (0 if data is None else len(data) + pad(len(data)))
    size += 2 * BLOCK
    rng.setstate(state)
    pools.rng.setstate(prng_state)
    return size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--new-top")
    ap.add_argument("--layers", type=int, default=120)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--files", type=int, help="total files (default: scale × 125,000)")
    a = ap.parse_args()

    rng = random.Random(a.seed)
    pools = Pools(random.Random(a.seed + 1))
    plan = plan_layers(rng, a.scale, a.layers, a.files)
    krng = random.SystemRandom()
    keys = {
        "github-pat": key(krng, "ghp_{alnum:36}"),
        "aws-access-key-id": "AKIA" + key(krng, "{b32:16}"),
        "anthropic-api-key": key(krng, "sk-ant-api03-{b64u:93}AA"),
        "openai-api-key": key(krng, "sk-proj-{b64u:74}T3BlbkFJ{b64u:74}"),
    }
    low, top = 1, a.layers - 1
    big = max(range(a.layers), key=lambda i: plan[i][0])
    plants = {li: {} for li in range(a.layers)}
    plants[low][3] = lambda d: d[:len(d) // 2] + f"\nconst token = \"{keys['github-pat']}\";\n".encode() + d[len(d) // 2:]
    plants[big][5] = lambda d: gzip.compress(
        pools.text[:200_000] + f"\naws_access_key_id = {keys['aws-access-key-id']}\n".encode(), 1, mtime=0)
    plants[big if big != low else 2][7] = lambda d: d + b"\0\0" + keys["anthropic-api-key"].encode() + b"\0" + d[:1000]
    plants[top][plan[top][1] - 1] = lambda d: d + f"\nOPENAI_API_KEY={keys['openai-api-key']}\n".encode()

    outs = [open(a.out, "wb")]
    if a.new_top:
        outs.append(open(a.new_top, "wb"))
    tee = Tee(outs)
    diff_ids, names = [], []
    for li, (nbytes, nfiles) in enumerate(plan):
        name = f"layers/{li:03d}.tar"
        size = layer_bytes(rng, pools, li, nbytes, nfiles, plants[li])
        hdr = header(name, size)
        tee.write(hdr)
        got, digest = write_layer(tee, layer_members(rng, pools, li, nbytes, nfiles, plants[li]))
        assert got == size, (got, size)
        tee.write(b"\0" * pad(size))
        diff_ids.append("sha256:" + digest)
        names.append(name)
        print(f"layer {li}: {size >> 20} MiB, {nfiles} files", file=sys.stderr)

    def finish(f, diff_ids, names, tag):
        cfg = {
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "User": "1000",
                       "Entrypoint": ["/x1/bin/entrypoint"],
                       "Labels": {"org.x1agent.runtime": "opencode"}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"COPY layer {i} /"} for i in range(len(diff_ids))],
        }
        cb = json.dumps(cfg).encode()
        cname = hashlib.sha256(cb).hexdigest() + ".json"
        man = json.dumps([{"Config": cname, "RepoTags": [tag], "Layers": names}]).encode()
        for n, b in [(cname, cb), ("manifest.json", man)]:
            f.write(header(n, len(b)))
            f.write(b + b"\0" * pad(len(b)))
        f.write(b"\0" * (2 * BLOCK))

    finish(outs[0], diff_ids, names, "x1bench/scale:base")
    if a.new_top:
        f = outs[1]
        li = a.layers
        buf = io.BytesIO()
        members = [
            (header("srv/", 0, tarfile.DIRTYPE, 0o755), None),
            (header("srv/app/", 0, tarfile.DIRTYPE, 0o755), None),
        ] + [(header(f"srv/app/m{i}.js", len(d)), d)
             for i, d in enumerate(pools.take(pools.text, 4000 + 37 * i) for i in range(200))]
        size, digest = write_layer(buf, members)
        name = f"layers/{li:03d}.tar"
        f.write(header(name, size))
        f.write(buf.getvalue() + b"\0" * pad(size))
        finish(f, diff_ids + ["sha256:" + digest], names + [name], "x1bench/scale:newtop")
    for f in outs:
        f.close()
    fps = {k: "sha256:" + hashlib.sha256(v.encode()).hexdigest() for k, v in keys.items()}
    with open(a.out + ".keys.json", "w") as kf:
        json.dump(fps, kf, indent=1)
    total = sum(p[0] for p in plan)
    print(f"{a.out}: {len(plan)} layers, ~{total >> 20} MiB, {sum(p[1] for p in plan)} files",
          file=sys.stderr)


if __name__ == "__main__":
    main()
