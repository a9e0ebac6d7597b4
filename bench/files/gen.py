#!/usr/bin/env python3
"""Writes the benchmark's moodledata: about 20,000 files from 1 KB to 8 MB, about 1 GB.

Most files are small, log-uniform from 1 KB to 128 KB, as uploads are; 1 in 200 is large,
1 to 8 MB. Each filedir file is named by the SHA-1 of its content, as Moodle names them.
Usage: gen.py DIR [FILES] [SEED]
"""
import hashlib
import os
import random
import sys

root = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
total = 0
for i in range(count):
    if i % 200 == 199:
        size = rng.randint(1 << 20, 8 << 20)
    else:
        size = int(1024 * 128 ** rng.random())
    data = rng.randbytes(size)
    sha1 = hashlib.sha1(data).hexdigest()
    d = os.path.join(root, "filedir", sha1[:2], sha1[2:4])
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, sha1), "wb") as f:
        f.write(data)
    total += size
for rel, text in [
    ("lang/ca/langconfig.php", "<?php $string['thislanguage'] = 'Català';\n"),
    ("repository/Fitxers de l'escola/Programació didàctica.txt", "Curs 2026–2027\n"),
]:
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        f.write(text)
print(f"{count} filedir files, {total / 1e9:.2f} GB in {root}")
