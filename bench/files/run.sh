#!/usr/bin/env bash
# bench/files: `a2a files sync` against `aws s3 sync` (both to the same local s3s-fs server,
# in the same run) and against `rsync -a` (folder to folder), on a generated moodledata of
# about 20,000 files (1 KB to 8 MB, about 1 GB). Ends in the line
#   bench files: a2a X s, aws s3 sync Y s, ratio Y/X
#
# Needs: python3, rsync, the AWS CLI (`pip install awscli`), and the s3s-fs server
# (`cargo install s3s-fs --version 0.14.1 --features binary`; or set S3S_FS to its path).
# Knobs: FILES (20000), JOBS (a2a's --jobs, 32), PORT (8014), WORK (a scratch folder).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
files=${FILES:-20000}
jobs=${JOBS:-32}
port=${PORT:-8014}
work=${WORK:-$(mktemp -d -t a2a-bench-files.XXXXXX)}
s3s_fs=${S3S_FS:-$(command -v s3s-fs || echo s3s-fs)}
a2a=${A2A:-$repo/target/release/a2a}

for tool in python3 rsync aws curl "$s3s_fs"; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "$tool" ]; then
        echo "bench files: $tool is missing (see the header of $0)" >&2
        exit 3
    fi
done
if [ ! -x "$a2a" ]; then
    cargo build --release --bin a2a --manifest-path "$repo/Cargo.toml"
fi

mkdir -p "$work/s3"
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    [ -z "${KEEP:-}" ] && rm -rf "$work"
}
trap cleanup EXIT

python3 "$here/gen.py" "$work/md" "$files" 1
# Both tools read a warm page cache: read everything once.
find "$work/md" -type f -exec cat {} + >/dev/null

"$s3s_fs" --host 127.0.0.1 --port "$port" --access-key test --secret-key test "$work/s3" \
    >"$work/s3s.log" 2>&1 &
server=$!
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=test \
    AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
for _ in $(seq 100); do
    curl -s -o /dev/null "$AWS_ENDPOINT_URL" && break
    sleep 0.1
done
aws s3 mb s3://a2a-bench >/dev/null
aws s3 mb s3://aws-bench >/dev/null

# Seconds taken by a command, to the millisecond; its output goes to $work/log. What the
# run before left unwritten is flushed first (untimed): a2a's folder store ends with one
# syncfs of the file system, which must not pay for rsync's copy.
timed() {
    local start end
    sync
    start=$(date +%s.%N)
    "$@" >>"$work/log" 2>&1
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l | xargs printf '%.2f'
}
sync_a2a() {
    "$a2a" --home "$work/home" files sync --from "$work/md" --to "$1" --school 08012345 \
        --jobs "$jobs"
}

a2a_first=$(timed sync_a2a s3://a2a-bench/agora)
a2a_second=$(timed sync_a2a s3://a2a-bench/agora)
"$a2a" --home "$work/home" files verify --from "$work/md" --to s3://a2a-bench/agora \
    --school 08012345 >>"$work/log" 2>&1 || {
    echo "bench files: the a2a copy does not verify (see $work/log)" >&2
    KEEP=1
    exit 1
}
aws_first=$(timed aws s3 sync "$work/md" s3://aws-bench/agora --only-show-errors)
aws_second=$(timed aws s3 sync "$work/md" s3://aws-bench/agora --only-show-errors)
rsync_first=$(timed rsync -a "$work/md/" "$work/rsync/")
a2a_dir=$(timed sync_a2a "$work/dir")

ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
count=$(find "$work/md" -type f | wc -l)
size=$(du -sb "$work/md" | cut -f1)
echo "files: $count, $(echo "$size / 1000000" | bc) MB; a2a --jobs $jobs"
echo "bench files (nothing to copy): a2a $a2a_second s, aws s3 sync $aws_second s, ratio $(ratio "$aws_second" "$a2a_second")"
echo "bench files (folder to folder): a2a $a2a_dir s, rsync -a $rsync_first s, ratio $(ratio "$rsync_first" "$a2a_dir")"
echo "bench files: a2a $a2a_first s, aws s3 sync $aws_first s, ratio $(ratio "$aws_first" "$a2a_first")"
