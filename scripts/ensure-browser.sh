#!/usr/bin/env bash
# A Chromium for the browser tests (tests/test_clients.py): Debian's package, driven by
# playwright. Never `playwright install`: no browser is downloaded at test time.
# KAIZEN_CHROMIUM names another executable; else /usr/bin/chromium or /usr/bin/chromium-browser.
set -euo pipefail

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

find_chromium() {
  for candidate in "${KAIZEN_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}

if ! find_chromium >/dev/null && command -v apt-get >/dev/null; then
  echo "installing chromium from Debian's packages"
  sudo_ apt-get update -qq && sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || true
fi
if path=$(find_chromium); then
  echo "chromium: $path ($("$path" --version 2>/dev/null | head -1))"
else
  echo "chromium: NOT available (the browser tests will fail in CI)"
fi
