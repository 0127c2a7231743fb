#!/usr/bin/env bash
# An offline bundle that `lab up --bundle` sent to this host: checked file by file against
# the sha256 the manifest lists (after the copy, on this host), for this host's release and
# architecture, and made an apt source of its own, which the steps after this one read
# instead of the network (lib.sh). Without a bundle there is nothing to do.
set -euo pipefail
: "${LAB_BUNDLE:=}" "${LAB_BUNDLE_RELEASE:=}" "${LAB_BUNDLE_ARCH:=}"
if [[ -z "$LAB_BUNDLE" ]]; then
    echo "no bundle: the steps download what they need"
    exit 0
fi
[[ -f "$LAB_BUNDLE/SHA256SUMS" ]] || lab_fail 1 "$LAB_BUNDLE/SHA256SUMS is missing: the bundle was not sent here"
if ! out=$(cd "$LAB_BUNDLE" && sha256sum --quiet --strict -c SHA256SUMS 2>&1); then
    lab_fail 1 "the bundle's copy on this host is not the bundle: $(head -n 1 <<<"$out")"
fi
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
arch=$(dpkg --print-architecture)
if [[ "$codename/$arch" != "$LAB_BUNDLE_RELEASE/$LAB_BUNDLE_ARCH" ]]; then
    lab_fail 1 "the bundle's packages are for $LAB_BUNDLE_RELEASE/$LAB_BUNDLE_ARCH and this host runs $codename/$arch: make the bundle on a machine of the box's release"
fi
# A flat repository: what dpkg-scanpackages writes, from each package's own control file.
debs=$LAB_BUNDLE/debs
mkdir -p "$debs" "$LAB_BUNDLE/apt/sources.d" "$LAB_BUNDLE/apt/lists/partial"
count=0
: > "$debs/Packages.new"
for deb in "$debs"/*.deb; do
    [[ -e "$deb" ]] || continue
    {
        dpkg-deb -f "$deb"
        printf 'Filename: ./%s\nSize: %s\nSHA256: %s\n\n' "${deb##*/}" "$(stat -c %s "$deb")" \
            "$(sha256sum "$deb" | cut -d ' ' -f 1)"
    } >> "$debs/Packages.new"
    count=$((count + 1))
done
mv "$debs/Packages.new" "$debs/Packages"
# trusted: every file was checked against the manifest above, which `lab` checked too.
echo "deb [trusted=yes] file:$debs ./" > "$LAB_BUNDLE/apt/sources.list"
echo "bundle for $codename/$arch: $count packages, $(find "$LAB_BUNDLE/images" -name '*.tar' 2>/dev/null | wc -l) images"
