# Entry points; CI runs `.ci/run`, which installs what the tests need and
# then runs `make lint`, a check of the fuzz targets and `make test`.
CARGO   ?= cargo
PROFILE ?= hello
TARGET  := x86_64-unknown-linux-musl
INIT    := target/$(TARGET)/release/init
MKROOTFS := target/release/mkrootfs

.PHONY: all init probe mkrootfs image run test test-host lint bench

all: image

# The init is static, for musl (half the size of a static glibc build):
# crt-static with an explicit --target, so the flag does not reach
# proc-macros and build scripts (docs/ARCHITECTURE.md); non-PIE, which saves
# 60 KB of relocations in a binary nobody relocates; segments not padded to
# page boundaries (-z noseparate-code: 10 KB); no .eh_frame_hdr
# (--no-eh-frame-hdr: 16 KB), the unwinder's index, which a panic=abort
# binary whose panic hook prints no backtrace never consults. The target's
# std is added once when rustup manages the toolchain and lacks it.
INIT_RUSTFLAGS := -C target-feature=+crt-static -C relocation-model=static -C link-arg=-Wl,-z,noseparate-code -C link-arg=-Wl,--no-eh-frame-hdr
init:
	@if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx $(TARGET); then \
		rustup target add $(TARGET); fi
	RUSTFLAGS="$(INIT_RUSTFLAGS)" $(CARGO) build --release -p mkrootfs-init --target $(TARGET)

# The container probe of the boot tests (tests/container.rs), static like the init.
probe:
	RUSTFLAGS="$(INIT_RUSTFLAGS)" $(CARGO) build --release -p mkrootfs-probe --target $(TARGET)

mkrootfs:
	$(CARGO) build --release -p mkrootfs-cli

# Build profiles/$(PROFILE).toml into out/.
image: init mkrootfs
	$(MKROOTFS) build --profile $(PROFILE)

# Build and boot profiles/$(PROFILE).toml under QEMU.
run: init mkrootfs
	$(MKROOTFS) run --profile $(PROFILE)

# Everything: the host tests, the init's, and the boot tests under QEMU
# (tests/). `cargo test` alone runs the fast host tests (default-members).
test: init
	$(CARGO) test --workspace

test-host:
	$(CARGO) test

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	python3 .ci/cycles.py

bench: init mkrootfs
	bench/run
