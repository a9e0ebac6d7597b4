#!/usr/bin/env bash
# bench intake: a 10,000-row school-directory export (Windows-1252, ';', 21 columns) read,
# validated, planned and registered into SQLite, with both reports written, in a release
# build; against Python's csv module + sqlite3 doing the same parse-and-insert.
# Best of 3 runs each, every run on a fresh store. ROWS overrides the row count.
# Set A2A_BIN to a release `a2a` binary to time `a2a upload` end to end as well.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${ROWS:-10000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 bench/intake_gen.py "$work/directory.csv" "$rows"
cargo build --release --quiet -p a2a-intake --example intake_bench
bench=target/release/examples/intake_bench

best() { sort -n | head -1; }

a2a=$(for i in 1 2 3; do "$bench" "$work/directory.csv" "$work/a2a-$i" 2>/dev/null; done | best)
peer=$(for i in 1 2 3; do python3 bench/intake_peer.py "$work/directory.csv" "$work/peer-$i.db" 2>/dev/null; done | best)

"$bench" "$work/directory.csv" "$work/a2a-check" 2>&1 >/dev/null | sed 's/^/info: /'
echo "info: rows: $rows; python $(python3 -c 'import sqlite3,sys;print(sys.version.split()[0], "sqlite", sqlite3.sqlite_version)')"
if [ -n "${A2A_BIN:-}" ]; then
    cli=$(for i in 1 2 3; do
        s=$(date +%s.%N); "$A2A_BIN" --home "$work/cli-$i" upload "$work/directory.csv" >/dev/null; e=$(date +%s.%N)
        echo "$e - $s" | bc -l
    done | best)
    printf 'info: a2a upload (the CLI, end to end): %.3f s\n' "$cli"
fi
printf 'bench intake: a2a %s s, python-csv+sqlite3 %s s, ratio %.2f\n' "$a2a" "$peer" \
    "$(echo "$peer / $a2a" | bc -l)"
