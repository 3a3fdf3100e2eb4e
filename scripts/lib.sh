# Shared by scripts/run and scripts/test. Source it; do not run it.

OBORO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Print the package names listed in the given files (comments stripped).
oboro_packages() {
    sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$@"
}

# Install the Debian packages named in the given files that are missing,
# and only those; apt-get update runs only when something is missing.
oboro_install() {
    local missing=() pkg sudo=""
    for pkg in $(oboro_packages "$@"); do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "oboro: need root or sudo to install: ${missing[*]}" >&2; return 1; }
        sudo="sudo"
    fi
    echo "oboro: installing ${missing[*]}" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # redis-server's postinst must not grab port 6379 on machines with an
    # init system: oborod's default RESP port is the same.
    $sudo env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Configure (once) and build into $1 with further meson options.
# Runs in a subshell so the caller's working directory is kept.
oboro_build() (
    local dir=$1; shift
    cd "$OBORO_ROOT"
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >/dev/null
    else
        meson configure "$dir" "$@" >/dev/null
    fi
    ninja -C "$dir"
)
