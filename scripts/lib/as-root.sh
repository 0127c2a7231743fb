# shellcheck shell=bash
# Sourced by scripts/*, which need root (apt-get, network namespaces, root's caches).
# `as_root "$@"` re-runs the calling script through sudo when not root, with the same
# arguments and working directory, and the LAB_* variables the scripts read (sudo drops the
# environment); without sudo it stops with exit status 2 and says what to do.
as_root() {
    ((EUID == 0)) && return 0
    local self keep
    self=$(readlink -f -- "$0")
    if command -v sudo >/dev/null 2>&1; then
        keep=$(compgen -e | grep '^LAB_' | paste -sd, -) || true
        exec sudo ${keep:+"--preserve-env=$keep"} -- "$self" "$@"
    fi
    echo "scripts/${0##*/}: needs root, and sudo is not installed. Run it as root" \
         "(su -c $(printf %q "$self")), or install sudo as root (apt-get install sudo)" \
         "and add this user to group sudo." >&2
    exit 2
}
