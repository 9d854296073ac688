# Shared by .ci/demo and .ci/test (sourced, POSIX sh).
set -eu
cd "$(dirname "$0")/.."

install_deps() {
    if [ "$(id -u)" != 0 ]; then
        echo "note: not root; skipping apt-get (install the packages in .ci/debian-packages.txt yourself)" >&2
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2046
    apt-get install -y -qq --no-install-recommends $(grep -v '^#' .ci/debian-packages.txt) >/dev/null
}

# configure DIR [meson options...]: set up a build directory, or reconfigure it.
configure() {
    dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null
    else
        rm -rf "$dir"
        meson setup "$dir" "$@" >/dev/null
    fi
}
