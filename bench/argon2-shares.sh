#!/usr/bin/env bash
# The password step (one argon2id verify at m=19456 KiB, t=2, p=1, via crypto::verify_password)
# at the CPU share of several Lambda memory sizes: Lambda gives a function memory/1769 of one
# vCPU, emulated here with a cgroup v1 CPU quota (needs root and /sys/fs/cgroup/cpu).
#   bench/argon2-shares.sh [MB ...]      # default 128 256 512 1024 1769
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(128 256 512 1024 1769)
# argon2 speed is in one crate: a release build without LTO is as fast and links quicker.
export CARGO_TARGET_DIR=target/quick CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
cargo build -q --release -p mfa-shared --example argon2_time
BIN=$PWD/target/quick/release/examples/argon2_time
CG=/sys/fs/cgroup/cpu
period=$(cat $CG/cpu.cfs_period_us)
for mb in "${SIZES[@]}"; do
  g=$CG/mfa-argon2-$mb
  mkdir -p "$g"
  echo $((period * mb / 1769)) >"$g/cpu.cfs_quota_us"
  printf '%5d MB (%.0f%% of a vCPU): ' "$mb" "$(echo "100 * $mb / 1769" | bc -l)"
  sh -c "echo \$\$ >$g/cgroup.procs && exec $BIN 7"
  rmdir "$g"
done
