#!/usr/bin/python3
"""armcount.py BINARY COUNTS [--minus COUNTS1] [--frames N] [--exclude RE] [--by func|pkg] [--top N] [--mhz 650] [--cpi 1.5]
Attributes the instruction counts that armcount.so wrote to the functions of a Go
armv7 BINARY (go tool nm) and prints the top functions or packages with a Cortex-A9
time estimate (instructions x CPI / clock). An estimate, not a measurement."""
import bisect, subprocess, sys, collections, argparse, re

ap = argparse.ArgumentParser()
ap.add_argument("binary"); ap.add_argument("counts")
ap.add_argument("--by", default="func", choices=["func", "pkg"])
ap.add_argument("--top", type=int, default=25)
ap.add_argument("--mhz", type=float, default=650.0)
ap.add_argument("--cpi", type=float, default=1.5)
ap.add_argument("--frames", type=float, default=1.0, help="divide totals by this")
ap.add_argument("--minus", help="counts of a shorter run to subtract (start-up), per block")
ap.add_argument("--exclude", help="regexp: leave out functions whose name matches (e.g. the simulation)")
ap.add_argument("--total", action="store_true", help="print only the instructions per frame (after --exclude)")
a = ap.parse_args()

syms = []
for line in subprocess.run(["go", "tool", "nm", "-n", "-size", a.binary], capture_output=True, text=True, check=True).stdout.splitlines():
    f = line.split(None, 3)
    if len(f) == 4 and f[2] in ("T", "t"):
        syms.append((int(f[0], 16), int(f[1]), f[3]))
syms.sort()
starts = [s[0] for s in syms]

def pkg(name):
    # package path = everything before the first '.' after the last '/'
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    return name[:dot] if dot > 0 else name

def load(path):
    c = collections.Counter()
    for line in open(path):
        v, n = line.split(); c[int(v, 16)] += int(n)
    return c

counts = load(a.counts)
if a.minus:
    for v, n in load(a.minus).items(): counts[v] -= n
excl = re.compile(a.exclude) if a.exclude else None
tot = collections.Counter(); total = 0; excluded = 0
for v, n in counts.items():
    if n <= 0: continue
    i = bisect.bisect_right(starts, v) - 1
    name = syms[i][2] if i >= 0 and v < syms[i][0] + max(syms[i][1], 1) else "?"
    if excl and excl.search(name):
        excluded += n; continue
    total += n
    tot[pkg(name) if a.by == "pkg" else name] += n

if a.total:
    print("%d" % (total / a.frames)); sys.exit(0)
ms = lambda n: n / a.frames * a.cpi / (a.mhz * 1e3)
print("total %.1f M instructions per frame, ~%.0f ms on a %.0f MHz Cortex-A9 at CPI %.1f%s" % (total / a.frames / 1e6, ms(total), a.mhz, a.cpi, " (%.1f M excluded)" % (excluded / a.frames / 1e6) if excl else ""))
for name, n in tot.most_common(a.top):
    print("%8.2f M %6.1f %%  ~%7.1f ms  %s" % (n / a.frames / 1e6, 100.0 * n / total, ms(n), name))
