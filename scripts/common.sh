# SPDX-License-Identifier: MIT
# Shared by scripts/demo and scripts/test: messages and Debian package setup.

say() {
    if [ -t 1 ]; then
        printf '\033[1m==> %s\033[0m\n' "$*"
    else
        printf '==> %s\n' "$*"
    fi
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# The Debian packages the build, the tests and the tools need.
CLRMEMTRACE_PACKAGES=(
    build-essential meson ninja-build pkg-config
    liburcu-dev libcmocka-dev
    liblttng-ust-dev lttng-tools
    babeltrace2 python3-bt2 libbabeltrace2-dev
    python3-pytest python3-matplotlib
)

# Installs whichever of the given packages are missing (needs root).
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        die "missing Debian packages: ${missing[*]} (run as root, or install them first)"
    fi
    say "Installing Debian packages: ${missing[*]}"
    if [ -z "${CLRMEMTRACE_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null ||
            die "apt-get update failed"
        export CLRMEMTRACE_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        >/dev/null || die "apt-get install ${missing[*]} failed"
}

# The repository's top directory.
repo_root() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd
}
