#!/usr/bin/env bash
# bench crash: `a2a run` of EIX provisions and migrations (sources on PostgreSQL and on
# MariaDB, targets on PostgreSQL) on the virtual clock, killed with SIGKILL at KILLS seeded
# random moments and started again each time, against the same list run once without a
# kill (the peer). Both end with every school active in its first attempt and verified
# again, and no finished step run twice (tests/crash.rs, at a larger size than CI's).
# EIX, MIGRATIONS, KILLS and SEED override; A2A_TEST_PG_URL and A2A_TEST_MYSQL_URL name
# the servers (as .ci/run exports them).
set -euo pipefail
cd "$(dirname "$0")/.."
eix=${EIX:-150}
migrations=${MIGRATIONS:-10}
kills=${KILLS:-20}
seed=${SEED:-$(date +%s%N)}
: "${A2A_TEST_PG_URL:?export A2A_TEST_PG_URL (a PostgreSQL admin URL)}"
: "${A2A_TEST_MYSQL_URL:?export A2A_TEST_MYSQL_URL (a MariaDB admin URL)}"

cargo test --quiet --test crash --no-run
run() {
    A2A_CRASH_EIX=$eix A2A_CRASH_MIGRATIONS=$migrations A2A_CRASH_KILLS=$1 A2A_CRASH_SEED=$seed \
        A2A_CRASH_MAX_MS=${2:-800} \
        cargo test --quiet --test crash -- --nocapture 2>&1 |
        tee -a /dev/stderr | sed -n 's/^crash run: .*, \([0-9.]*\) s$/\1/p'
}
echo "info: seed $seed; $eix EIX and $migrations migrations"
calm=$(run 0)
[ -n "$calm" ] || { echo "bench crash: the uninterrupted run failed (see above)" >&2; exit 1; }
# The kills spread over the run: each start lives up to the uninterrupted run's length
# shared among the kills (half of it on average, as a resumed run goes faster).
spread=$(echo "$calm * 1000 / $kills" | bc)
killed=$(run "$kills" "$spread")
[ -n "$killed" ] || { echo "bench crash: the killed run failed (see above)" >&2; exit 1; }
echo "info: the a2a run was killed $kills times and started again each time"
printf 'bench crash: a2a %s s, uninterrupted %s s, ratio %.2f\n' \
    "$killed" "$calm" "$(echo "$calm / $killed" | bc -l)"
