#!/usr/bin/env bash
# make demo: the integration end to end on the embedded default (SQLite, sandbox servers, demo tenant).
# Prints what it does; stops the sandbox it started when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "Tenant configuration"
mlc config check

step "Connector database"
mlc db current
