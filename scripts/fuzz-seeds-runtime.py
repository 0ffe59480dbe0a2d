#!/usr/bin/env python3
"""Seeds for the runtime_memory fuzz target: target memory shaped like a Go
runtime's (see src/goruntime/fuzz.rs for where the globals sit), built from
the layouts and code addresses of the binary the target fuzzes with.

Usage: fuzz-seeds-runtime.py GOPROBE BIN OUTDIR
Writes OUTDIR/seed-N: a memory-profile bucket list (with a cycle in it) and
an allgs slice of goroutines whose saved pcs are real return addresses.
"""
import json, random, struct, subprocess, sys

goprobe, binary, out = sys.argv[1:4]
BASE = 0x100000
FIELDS = ["runtime.bucket.allnext", "runtime.bucket.typ", "runtime.bucket.size", "runtime.bucket.nstk",
          "runtime.memRecord.active", "runtime.memRecord.future",
          "runtime.g.stack.lo", "runtime.g.stack.hi", "runtime.g.sched.sp", "runtime.g.sched.pc",
          "runtime.g.sched.bp", "runtime.g.atomicstatus", "runtime.g.goid", "runtime.g.gopc",
          "runtime.g.startpc", "runtime.g.waitreason"]
args = [goprobe, "offsets", "--json", binary]
for f in FIELDS:
    args += ["--field", f]
res = subprocess.run(args, capture_output=True, text=True)
off = {}
for line in res.stdout.splitlines():
    r = json.loads(line)
    if r.get("offset") is not None:
        off[r["field"]] = (r["offset"], r.get("type_size"))
missing = [f for f in FIELDS if f not in off]
if missing:
    sys.exit(f"fuzz-seeds: {binary}: offsets unknown: {missing}")
fns = [json.loads(l) for l in subprocess.run([goprobe, "inspect", "--functions", "--json", binary],
                                             capture_output=True, text=True, check=True).stdout.splitlines()]
pcs = [f["address"] + f["size"] // 2 for f in fns if f["size"] > 8]
header = off["runtime.bucket.allnext"][1]

for n in range(8):
    rnd = random.Random(n)
    mem = bytearray(16384)
    def put(at, v, size=8):
        mem[at - BASE:at - BASE + size] = v.to_bytes(size, "little")
    # Buckets at BASE+0x100 and BASE+0x300; the second links back (a cycle).
    b1, b2 = BASE + 0x100, BASE + 0x300
    put(BASE, b1)
    put(BASE + 8, rnd.randrange(0, 64) << 1)
    for b, nxt in [(b1, b2), (b2, b1 if n % 2 else 0)]:
        put(b + off["runtime.bucket.allnext"][0], nxt)
        put(b + off["runtime.bucket.typ"][0], 1)
        put(b + off["runtime.bucket.size"][0], 64)
        nstk = 1 + rnd.randrange(4)
        put(b + off["runtime.bucket.nstk"][0], nstk)
        for i in range(nstk):
            put(b + header + 8 * i, rnd.choice(pcs) + 1)
        for i in range(16):
            put(b + header + 8 * nstk + 8 * i, rnd.randrange(0, 1000))
    # allgs: two goroutines at BASE+0x800 and BASE+0xC00, stacks at BASE+0x1000..0x3000.
    gs = [BASE + 0x800, BASE + 0xc00]
    put(BASE + 16, BASE + 0x600)
    put(BASE + 24, len(gs))
    put(BASE + 32, len(gs))
    for i, g in enumerate(gs):
        put(BASE + 0x600 + 8 * i, g)
        lo, hi = BASE + 0x1000 + 0x1000 * i, BASE + 0x2000 + 0x1000 * i
        sp = hi - 0x200
        put(g + off["runtime.g.stack.lo"][0], lo)
        put(g + off["runtime.g.stack.hi"][0], hi)
        put(g + off["runtime.g.sched.sp"][0], sp)
        put(g + off["runtime.g.sched.pc"][0], rnd.choice(pcs))
        put(g + off["runtime.g.sched.bp"][0], sp + 0x40)
        put(g + off["runtime.g.atomicstatus"][0], 4, 4)
        put(g + off["runtime.g.goid"][0], 1 + i)
        put(g + off["runtime.g.gopc"][0], rnd.choice(pcs))
        put(g + off["runtime.g.startpc"][0], rnd.choice(pcs))
        # The stack: return addresses and frame pointers.
        for w in range(0, 0x200, 8):
            put(sp + w, rnd.choice(pcs) + 1 if w % 16 == 8 else sp + w + 0x40)
    with open(f"{out}/seed-{n}", "wb") as fh:
        fh.write(mem)
