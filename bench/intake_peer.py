#!/usr/bin/env python3
"""The intake benchmark's peer: Python's csv module and sqlite3 doing the same
parse-and-insert as `a2a upload` — decode (UTF-8, else Windows-1252), find the code and
name columns by name, check each code, make the same JSON document per school, and insert
it into a table of the same layout as A2A's, one commit per school as A2A does (or one
transaction with --one-transaction). No slugs, waves or reports: the peer does less.

Usage: intake_peer.py FILE DB [--one-transaction]; prints the seconds taken.
"""
import csv
import io
import json
import re
import sqlite3
import sys
import time
import unicodedata

CODE = re.compile(r"^(08|17|25|43)[0-9]{6}$")


def norm(h):
    h = unicodedata.normalize("NFKD", h)
    return "".join(c for c in h if c.isalnum()).lower()


BATCH = 1000


def main(path, db):
    t0 = time.perf_counter()
    raw = open(path, "rb").read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")
    first = text.split("\n", 1)[0]
    delim = max([",", ";", "\t"], key=first.count)
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    header = [norm(h) for h in next(rows)]
    code_i = header.index("codicentre")
    name_i = header.index("denominaciocompleta")
    epri_i = header.index("epri")
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(
        "CREATE TABLE IF NOT EXISTS instances (code TEXT PRIMARY KEY NOT NULL, status TEXT NOT NULL,"
        " wave INTEGER NOT NULL, sort_key TEXT NOT NULL, version INTEGER NOT NULL,"
        " doc TEXT NOT NULL) WITHOUT ROWID"
    )
    con.execute("CREATE INDEX IF NOT EXISTS instances_status_sort ON instances (status, sort_key)")
    con.execute("CREATE INDEX IF NOT EXISTS instances_sort ON instances (sort_key)")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    accepted = rejected = 0
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            rejected += 1
            continue
        code, name = row[code_i].strip(), " ".join(row[name_i].split())
        if not CODE.match(code) or not name:
            rejected += 1
            continue
        template = "primary" if row[epri_i].strip() else "secondary"
        wave = 1 + accepted // 50
        doc = json.dumps({
            "code": code, "kind": "provision", "name": name, "wave": wave, "priority": 0,
            "status": "registered", "attempt": 0, "version": 0,
            "source": {"db": f"template:{template}", "files": f"template:{template}"},
            "target": {}, "execution": None, "last_error": None,
            "created_at": now, "updated_at": now,
        }, ensure_ascii=False)
        if accepted % BATCH == 0:
            if accepted:
                con.execute("COMMIT")
            con.execute("BEGIN IMMEDIATE")
        con.execute(
            "INSERT INTO instances (code, status, wave, sort_key, version, doc)"
            " VALUES (?, 'registered', ?, ?, 0, ?) ON CONFLICT (code) DO NOTHING",
            (code, wave, f"{wave:06d}#{code}", doc),
        )
        accepted += 1
    if accepted:
        con.execute("COMMIT")
    con.close()
    took = time.perf_counter() - t0
    print(f"{took:.3f}")
    print(f"intake_peer: {accepted} accepted, {rejected} rejected", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
