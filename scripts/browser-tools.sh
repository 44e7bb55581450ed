#!/usr/bin/env bash
# Installs what the admin's browser test (tests/cli/admin_browser.rs, which
# runs tests/browser/admin.mjs) needs: Debian's `chromium` (apt, as root or
# with sudo, only when `command -v chromium` fails) and playwright-core,
# pinned by tests/browser/package-lock.json, into tests/browser/node_modules/.
# Playwright's own browser downloads are never used: the test drives
# Debian's chromium through `executablePath`. Quick when everything is
# already installed (node_modules/.kumo-lock records which lock file was);
# safe to run again. Node 20 and npm must be on the PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v chromium >/dev/null 2>&1; then
  echo "browser-tools: installing chromium"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi

dir=tests/browser
stamp="$dir/node_modules/.kumo-lock"
if [ -d "$dir/node_modules/playwright-core" ] && cmp -s "$dir/package-lock.json" "$stamp"; then
  echo "browser-tools: chromium and $dir/node_modules are up to date"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "browser-tools: npm not found: install Node.js 20 and npm" >&2
  exit 1
fi
echo "browser-tools: npm ci in $dir"
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads nothing, but
# say so in case a later version tries.
(cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
cp "$dir/package-lock.json" "$stamp"
