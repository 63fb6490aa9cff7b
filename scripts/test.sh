#!/usr/bin/env bash
# Installs everything the test suite needs (Debian packages, a virtualenv, the test extras) and runs it.
# This is the README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need_apt+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ] || need_apt+=(orthanc)
ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so >/dev/null 2>&1 || need_apt+=(orthanc-dicomweb)
command -v java >/dev/null 2>&1 || need_apt+=(default-jre-headless)  # METEOR (pycocoevalcap) runs a Java jar
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "== installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
echo "== installing the project with its test extras"
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[test]"

echo "== running the tests"
python -m pytest "$@"
