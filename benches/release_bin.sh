# Sourced by the benchmark scripts (from the checkout's root): sets $bin to
# the sidewatch release binary, building the checkout first — or, when
# SIDEWATCH_BIN is set, to that build made beforehand (another commit,
# another allocator), run as it is.
if [ -n "${SIDEWATCH_BIN:-}" ]; then
  bin=$SIDEWATCH_BIN
else
  cargo build --release --quiet
  bin=${CARGO_TARGET_DIR:-$PWD/target}/release/sidewatch
fi
