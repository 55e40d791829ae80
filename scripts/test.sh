#!/usr/bin/env bash
# Runs every check sidewatch's CI runs: installs what a fresh Debian 12
# machine lacks, then fmt, clippy, and all unit + integration tests (which
# start real processes: promtool, HTTP targets, the sidewatch binary).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: promtool (prometheus), curl-free HTTP is built in.
need=()
for pkg in prometheus postgresql redis-server openssl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}"
fi

# helm + kubectl (cached in ~/.cache/sidewatch-tools/bin) and kubernetes-validate,
# for tests/helm.rs, tests/helm_assets.rs and tests/inject.rs.
bash scripts/k8s-tools.sh

for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --all-targets --locked
