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

# The main job: build the example recipe into signed artifacts in dist/.
# Signs with $KILN_SIGNING_KEY (verified with $KILN_SIGNING_PUB, default
# signing/), else with a throwaway development key kept under target/.
image: deps build
    #!/usr/bin/env bash
    set -euo pipefail
    kiln=./target/release/kiln
    sh recipes/base/make-minimal-base.sh recipes/base/minimal-base.tar
    key=${KILN_SIGNING_KEY:-}
    pub=${KILN_SIGNING_PUB:-signing}
    if [ -z "$key" ]; then
        key=target/dev-signing/dev.key
        pub=target/dev-signing/dev.pub
        [ -f "$key" ] || "$kiln" keygen -o target/dev-signing/dev --no-password
        echo "kiln: signing with the throwaway development key $key (set KILN_SIGNING_KEY for releases)"
    fi
    "$kiln" build recipes/minimal.toml -o dist --key "$key"
    "$kiln" verify --key "$pub" dist/minimal-0.1.0.manifest.json --contents

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
    bash benches/verify.sh
