# kiln's tasks. Every recipe installs what it needs and works when run twice.
# `just` alone lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Debian packages the build and the test suite use (real tools as oracles).
debian_packages := "tar zstd gzip python3 faketime libcap2-bin minisign dpkg-dev libdpkg-perl apt time bc"

default:
    @just --list

# Install missing Debian packages (apt-get only when something is missing).
deps:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=()
    for p in {{debian_packages}}; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}"
        sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi

# Build kiln (release).
build:
    cargo build --release --locked

# The main job: build the example recipe into dist/.
image: deps build
    sh recipes/base/make-minimal-base.sh recipes/base/minimal-base.tar
    ./target/release/kiln build recipes/minimal.toml -o dist

# Formatting and lints, warnings denied.
lint:
    cargo fmt --all -- --check
    cargo clippy --locked --all-targets -- -D warnings

# The whole test suite: lints, unit and integration tests.
test: deps lint
    cargo test --locked --all-targets -- --test-threads 2

# Benchmarks: kiln against the tools a user would otherwise pick; prints ratios.
bench: deps build
    bash benches/pack.sh
