#!/usr/bin/env python3
"""Where a binary's bytes go, by crate: a small stand-in for `cargo bloat --crates`.

Reads `nm --print-size --demangle` of an UNSTRIPPED build and sums symbol sizes by the
first path segment of each demangled name (`aws_sdk_dynamodb::...` -> aws_sdk_dynamodb;
`<T as serde::Serialize>::...` -> the crate of T). C symbols (aws-lc, libc) have no path
and are grouped as `[C] <prefix>`. Build one for it with:
    CARGO_PROFILE_RELEASE_STRIP=false cargo build --release -p NAME --target-dir DIR
    bench/size-profile.py DIR/release/NAME
"""
import collections
import re
import subprocess
import sys


def crate_of(name: str) -> str:
    n = name
    # `<impl X for Y>` / `<Y as X>::f`: attribute to Y, the type whose code it is.
    while n.startswith("<"):
        n = n[1:]
        n = n.lstrip("&*").replace("mut ", "", 1).replace("dyn ", "", 1)
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", n)
    if m:
        return m.group(1)
    if n.startswith(("aws_lc_", "AWS_LC", "bn_", "ec_", "EVP_", "BN_", "EC_", "RSA_", "SHA", "x25519", "fiat_", "aes_", "gcm_", "ChaCha", "sha", "p256", "p384")):
        return "[C] aws-lc / crypto"
    return "[C/other] " + (n.split("_")[0][:16] or "?")


def main() -> None:
    path = sys.argv[1]
    out = subprocess.run(["nm", "--print-size", "--size-sort", "--demangle", path],
                         check=True, capture_output=True, text=True).stdout
    sizes: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 4 or parts[2] not in "tTrRdDbB":
            continue
        size = int(parts[1], 16)
        if parts[2] in "bB":
            continue  # .bss takes no file space
        sizes[crate_of(parts[3])] += size
        total += size
    print(f"{'bytes':>10} {'share':>6}  crate (symbols with a size: {total:,} B)")
    for crate, size in sizes.most_common(int(sys.argv[2]) if len(sys.argv) > 2 else 40):
        print(f"{size:>10,} {100 * size / total:5.1f}%  {crate}")


if __name__ == "__main__":
    main()
