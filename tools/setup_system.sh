#!/usr/bin/env bash
# Installs the Debian packages Terra builds and tests with; a no-op when all are present.
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config
  xeus-dev nlohmann-json3-dev cppzmq-dev libzmq3-dev uuid-dev libssl-dev
  libgtest-dev libgmock-dev
  graphviz libgraphviz-dev
  chromium chromium-driver fonts-dejavu-core
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing Debian packages: ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
