#!/usr/bin/env bash
# The project's test command: format, lints, then every test against SQLite and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/keptn-rs-target}"

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo build --locked --bin keptn
cargo test --locked --workspace
