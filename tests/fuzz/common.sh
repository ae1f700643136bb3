# Shared by `smoke` and `long`: the toolchain check, the one build, the seeds, and
# the path of the built targets. Sourced, not run.

cd "$(dirname "${BASH_SOURCE[0]}")"

# Fast decoders first, the replica last.
TARGETS=(net_msg sync_frame record genesis_toml epcis_import proof_bundle provenance replica)

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
# under AddressSanitizer (libFuzzer's out-of-memory and leak reports need it).
build_all() {
    CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" cargo +nightly fuzz build -O -a
    local triple
    triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
    BIN="${CARGO_TARGET_DIR:-target}/$triple/release"
    mkdir -p artifacts
    "$BIN/seeds" corpus/seeds >/dev/null
}

# Longest input per target (0: libFuzzer's guess from the seeds): edit scripts and
# operation scripts need only so many bytes; EPCIS documents are JSON text.
max_len() {
    case "$1" in
        epcis_import) echo 16384 ;;
        proof_bundle | provenance) echo 256 ;;
        replica) echo 2048 ;;
        *) echo 0 ;;
    esac
}

# Every target's artifact (crash, timeout, out-of-memory) prefix.
artifact_prefix() {
    mkdir -p "artifacts/$1"
    echo "artifacts/$1/"
}
