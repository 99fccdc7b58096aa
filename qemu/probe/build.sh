#!/bin/sh
# Rebuilds the KVM probe firmware and prints the bytes to paste into src/accel.rs
# (PROBE_CODE: the 0xF000.. code block; the reset vector at 0xFFF0 is `e9 0d f0`, a near jump to 0xF000).
set -eu
here=$(dirname "$0")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
as --64 -o "$tmp/probe.o" "$here/kvm-probe.S"
ld -Ttext=0 --oformat=binary -e 0 -o "$tmp/probe.bin" "$tmp/probe.o"
# Code and GDT end at gdt_desc + 6; see the listing of the .S.
end=$(nm "$tmp/probe.o" | awk '$3 == "gdt_desc" { print $1 }')
python3 - "$tmp/probe.bin" "$end" <<'PY'
import sys
b = open(sys.argv[1], 'rb').read()
end = int(sys.argv[2], 16) + 6
code = b[0xF000:end]
assert b[0xFFF0:0xFFF3] == bytes([0xe9, 0x0d, 0xf0]), b[0xFFF0:0xFFF3].hex()
for i in range(0, len(code), 16):
    print('    ' + ' '.join('0x%02x,' % x for x in code[i:i + 16]))
PY
