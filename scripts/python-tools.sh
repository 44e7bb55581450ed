#!/usr/bin/env bash
# Installs the Python tools the tests run into the project-local virtualenv
# .venv/: schemathesis, which fuzzes the API from its OpenAPI document,
# openapi-spec-validator, and aiosmtpd, the SMTP server the mail tests
# deliver to, each pinned with its dependencies in
# scripts/test-requirements.txt. Quick when they are already installed
# (.venv/.kumo-requirements records what was); safe to run again.
#
# On a fresh Debian machine `python3 -m venv` needs the python3-venv
# package, which this script installs (as root, or with sudo) when the
# first attempt fails.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
requirements=scripts/test-requirements.txt
stamp="$venv/.kumo-requirements"

if [ -x "$venv/bin/schemathesis" ] && cmp -s "$requirements" "$stamp"; then
  echo "python-tools: $venv is up to date"
  exit 0
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

if ! command -v python3 >/dev/null 2>&1; then
  echo "python-tools: installing python3"
  apt_install python3 python3-venv
fi
if [ ! -x "$venv/bin/python" ]; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian's python3 leaves ensurepip (and so venv) to python3-venv.
    echo "python-tools: installing python3-venv"
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
fi
echo "python-tools: installing $requirements into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
cp "$requirements" "$stamp"
