#!/usr/bin/env bash
# System packages the browser tests need: Debian's chromium, driven by Playwright for Python
# (tests/e2e/test_ui_browser.py launches /usr/bin/chromium; Playwright's own browser download is not used).
# Idempotent; run by .ci/run before `make test` and by `make test-deps`.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install_test_deps: chromium is missing; install it as root: apt-get install -y chromium" >&2
    exit 1
  fi
  echo "install_test_deps: installing chromium (Debian package) for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
echo "install_test_deps: $(chromium --version 2>/dev/null || echo 'chromium present')"
