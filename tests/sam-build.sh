#!/usr/bin/env bash
# Builds the Lambda functions (every AWS::Serverless::Function in template.yaml) the way `sam deploy` ships them, from a fresh machine with only
# Rust (rustup) and Python 3 installed, no Docker:
#   - the SAM CLI, cargo-lambda and zig (cargo-lambda's cross-linker, from the `ziglang` wheel)
#     go into the project's own .venv from tests/requirements-build.txt;
#   - rustup adds the aarch64-unknown-linux-gnu target;
#   - `sam build` (settings from samconfig.toml; extra arguments are passed on, e.g. --parallel)
#     runs `cargo lambda build --release --target aarch64-unknown-linux-gnu.2.26 --bin NAME`
#     per function and puts each binary at .aws-sam/build/<Function>/bootstrap;
#   - each bootstrap is then checked to be a 64-bit ARM (aarch64) ELF, and its size printed.
# Not part of tests/run.sh: a cold build takes several minutes more than the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
log() { printf '\n== %s\n' "$*"; }

log "tools: SAM CLI, cargo-lambda, zig (project-local virtualenv $VENV)"
# Reinstall whenever either requirements file changes (their hash is kept in the venv).
WANT=$(cat tests/requirements.txt tests/requirements-build.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements-build" 2>/dev/null)" != "$WANT" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements-build.txt
  echo "$WANT" >"$VENV/.requirements-build"
  # The build requirements include the test ones: tests/run.sh need not reinstall.
  sha256sum tests/requirements.txt | cut -d' ' -f1 >"$VENV/.requirements"
fi

log "rust target aarch64-unknown-linux-gnu"
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi

# SAM looks up `cargo` and `cargo-lambda` on PATH; cargo-lambda finds zig as `python3 -m ziglang`.
export PATH="$PWD/$VENV/bin:$PATH"
export SAM_CLI_TELEMETRY=0
echo "$(sam --version); $(cargo lambda --version); zig $(python3 -m ziglang version)"

log "sam build $*"
# --no-cached: with `CodeUri: .` SAM's cache key is a checksum of the whole project directory
# (target/ and .venv/ included) for each function, which costs minutes and never hits.
start=$SECONDS
sam build --no-cached "$@"
echo "sam build took $((SECONDS - start)) s"

log "bootstrap binaries"
# The functions to check are read from template.yaml (every AWS::Serverless::Function logical id),
# not listed here: a list kept by hand once missed ChallengeFunction. PyYAML (a cfn-lint dependency,
# in the venv) parses the template; CloudFormation's short tags (!Ref, !GetAtt, !Sub...) are read as
# plain values, since only the resource types matter here.
functions=$(python3 - <<'PY'
import yaml

class Loader(yaml.SafeLoader):
    pass

def any_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)

Loader.add_multi_constructor("!", any_tag)
with open("template.yaml") as f:
    resources = yaml.load(f, Loader=Loader)["Resources"]
for name, res in resources.items():
    if res.get("Type") == "AWS::Serverless::Function":
        print(name)
PY
)
if [ -z "$functions" ]; then
  echo "no AWS::Serverless::Function found in template.yaml" >&2; exit 1
fi
echo "$(echo "$functions" | wc -l) functions in template.yaml:" $functions
status=0
for fn in $functions; do
  bin=.aws-sam/build/$fn/bootstrap
  if [ ! -f "$bin" ]; then
    echo "MISSING $bin" >&2; status=1; continue
  fi
  bytes=$(stat -c %s "$bin")
  desc=$(file -b "$bin" 2>/dev/null || echo "(no file(1) on this machine)")
  # ELF header: class 2 (64-bit), little endian, e_machine 183 (EM_AARCH64).
  if python3 -c 'import sys; h=open(sys.argv[1],"rb").read(20); sys.exit(not (h[:4]==b"\x7fELF" and h[4]==2 and h[5]==1 and int.from_bytes(h[18:20],"little")==183))' "$bin"; then
    verdict=ok
  else
    verdict="NOT an aarch64 ELF"; status=1
  fi
  mib=$(python3 -c "print(f'{$bytes / 1048576:.2f}')")
  printf '%-24s %10d bytes %6s MiB  %s  [%s]\n' "$fn" "$bytes" "$mib" "$verdict" "$desc"
done
exit $status
