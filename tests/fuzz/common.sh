# Shared by `smoke` and `long`: the toolchain check, the one build, the seeds, and
# the path of the built targets. Sourced, not run.

cd "$(dirname "${BASH_SOURCE[0]}")"

# Fast decoders first, the replica last.
TARGETS=(net_msg sync_frame record genesis_toml epcis_import proof_bundle provenance credit replica)

require_toolchain() {
    if ! cargo +nightly --version >/dev/null 2>&1; then
        echo "fuzz: no nightly toolchain (rustup toolchain install nightly)" >&2
        [ "${XINLIAN_FUZZ_OPTIONAL:-0}" = 1 ] && exit 0
        exit 2
    fi
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
        echo "fuzz: installing cargo-fuzz" >&2
        cargo install cargo-fuzz --locked -j1
    fi
}

# One build of every target: optimised, with debug assertions and overflow checks,
# under AddressSanitizer by default (libFuzzer's leak and malloc-limit reports need
# it). XINLIAN_FUZZ_SANITIZER=none builds without one, several times faster, for long
# runs: our code is safe Rust, so the oracle is the same (panics, failed assertions,
# overflow, timeouts; -rss_limit_mb still bounds memory). Each build has its own
# folder, so the two never overwrite each other. XINLIAN_FUZZ_TRACE_COMPARES=0 drops
# comparison tracing (half the time of the targets that sign and verify is tracing
# comparisons inside curve arithmetic), at the cost of coarser guidance.
build_all() {
    local sanitizer="${XINLIAN_FUZZ_SANITIZER:-address}" flavour compares=()
    flavour="sanitizer-$sanitizer"
    if [ "${XINLIAN_FUZZ_TRACE_COMPARES:-1}" = 0 ]; then
        compares=(--no-trace-compares)
        flavour="$flavour-no-trace-compares"
    fi
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/$flavour"
    CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" cargo +nightly fuzz build -O -a -s "$sanitizer" "${compares[@]}"
    local triple
    triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
    BIN="$CARGO_TARGET_DIR/$triple/release"
    mkdir -p artifacts
    "$BIN/seeds" corpus/seeds >/dev/null
}

# Longest input per target (0: libFuzzer's guess from the seeds): edit scripts and
# operation scripts need only so many bytes; EPCIS documents are JSON text.
max_len() {
    case "$1" in
        epcis_import) echo 16384 ;;
        proof_bundle | provenance | credit) echo 256 ;;
        replica) echo 2048 ;;
        *) echo 0 ;;
    esac
}

# Every target's artifact (crash, timeout, out-of-memory) prefix.
artifact_prefix() {
    mkdir -p "artifacts/$1"
    echo "artifacts/$1/"
}
