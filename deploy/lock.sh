#!/bin/sh
# Write requirements.lock: every package the server installs (pyproject.toml's dependencies, requirements.in),
# pinned with the sha256 of each of its files on PyPI; torch as a direct URL to the CPU wheel on PyTorch's
# index, so that no other index can ever serve it. Run from the repository root: `make lock`.
#
# Needs pip-tools (`pip install pip-tools`), PyPI, and the CPU torch wheel in $WHEELS (it is hashed from that
# file: fetch it with `pip download --no-deps --index-url https://download.pytorch.org/whl/cpu
# torch==2.13.0+cpu -d $WHEELS` where download.pytorch.org is reachable).
set -eu
WHEELS="${WHEELS:-/opt/wheels}"
TORCH_WHEEL="torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"  # Python 3.11 (.python-version), x86_64
TORCH_URL="https://download.pytorch.org/whl/cpu/$(echo "$TORCH_WHEEL" | sed 's/+/%2B/')"
COMPILE="${COMPILE:-pip-compile}"  # not PIP_…: pip would read that as its own option

test -f "$WHEELS/$TORCH_WHEEL" || { echo "no $WHEELS/$TORCH_WHEEL (set WHEELS, see above)" >&2; exit 2; }
# Only PyPI, whatever this machine's pip configuration says (no mirrors whose files could differ).
env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
  "$COMPILE" pyproject.toml requirements.in --quiet --generate-hashes --allow-unsafe --strip-extras \
  --index-url https://pypi.org/simple --find-links "$WHEELS" --no-emit-find-links --no-emit-index-url \
  --output-file requirements.lock
hash="$(sha256sum "$WHEELS/$TORCH_WHEEL" | cut -d' ' -f1)"
# torch==…+cpu (found in $WHEELS) becomes a direct reference to the same file on PyTorch's CPU index.
python3 - "$TORCH_URL" "$hash" "$TORCH_WHEEL" <<'EOF'
import re, sys
url, digest, wheel = sys.argv[1:]
text = open("requirements.lock").read()
pinned = re.search(r"^torch==\S+ \\\n    --hash=sha256:(\w+)\n", text, re.M)
assert pinned and pinned.group(1) == digest, "torch is not pinned to the local wheel's hash"
note = (f"# torch: the CPU wheel from PyTorch's own index by direct URL (no index can shadow it); its sha256 was\n"
        f"# taken from a local copy of that file ({wheel}) by deploy/lock.sh.\n")
text = text.replace(pinned.group(0), f"{note}torch @ {url} \\\n    --hash=sha256:{digest}\n")
open("requirements.lock", "w").write(text)
EOF
echo "wrote requirements.lock"
