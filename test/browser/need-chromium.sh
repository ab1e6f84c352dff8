#!/bin/bash
# need-chromium.sh - install Debian's chromium for the browser tests (test/browser) when it is
# missing, as the packaging scripts install their host packages (packaging/lib.sh need). As
# another user than root, or without apt, it only says so: the tests then skip, unless
# JHGO_REQUIRE_CHROMIUM is set (CI), and then they fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { printf '[browser] %s\n' "$*" >&2; }
command -v chromium >/dev/null && exit 0
if ((EUID != 0)) || ! command -v apt-get >/dev/null; then
  say "chromium is missing: the browser tests skip (apt-get install chromium)"
  exit 0
fi
. packaging/lib.sh
need chromium:chromium
