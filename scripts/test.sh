#!/usr/bin/env bash
# The project's test command: services up, format, lints, then every test (SQLite and PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/keptn-rs-target}"

bash scripts/services.sh
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo build --locked --bin keptn
cargo test --locked --workspace
