#!/usr/bin/env bash
# The project's test command: services up, format, lints, then every test (SQLite and PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/keptn-rs-target}"

bash scripts/services.sh
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo build --locked --bin keptn
# Doc tests are skipped (there are none); a summary line (all the runs above) closes the run.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --workspace --all-targets 2>&1 | tee "$log"
# The quality-gate and approval suites again, with the built-ins run by `keptn integration run`
# in another process (the server runs none itself).
KEPTN_TEST_BUILTINS=remote cargo test --locked -p keptn --test quality_gates --test builtin_approval 2>&1 | tee -a "$log"
# The approval suite again with the built-ins in a `keptn integration run --nats-url` child
# process, taking their events from NATS JetStream (the harness starts its own nats-server).
KEPTN_TEST_BUILTINS=nats cargo test --locked -p keptn --test builtin_approval 2>&1 | tee -a "$log"
awk '/^test result:/ { p += $4; f += $6 } END { printf "workspace: %d passed, %d failed\n", p, f }' "$log"
