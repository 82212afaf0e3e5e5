#!/usr/bin/env python3
"""Turns a Go assembly template with NEON instructions into Go assembly.

The Go assembler has no NEON mnemonics, so the project's NEON kernels are WORD-encoded.
A template (NAME_arm.neon beside NAME_arm.s) is Go assembly in which
  - a line whose first word starts with "v" (vadd.i32 q0, q1, q2) is a NEON instruction
    in the GNU assembler's spelling: it becomes WORD $0x... // the spelling;
  - ".macro NAME a, b" ... ".endm" defines a macro; "NAME x, y" uses it, \\a and \\b
    replaced by x and y (macros may use macros).
Everything else passes unchanged. The encodings come from Debian's
binutils-arm-linux-gnueabihf (arm-linux-gnueabihf-as and -objdump).

Usage: scripts/neonwords.py web/jpegenc/fdct_arm.neon > web/jpegenc/fdct_arm.s
"""
import re
import subprocess
import sys
import tempfile

AS, OBJDUMP = "arm-linux-gnueabihf-as", "arm-linux-gnueabihf-objdump"


def expand(lines, macros):
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        words = line.split(None, 1)
        if words and words[0] == ".macro":
            head = words[1].replace(",", " ").split()
            body = []
            i += 1
            while lines[i].strip() != ".endm":
                body.append(lines[i])
                i += 1
            macros[head[0]] = (head[1:], body)
        elif words and words[0] in macros:
            params, body = macros[words[0]]
            args = [a.strip() for a in words[1].split(",")] if len(words) > 1 else []
            if len(args) != len(params):
                sys.exit("neonwords: %s wants %d arguments: %s" % (words[0], len(params), line))
            text = []
            for b in body:
                for p, a in sorted(zip(params, args), key=lambda pa: -len(pa[0])):
                    b = b.replace("\\" + p, a)
                text.append(b)
            out.extend(expand(text, macros))
        else:
            out.append(line)
        i += 1
    return out


def encode(instrs):
    with tempfile.TemporaryDirectory() as d:
        src, obj = d + "/k.s", d + "/k.o"
        with open(src, "w") as f:
            f.write(".syntax unified\n.arm\n.fpu neon\n" + "\n".join(instrs) + "\n")
        subprocess.run([AS, "-mfpu=neon", "-o", obj, src], check=True)
        dump = subprocess.run([OBJDUMP, "-d", obj], check=True, capture_output=True, text=True).stdout
    words = re.findall(r"^\s*[0-9a-f]+:\s+([0-9a-f]{8})\s", dump, re.M)
    if len(words) != len(instrs):
        sys.exit("neonwords: %d instructions, %d encodings" % (len(instrs), len(words)))
    return words


def main():
    lines = expand(open(sys.argv[1]).read().split("\n"), {})
    neon = [i for i, l in enumerate(lines) if re.match(r"\s*v[a-z0-9]+(\.[a-z0-9.]+)?\s", l)]
    words = encode([lines[i].strip() for i in neon])
    for i, w in zip(neon, words):
        indent = re.match(r"\s*", lines[i]).group(0)
        lines[i] = "%sWORD\t$0x%s // %s" % (indent, w, " ".join(lines[i].split()))
    sys.stdout.write("\n".join(lines))


if __name__ == "__main__":
    main()
