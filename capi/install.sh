#!/usr/bin/env bash
# Installs the C library under PREFIX: lib/libtensorlane.{so,a}, include/tensorlane.h
# and tensorlane.hpp, lib/pkgconfig/tensorlane.pc and lib/cmake/tensorlane/ (for
# CMake's find_package). Builds in release unless TENSORLANE_PROFILE says otherwise
# (`debug`, as capi/tests/run.sh does to reuse the test build).
#
#   capi/install.sh PREFIX
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(mkdir -p "${1:?usage: capi/install.sh PREFIX}" && cd "$1" && pwd)
profile=${TENSORLANE_PROFILE:-release}
target=${CARGO_TARGET_DIR:-target}
if [ "$profile" = release ]; then
    cargo build -p tensorlane-capi --release
else
    cargo build -p tensorlane-capi
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
install -d "$prefix/lib/pkgconfig" "$prefix/lib/cmake/tensorlane" "$prefix/include"
# The crate's artefacts (libtensorlane_capi) under the library's name.
install -m 644 "$target/$profile/libtensorlane_capi.a" "$prefix/lib/libtensorlane.a"
install -m 755 "$target/$profile/libtensorlane_capi.so" "$prefix/lib/libtensorlane.so"
install -m 644 include/tensorlane.h include/tensorlane.hpp "$prefix/include/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" capi/tensorlane.pc.in \
    >"$prefix/lib/pkgconfig/tensorlane.pc"
install -m 644 capi/cmake/tensorlaneConfig.cmake "$prefix/lib/cmake/tensorlane/"
sed -e "s|@VERSION@|$version|" capi/cmake/tensorlaneConfigVersion.cmake.in \
    >"$prefix/lib/cmake/tensorlane/tensorlaneConfigVersion.cmake"
echo "installed tensorlane $version under $prefix"
