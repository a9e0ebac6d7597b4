#!/usr/bin/env bash
# bench/coldstart: every A2A Lambda binary (intake, dispatcher, scheduler, every step-*)
# against a bare lambda_runtime function (hello/), both built with the same profile, each
# started RUNS times against the fake Lambda Runtime API of a2a_testkit::lambda. Measures the
# time from spawn to the first /next and the RSS after one invocation. Ends in the line
#   bench coldstart: a2a X ms, bare lambda_runtime Y ms, ratio Y/X; RSS a2a …, delta D MB
#
# Needs a moto server: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_REGION (each invocation is a real one: the functions read and write moto).
# Knobs: RUNS (20), PROFILE (lambda: the packaging profile of the root Cargo.toml),
# ONLY (a comma-separated list of function names).
# The first build is long (the AWS SDK with fat LTO): about 20 minutes on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
runs=${RUNS:-20}
profile=${PROFILE:-lambda}
target=${CARGO_TARGET_DIR:-$repo/target}

if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
    echo "bench coldstart: AWS_ENDPOINT_URL is not set; start moto and export it (see the header of $0)" >&2
    exit 3
fi

cd "$repo"
# The functions in one build, as `cargo lambda build` makes them.
nice -n 19 cargo build --profile "$profile" \
    -p a2a-fn-intake -p a2a-fn-dispatcher -p a2a-fn-scheduler -p a2a-fn-steps
# The peers in builds of their own, so that each gets only its own features: the bare
# function, and the bare function with the SDK clients the intake builds.
nice -n 19 cargo build --profile "$profile" -p a2a-coldstart-hello
nice -n 19 cargo build --profile "$profile" -p a2a-coldstart-hello-sdk
# The harness only waits on the children: the debug profile is enough.
cargo build -p a2a-coldstart

set -- --dir "$target/$profile" --runs "$runs"
if [ -n "${ONLY:-}" ]; then
    set -- "$@" --only "$ONLY"
fi
exec "$target/debug/coldstart" "$@"
