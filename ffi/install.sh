#!/bin/sh
# Installs libotlpx for C: the header, libotlpx_ffi.so and .a, and otlpx.pc.
#
#   cargo build --release -p otlpx-ffi
#   ffi/install.sh PREFIX [PROFILE]
#
# PROFILE is the target/ subdirectory to take the libraries from: release
# (the default) or debug ("dev" is taken as debug), or any directory
# holding them (a path with a "/"). CARGO_TARGET_DIR is honoured. Then:
# cc app.c $(pkg-config --cflags --libs otlpx), with
# PKG_CONFIG_PATH=PREFIX/lib/pkgconfig if PREFIX is not a system prefix.
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 PREFIX [PROFILE]" >&2
    exit 2
fi
prefix=$1
profile=${2:-release}
[ "$profile" = dev ] && profile=debug

ffi=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$ffi")
case $profile in
*/*) lib_dir=$profile ;;
*) lib_dir=${CARGO_TARGET_DIR:-$root/target}/$profile ;;
esac

for f in libotlpx_ffi.so libotlpx_ffi.a; do
    if [ ! -f "$lib_dir/$f" ]; then
        echo "$0: $lib_dir/$f not found; build it first:" \
            "cargo build -p otlpx-ffi $( [ "$profile" = release ] && echo --release )" >&2
        exit 1
    fi
done

# The version: ffi/Cargo.toml's, or the workspace's when it inherits it.
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$ffi/Cargo.toml" | head -n 1)
if [ -z "$version" ]; then
    version=$(awk '
        /^\[/ { in_pkg = ($0 == "[workspace.package]") }
        in_pkg && /^version *=/ { gsub(/.*= *"|".*/, ""); print; exit }
    ' "$root/Cargo.toml")
fi
if [ -z "$version" ]; then
    echo "$0: no version found in $ffi/Cargo.toml or $root/Cargo.toml" >&2
    exit 1
fi

mkdir -p "$prefix/include" "$prefix/lib/pkgconfig"
prefix=$(cd "$prefix" && pwd)
cp "$ffi/include/otlpx.h" "$prefix/include/"
cp "$lib_dir/libotlpx_ffi.so" "$lib_dir/libotlpx_ffi.a" "$prefix/lib/"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" \
    "$ffi/otlpx.pc.in" > "$prefix/lib/pkgconfig/otlpx.pc"
echo "installed otlpx $version ($profile) into $prefix"
