#!/usr/bin/env bash
# The soak test at a large size (CI runs it small): release build, figures printed as JSON.
# Override any size: SOAK_SUBSCRIBERS, SOAK_CHANNELS, SOAK_RATE, SOAK_SECONDS, SOAK_DROP_PERCENT,
# SOAK_ROUNDS.
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_SUBSCRIBERS="${SOAK_SUBSCRIBERS:-2000}"
export SOAK_CHANNELS="${SOAK_CHANNELS:-16}"
export SOAK_RATE="${SOAK_RATE:-500}"
export SOAK_SECONDS="${SOAK_SECONDS:-60}"
export SOAK_DROP_PERCENT="${SOAK_DROP_PERCENT:-1}"
export SOAK_ROUNDS="${SOAK_ROUNDS:-4}"
cargo test --release --test soak -- --nocapture 2>&1 | grep -E '^soak:|panicked|test result'
