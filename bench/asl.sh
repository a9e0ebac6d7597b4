#!/usr/bin/env bash
# bench asl: 700 concurrent executions of the 12-state migration workflow
# (tests/fixtures/asl/migrate-demo.asl.json: Lambda tasks, Parallel, a 10-item Map fan-out,
# Retry, Catch, Wait, Choice) with every task mocked. A2A runs them in-process under the
# virtual clock (release build); the peer is moto's Step Functions executing the same
# definition, its Lambda calls answered from moto's queue of canned responses.
# The Wait is cut to 1 s for both: moto sleeps for real. EXECUTIONS and TABLES override.
# AWS_ENDPOINT_URL points at a running moto; otherwise one is started on a free port
# from MOTO_SERVER (default: the one .ci/run installs under target/ci-tools) and stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${EXECUTIONS:-700}
tables=${TABLES:-10}
def=tests/fixtures/asl/migrate-demo.asl.json
mocks=tests/fixtures/asl/migrate-demo.mock.json
moto_bin=${MOTO_SERVER:-target/ci-tools/venv/bin/moto_server}
python=${MOTO_PYTHON:-$(dirname "$moto_bin")/python}

cargo build --release --quiet -p a2a-asl --example asl_bench
bench=target/release/examples/asl_bench

endpoint=${AWS_ENDPOINT_URL:-}
if [ -z "$endpoint" ]; then
    port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$moto_bin" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
    moto_pid=$!
    endpoint="http://127.0.0.1:$port"
    for _ in $(seq 50); do curl -sf "$endpoint/moto-api/" >/dev/null && break; sleep 0.2; done
fi

best() { sort -n | head -1; }
a2a=$(for i in 1 2 3; do "$bench" "$def" "$mocks" "$n" "$tables" 2>/dev/null; done | best)
"$bench" "$def" "$mocks" "$n" "$tables" 2>&1 >/dev/null | sed 's/^/info: /'
log=$(mktemp)
trap 'rm -f "$log"; [ -n "${moto_pid:-}" ] && kill "$moto_pid" 2>/dev/null || true' EXIT
moto=$("$python" bench/asl_moto.py "$endpoint" "$def" "$n" "$tables" 2>"$log")
sed 's/^/info: /' "$log"
echo "info: both engines wait 1 s in the Settle state: A2A on its virtual clock, moto for real"
transitions=$((n * (tables + 10)))
printf 'info: %s state transitions per execution set; per second: a2a %.0f, moto %.0f\n' "$transitions" \
    "$(echo "$transitions / $a2a" | bc -l)" "$(echo "$transitions / $moto" | bc -l)"
printf 'bench asl: a2a %s s, moto %s s, ratio %.1f\n' "$a2a" "$moto" "$(echo "$moto / $a2a" | bc -l)"
