# kiln's tasks. Every recipe installs what it needs and works when run twice.
# `just` alone lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Debian packages `kiln build` runs: the archive's signature check, the
# disk's file systems and the user namespace of the install stage.
build_packages := "ca-certificates gpgv debian-archive-keyring squashfs-tools dosfstools mtools binutils uidmap"

# What the test suite adds: real tools as oracles, and QEMU + OVMF (AAVMF
# for arm64) to boot the images (qemu-system-x86 and qemu-system-arm from
# bookworm-backports, see .ci/apt-install).
test_packages := "tar zstd diffutils patch cryptsetup-bin systemd-boot-efi gdisk fdisk sbsigntool openssl gzip xz-utils python3 faketime libcap2-bin minisign dpkg-dev libdpkg-perl apt apt-utils gpg mmdebstrap systemd openssh-server openssh-client nftables iproute2 util-linux python3-yaml libxml2-utils time bc ovmf ipxe-qemu qemu-system-x86 qemu-utils cpio python3-prometheus-client python3-venv zsh fish docker-registry apache2-utils curl python3-cryptography qemu-user-static arch-test qemu-system-arm qemu-efi-aarch64 binutils-aarch64-linux-gnu"

default:
    @just --list

# Install what `kiln build` needs (apt-get only when something is missing).
deps-build:
    @bash .ci/apt-install {{build_packages}}

# Install what the build and the whole test suite need.
deps: deps-build
    @bash .ci/apt-install {{test_packages}}
    @bash .ci/promtool

# Build kiln (release).
build:
    cargo build --release --locked

# Installs the target's Rust standard library (rustup), Debian's cross C
# compiler for the crates that build C, and qemu-user-static, which an
# arm64 build needs for its maintainer scripts. kiln finds the program in
# target/TRIPLE/PROFILE/kiln-node (PROFILE: release or dev).
# Cross-build kiln-node, which images that boot carry, for ARCH (arm64) images.
node-program arch="arm64" profile="release":
    #!/usr/bin/env bash
    set -euo pipefail
    case "{{arch}}" in
        arm64) triple=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu; debarch=arm64 ;;
        *) echo "just node-program: kiln cross-builds kiln-node for arm64 only, not {{arch}}" >&2; exit 2 ;;
    esac
    bash .ci/apt-install "gcc-$gnu" "libc6-dev-$debarch-cross" qemu-user-static
    rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"
    upper=$(echo "$triple" | tr 'a-z-' 'A-Z_')
    export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc"
    export "CC_${triple//-/_}=$gnu-gcc" "AR_${triple//-/_}=$gnu-ar"
    cargo build --locked --profile "{{profile}}" --target "$triple" --bin kiln-node

# Signs with $KILN_SIGNING_KEY (verified with $KILN_SIGNING_PUB, else with
# that key's own public key), else with a throwaway development key under
# target/. Where the pinned K3s release cannot be downloaded, the node is
# built without it and kiln says so; KILN_K3S=FILE supplies it
# (KILN_K3S_ARM64=FILE the arm64 one).
# ARCHES (amd64,arm64) builds those architectures instead of the recipe's
# (amd64), several into dist/ARCH; arm64 cross-builds kiln-node first.
# The main job: recipes/k3s-agent.toml into a signed, verified rootfs and bootable disk in dist/.
image arches="": deps-build build
    #!/usr/bin/env bash
    set -euo pipefail
    kiln=./target/release/kiln
    arch=()
    if [ -n "{{arches}}" ]; then
        arch=(--arch "{{arches}}")
        case ",{{arches}}," in
            *,arm64,*)
                bash .ci/apt-install qemu-user-static binutils-aarch64-linux-gnu
                just node-program arm64 release ;;
        esac
    fi
    key=${KILN_SIGNING_KEY:-}
    pub=${KILN_SIGNING_PUB:-}
    if [ -z "$key" ]; then
        key=target/dev-signing/dev.key
        [ -f "$key" ] || "$kiln" keygen -o target/dev-signing/dev --no-password
        echo "kiln: signing with the throwaway development key $key (set KILN_SIGNING_KEY for releases)"
    fi
    if [ -z "$pub" ]; then
        pub=target/dev-signing/signing-key.pub
        "$kiln" pubkey --key "$key" > "$pub"
    fi
    k3s=(--optional-artifact k3s)
    [ -z "${KILN_K3S:-}" ] || k3s+=(--artifact "k3s:amd64=$KILN_K3S")
    [ -z "${KILN_K3S_ARM64:-}" ] || k3s+=(--artifact "k3s:arm64=$KILN_K3S_ARM64")
    "$kiln" build recipes/k3s-agent.toml -o dist --key "$key" "${k3s[@]}" "${arch[@]}"
    if [[ "{{arches}}" == *,* ]]; then
        for a in $(echo "{{arches}}" | tr , " "); do
            "$kiln" verify --key "$pub" "dist/$a/k3s-agent-0.1.0.manifest.json" --contents --provenance
        done
    else
        "$kiln" verify --key "$pub" dist/k3s-agent-0.1.0.manifest.json --contents --provenance
    fi

# Formatting and lints, warnings denied.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --locked --all-targets -- -D warnings

# Tests marked #[ignore = "needs root"] or "needs network" are tiers: they
# run with --include-ignored, and fail there rather than pass when they cannot.
# "needs root, network and boot" (tests/it/boot.rs) boots the raw disk in QEMU
# (TCG, about a minute a boot); alone: cargo test --test it boot -- --include-ignored

# The whole test suite, every tier (lints, unit and integration tests); CI runs it as root.
test: deps lint (node-program "arm64" "dev")
    cargo test --workspace --locked --all-targets -- --include-ignored --test-threads 2
    just bench-smoke

# The untiered tests only: no root, no network; the tiers show as ignored.
test-quick: deps
    cargo test --workspace --locked --all-targets -- --test-threads 2

# Mutation testing of image paths, Debian versions, signatures, verification and
# the sandbox (cargo-mutants, one job); slow, not run by CI. The sandbox needs root.
mutants:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
    failed=0
    # A timeout (exit 3) is a mutant caught by hanging the tests; it also
    # takes precedence over exit 2, so missed.txt gives the verdict.
    mutants() {
        local out=$1 rc=0
        shift
        cargo mutants --output "$out" "$@" || rc=$?
        case $rc in 0 | 2 | 3) ;; *) exit "$rc" ;; esac
        if [ -s "$out/mutants.out/missed.txt" ]; then
            echo "mutants: not caught by the tests:"
            sed 's/^/    /' "$out/mutants.out/missed.txt"
            failed=1
        fi
    }
    mutants target/mutants/path --package kiln-tree --file crates/tree/src/path.rs
    # `+ 256` to `* 256` in order() is an equivalent mutant: every
    # punctuation weight stays above the letters' and in the same order.
    mutants target/mutants/version --package kiln-debian --file crates/debian/src/version.rs \
        --exclude-re 'replace \+ with \* in order'
    # Dependencies optimised (ed25519, scrypt, zstd, sha2): each mutant's
    # tests then take seconds, not minutes. Only kiln's code is mutated.
    opt=(--cargo-arg=--config --cargo-arg='profile.dev.package."*".opt-level=3')
    # `<` to `<=` in scrypt_params is an equivalent mutant: at opslimit ==
    # memlimit / 32 both of libsodium's branches give the same N, and p = 1.
    mutants target/mutants/minisign --package kiln-minisign "${opt[@]}" \
        --exclude-re 'replace < with <= in scrypt_params'
    # Verification: the kiln binary, run by the tests of signing and verify.
    # `<` to `<=` in check_contents is equivalent: the loop ends on (None,
    # None) anyway, and equal paths were matched by the arm before.
    mutants target/mutants/verify --package kiln --file src/signing.rs --file src/cmd/verify.rs \
        --exclude-re 'replace < with <= in check_contents' \
        "${opt[@]}" --cargo-arg=--test=it -- -- verify_tamper:: signing_cli:: signing::keygen \
        signing::a_manifest_that_does_not_parse signing::oversized signing::key_rotation \
        signing::verify_accepts signing::rollback
    # The sandbox (root): pure parts (id ranges, the log cap) against the
    # unit tests; the system calls against one probe build, base device
    # nodes, a failing script and a build without root.
    if [ "$(id -u)" -ne 0 ]; then
        echo "mutants: the sandbox (src/install/{ids,userns,isolate}.rs) needs root; skipped"
        exit "$failed"
    fi
    sandbox=(--package kiln --file src/install/ids.rs --file src/install/userns.rs
        --file src/install/isolate.rs "${opt[@]}")
    # `written > 0` to `>= 0` (isolate.rs:193) is equivalent: nothing
    # written yet means the output still ends a line.
    mutants target/mutants/sandbox-units "${sandbox[@]}" --cargo-arg=--lib \
        --re 'ids\.rs|copy_capped|Phases|is_progress_line|isolate\.rs:[0-9:]+ replace << with >>$' \
        --exclude-re 'isolate\.rs:193:24: replace > with >= in copy_capped' \
        -- -- --include-ignored install::
    # Equivalent or harmless mutants of the system calls:
    # - mount, unshare and clone flags are distinct bits: `|` to `^` is `|`;
    # - O_WRONLY & O_CLOEXEC (isolate.rs:326) leaves O_CREAT: the placeholder
    #   for a device is made and closed at once either way;
    # - `< 0` to `== 0`/`<= 0` for open() and setsid(): neither returns 0
    #   (stdin is open; the session is PID 1's), a failed open fails the
    #   bind mount onto it, and a fresh child's setsid() cannot fail;
    # - the waitpid retry (`== -1`, `!= EINTR`): no handler is installed in
    #   the helper, so waitpid is never interrupted;
    # - `128 + signal` for a killed PID 1: the scripts failed either way,
    #   only the number in the message differs;
    # - a base's device node always has its parent directory (`&&` to
    #   `||`): nodes are only accepted below /dev, which the scripts cannot
    #   change (theirs is a tmpfs);
    # - the directory that shows the exchange directory (userns.rs:375):
    #   every choice is /tmp on a host where anyone may enter /tmp;
    # - setgroups refused with EPERM (userns.rs:314:63): only when
    #   newgidmap denies setgroups, which current shadow does not.
    mutants target/mutants/sandbox "${sandbox[@]}" --cargo-arg=--test=it \
        --re 'userns\.rs|Prepared::enter|run_shell|replace c -> Result' \
        --exclude-re 'replace \| with \^ in (Prepared::enter|helper)' \
        --exclude-re 'isolate\.rs:326:65: replace \| with & in Prepared::enter' \
        --exclude-re 'replace < with (==|<=) in Prepared::enter' \
        --exclude-re '(delete - |replace != with == |replace \+ with [-*] )in Prepared::enter' \
        --exclude-re 'replace && with \|\| in run$' --exclude-re 'userns\.rs:(375:(43|69)|314:63):' \
        -- -- --include-ignored sandbox_probe:: install_offline::a_failing_maintainer_script \
        install_offline::without_root_a_user_namespace
    exit "$failed"

# Benchmarks: kiln against the tools a user would otherwise pick; prints ratios.
# Every benchmark once, at small sizes, with the debug build: proves `just
# bench` runs end to end (CI runs it); the numbers mean nothing.
bench-smoke:
    cargo build --locked
    KILN={{justfile_directory()}}/target/debug/kiln bash benches/pack.sh /usr/share/perl5
    KILN={{justfile_directory()}}/target/debug/kiln bash benches/verify.sh 8
    KILN={{justfile_directory()}}/target/debug/kiln bash benches/audit.sh 300
    KILN={{justfile_directory()}}/target/debug/kiln bash benches/debian.sh
    KILN={{justfile_directory()}}/target/debug/kiln bash benches/install.sh smoke
    KILN={{justfile_directory()}}/target/debug/kiln bash benches/disk.sh smoke
    KILN={{justfile_directory()}}/target/debug/kiln bash benches/boot.sh smoke
    KILN={{justfile_directory()}}/target/debug/kiln bash benches/registry.sh smoke

bench: deps build
    bash benches/pack.sh
    bash benches/verify.sh
    bash benches/debian.sh
    bash benches/install.sh
    bash benches/audit.sh
    bash benches/disk.sh
    bash benches/boot.sh
    bash benches/registry.sh

# Fuzz each parser of untrusted input for SECONDS each (cargo-fuzz on stable); fails on any crash.
fuzz seconds="60" sanitizer="none":
    #!/usr/bin/env bash
    set -euo pipefail
    shopt -s nullglob
    cargo fuzz --version >/dev/null 2>&1 || cargo install --locked cargo-fuzz --version '^0.13'
    # cargo-fuzz passes -Z flags, which stable rustc and cargo accept with
    # RUSTC_BOOTSTRAP=1. No sanitizer by default: the targets are safe Rust
    # and ASan (`just fuzz 20 address`) runs about 4x fewer inputs. Debug
    # assertions and overflow checks are on (cargo-fuzz's default).
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz run -s {{sanitizer}})
    cargo fuzz build -s {{sanitizer}}
    logs=fuzz/target/logs
    mkdir -p "$logs"
    failed=()
    # What went wrong, from a log: the build error, or the panic and its input.
    report() {
        { if grep -q 'failed to build fuzz script' "$1"; then
              echo "the build failed:"
              grep -m 3 -A 6 '^error' "$1" | head -n 20
          else
              awk '/panicked at/ {p = 1} /^stack backtrace:/ {p = 0}
                   p || /ERROR: libFuzzer|^Running: |Test unit written|^Base64: /' "$1" | head -n 30
          fi
          echo "(full log: $1)"; } | sed 's/^/    /'
    }
    for target in $(cargo fuzz list); do
        log="$logs/$target.log"
        # Crashes found by an earlier run stay failures until fixed.
        found=(fuzz/artifacts/"$target"/{crash,timeout,oom,leak}-*)
        if [ ${#found[@]} -gt 0 ] && ! "${fuzz[@]}" "$target" "${found[@]}" >"$log" 2>&1; then
            echo "fuzz: $target FAILED on an input an earlier run saved:"
            report "$log"
            failed+=("$target")
            continue
        fi
        # Seeds are committed in fuzz/seeds; fuzz/corpus (git-ignored) grows run after run.
        mkdir -p "fuzz/corpus/$target"
        if [ -d "fuzz/seeds/$target" ]; then cp -f "fuzz/seeds/$target"/* "fuzz/corpus/$target/"; fi
        # secret-key seeds are throwaway keys, kept under tests/ like every private key
        if [ -d "tests/data/fuzz-seeds/$target" ]; then cp -f "tests/data/fuzz-seeds/$target"/* "fuzz/corpus/$target/"; fi
        if "${fuzz[@]}" "$target" "fuzz/corpus/$target" -- \
            -max_total_time={{seconds}} -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1; then
            echo "fuzz: $target ok: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -n 1), corpus $(ls "fuzz/corpus/$target" | wc -l) inputs"
        else
            echo "fuzz: $target FAILED:"
            report "$log"
            failed+=("$target")
        fi
    done
    if [ ${#failed[@]} -gt 0 ]; then
        echo "fuzz: crashes in ${failed[*]}: inputs in fuzz/artifacts/<target>/;" \
            "replay one with RUSTC_BOOTSTRAP=1 cargo fuzz run -s {{sanitizer}} <target> <input>"
        exit 1
    fi
