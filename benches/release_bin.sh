# Sourced by the benchmark scripts (from the checkout's root): sets $bin to
# the sidewatch release binary, building the checkout first — or, when
# SIDEWATCH_BIN is set, to that build made beforehand (another commit,
# another allocator), run as it is. With PGO=1 it is the profile-guided
# build the image ships (scripts/pgo-build.sh, a few minutes more).
if [ -n "${SIDEWATCH_BIN:-}" ]; then
  bin=$SIDEWATCH_BIN
elif [ "${PGO:-0}" = 1 ]; then
  bin=$(scripts/pgo-build.sh | tail -n 1)
else
  cargo build --release --quiet
  bin=${CARGO_TARGET_DIR:-$PWD/target}/release/sidewatch
fi
