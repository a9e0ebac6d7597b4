#!/usr/bin/env bash
# bench dbmove: a Moodle-like site of about SCALE MB (default 1000, about 1 GB) generated on
# PostgreSQL and on MariaDB, then copied to a new database of the same engine
#   - by A2A (export to staged zstd chunks, import with COPY / multi-row INSERT, jobs = 2),
#   - by pg_dump -Fd -j2 + pg_restore -j2, and by mariadb-dump | mariadb,
# timed in the same run; A2A's peak RSS is printed. Then 100 EIX sites are provisioned
# from a scale-1 template on PostgreSQL (CREATE DATABASE … TEMPLATE + customise).
#
# A2A runs as bench/dbmove_bench.rs: the library calls of `a2a db copy`, in a release build
# of a2a-dbmove alone (the CLI's release build also compiles the AWS SDK).
# `a2a db verify` of each copy is timed too, against the copy's time.
# Then the migrate workflow's database steps (bench/dbmove_bench.rs `workflow`: export parts
# and, at once, the import parts that follow them, their 480 s budgets, into a folder stage;
# then the seal) are timed against that copy
# on the same source, and verified equal: `bench dbmove-workflow-pg` and `-mariadb`.
# Env: WORKFLOW_ONLY=1 (only that comparison: no peers, no verify timing, no clones),
# SCALE, SHAPE (small; moodle: about 500 tables with a real site's long tail, see
# `a2a fixture site --shape`), CLONES (100; 0 skips them), NAME (a2a_bench: the prefix of
# the databases made and dropped), PG_SRC and MY_SRC (an existing source database of that
# name, generated before with the same SCALE and SHAPE, instead of generating one; it is
# kept), PG_ADMIN (postgres://postgres@127.0.0.1:5432/postgres),
# MY_ADMIN (mysql://root@127.0.0.1:3306/test), MY_HOST, MY_PORT, MY_USER for the peer.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${SCALE:-1000}
shape=${SHAPE:-small}
clones=${CLONES:-100}
name=${NAME:-a2a_bench}
workflow_only=${WORKFLOW_ONLY:-}
pg_admin=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
my_admin=${MY_ADMIN:-mysql://root@127.0.0.1:3306/test}
my_args=(-h "${MY_HOST:-127.0.0.1}" -P "${MY_PORT:-3306}" -u "${MY_USER:-root}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet -p a2a-dbmove --example dbmove_bench
bench=${CARGO_TARGET_DIR:-target}/release/examples/dbmove_bench

now() { date +%s.%N; }
# Every timed step starts from the same state: what the step before wrote is on disk (the
# kernel's dirty pages, PostgreSQL's dirty buffers), not written back during the next one.
settle() { sync; psql -qc CHECKPOINT "$pg_admin" >/dev/null; sync; }
since() { echo "$(now) - $1" | bc -l; }
pg_url() { "$bench" create "$pg_admin" "$1"; }
my_url() { "$bench" create "$my_admin" "$1"; }
cleanup() {
    for n in "${name}_src" "${name}_dst" "${name}_peer" "${name}_tpl" "${name}_wf"; do
        "$bench" drop "$pg_admin" "$n" 2>/dev/null || true
        "$bench" drop "$my_admin" "$n" 2>/dev/null || true
    done
}
cleanup
trap 'cleanup; rm -rf "$work"' EXIT

# The source URL: the database named $3 on server $1 (kept), or a new one named $2, generated.
source_db() {
    local admin=$1 make=$2 given=$3
    if [ -n "$given" ]; then
        echo "${admin%/*}/$given"
    else
        local url
        url=$("$bench" create "$admin" "$make")
        "$bench" fixture "$url" "$scale" "$shape" >&2
        echo "$url"
    fi
}
# verify_timed FROM TO NAME [MODE]: MODE verify (the servers' sums first) or verify-rows.
verify_timed() {
    local s
    s=$(now)
    "$bench" "${4:-verify}" "$1" "$2" || { echo "bench $3: the copy does not verify" >&2; exit 1; }
    since "$s"
}

# workflow_vs_copy ENGINE ADMIN SRC COPY_SECS: the workflow's steps from SRC into a new
# database, verified equal, against the copy's time of this run.
workflow_vs_copy() {
    local engine=$1 admin=$2 src=$3 copy_secs=$4 dst out secs rss
    dst=$("$bench" create "$admin" "${name}_wf")
    settle
    out=$("$bench" workflow "$src" "$dst" "$work/stage-wf")
    read -r secs rss <<<"$out"
    "$bench" verify "$src" "$dst" || { echo "bench dbmove-workflow-$engine: the copy does not verify" >&2; exit 1; }
    echo "info: a2a workflow ($engine) verified equal; peak RSS $rss MB; load average $(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'bench dbmove-workflow-%s: a2a workflow %.1f s, a2a db copy %.1f s, ratio %.2f\n' \
        "$engine" "$secs" "$copy_secs" "$(echo "$copy_secs / $secs" | bc -l)"
    "$bench" drop "$admin" "${name}_wf"
    rm -rf "$work/stage-wf"
}

# --- PostgreSQL ---
s=$(now); src=$(source_db "$pg_admin" "${name}_src" "${PG_SRC:-}")
src_db=${src##*/}
echo "info: pg fixture scale $scale ($shape) ready in $(printf '%.1f' "$(since "$s")") s," \
    "$(psql -Atc "SELECT pg_size_pretty(pg_database_size('$src_db'))" "$pg_admin")"
psql -qc "VACUUM ANALYZE" "$src"
dst=$(pg_url "${name}_dst")
settle
out=$("$bench" copy "$src" "$dst" 2 "$work/stage-pg")
read -r a2a_pg rss_pg <<<"$out"
if [ -z "$workflow_only" ]; then
    verify_pg=$(verify_timed "$src" "$dst" dbmove-pg)
    rows_pg=$(verify_timed "$src" "$dst" dbmove-pg verify-rows)
    echo "info: pg copy verified equal (both ways)"
    settle
    s=$(now)
    pg_dump -Fd -j2 -f "$work/pgdump" "$src"
    dump_pg=$(since "$s")
    peer=$(pg_url "${name}_peer")
    pg_restore -j2 -d "$peer" "$work/pgdump"
    peer_pg=$(since "$s")
    # pg_restore alone is the server loading the data and building its indexes: a floor for
    # any copy into this server on this machine.
    printf 'info: pg_dump %.1f s, pg_restore %.1f s (the load floor)\n' "$dump_pg" \
        "$(echo "$peer_pg - $dump_pg" | bc -l)"
    echo "info: a2a peak RSS (pg copy): $rss_pg MB"
    printf 'info: a2a db verify (pg) %.1f s, %.2f of the copy (--rows: %.1f s, %.2f)\n' \
        "$verify_pg" "$(echo "$verify_pg / $a2a_pg" | bc -l)" \
        "$rows_pg" "$(echo "$rows_pg / $a2a_pg" | bc -l)"
    printf 'bench dbmove-pg: a2a %.1f s, pg_dump+pg_restore %.1f s, ratio %.2f\n' \
        "$a2a_pg" "$peer_pg" "$(echo "$peer_pg / $a2a_pg" | bc -l)"
    "$bench" drop "$pg_admin" "${name}_peer"
fi
"$bench" drop "$pg_admin" "${name}_dst"
workflow_vs_copy pg "$pg_admin" "$src" "$a2a_pg"
[ -n "${PG_SRC:-}" ] || "$bench" drop "$pg_admin" "${name}_src"
rm -rf "$work/stage-pg" "$work/pgdump"

# --- MariaDB ---
s=$(now); src=$(source_db "$my_admin" "${name}_src" "${MY_SRC:-}")
src_db=${src##*/}
echo "info: mariadb fixture scale $scale ($shape) ready in $(printf '%.1f' "$(since "$s")") s"
dst=$(my_url "${name}_dst")
settle
out=$("$bench" copy "$src" "$dst" 2 "$work/stage-my")
read -r a2a_my rss_my <<<"$out"
if [ -z "$workflow_only" ]; then
    verify_my=$(verify_timed "$src" "$dst" dbmove-mariadb)
    rows_my=$(verify_timed "$src" "$dst" dbmove-mariadb verify-rows)
    echo "info: mariadb copy verified equal (both ways)"
    my_url "${name}_peer" >/dev/null
    settle
    s=$(now)
    mariadb-dump "${my_args[@]}" --single-transaction "$src_db" | mariadb "${my_args[@]}" "${name}_peer"
    peer_my=$(since "$s")
    echo "info: a2a peak RSS (mariadb copy): $rss_my MB"
    printf 'info: a2a db verify (mariadb) %.1f s, %.2f of the copy (--rows: %.1f s, %.2f)\n' \
        "$verify_my" "$(echo "$verify_my / $a2a_my" | bc -l)" \
        "$rows_my" "$(echo "$rows_my / $a2a_my" | bc -l)"
    printf 'bench dbmove-mariadb: a2a %.1f s, mariadb-dump|mariadb %.1f s, ratio %.2f\n' \
        "$a2a_my" "$peer_my" "$(echo "$peer_my / $a2a_my" | bc -l)"
    "$bench" drop "$my_admin" "${name}_peer"
fi
"$bench" drop "$my_admin" "${name}_dst"
workflow_vs_copy mariadb "$my_admin" "$src" "$a2a_my"
[ -n "${MY_SRC:-}" ] || "$bench" drop "$my_admin" "${name}_src"
rm -rf "$work/stage-my"

# --- EIX provisioning: clones of a scale-1 template on PostgreSQL ---
[ "$clones" -gt 0 ] && [ -z "$workflow_only" ] || exit 0
tpl=$(pg_url "${name}_tpl")
"$bench" fixture "$tpl" 1
secs=$("$bench" clones "$pg_admin" "$tpl" "$clones")
printf 'bench dbmove-clone-pg: %d sites in %.1f s, %.0f sites/min\n' \
    "$clones" "$secs" "$(echo "$clones * 60 / $secs" | bc -l)"
