#!/bin/bash
# debian-kernel.sh OUT: lays out Debian 12's 6.1 kernel for make vmtest in
# the directory OUT (bin/vm-kernels): bzImage-VER (the package's vmlinuz),
# config-VER, and modules-VER/ holding the modules nsntrace needs with
# their dependencies, and modules-VER/load naming them in the order the
# VM's /init insmods them (a leading ? marks a soft dependency, loaded if
# the CPU has what it needs).
#
# Debian's kernel builds netfilter and veth as modules. The modules named
# in ROOTS are what nsntrace's rules use (nft/spec_linux.go): nf_tables
# (tables of family inet, ip and ip6; the meta, cmp, payload, bitwise and
# immediate expressions are part of it), nft_chain_nat (the postrouting
# nat chain), nft_masq (masquerade), nft_ct (ct state in the forward
# chain), veth (the run's link). AF_PACKET, IPv6 and the namespaces are
# built in. Their dependencies come from each module's own .modinfo
# (depends= and softdep=, what depmod writes into modules.dep; the package
# ships no modules.dep, and this needs no kmod on the host).
#
# The package is the newest linux-image-6.1.0-N-amd64 apt knows
# (NSNTRACE_VM_DEBIAN_PKG names another). Prepared once: a second run
# with the same package does nothing, and without apt the newest kernel
# prepared before serves. Exits non-zero, saying why, when there is no
# such kernel.
set -euo pipefail

ROOTS="veth nf_tables nft_chain_nat nft_masq nft_ct"

out=${1:?usage: debian-kernel.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

pkg=${NSNTRACE_VM_DEBIAN_PKG:-}
if [ -z "$pkg" ]; then
	pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null |
		cut -d' ' -f1 | sort -V | tail -n1 || true)
fi
if [ -z "$pkg" ]; then
	# Without apt, a kernel prepared before still serves.
	old=$(cd "$out" && ls -d modules-6.1.0-*-amd64 2>/dev/null | sort -V | tail -n1 || true)
	if [ -n "$old" ] && [ -f "$out/$old/load" ] && [ -f "$out/bzImage-${old#modules-}" ]; then
		echo "debian-kernel: apt knows no linux-image-6.1.0-N-amd64; using bzImage-${old#modules-} prepared before"
		exit 0
	fi
	echo "debian-kernel: apt knows no linux-image-6.1.0-N-amd64 (not Debian 12, or no apt-get update)" >&2
	exit 1
fi
ver=${pkg#linux-image-}
if [ -f "$out/bzImage-$ver" ] && [ -f "$out/modules-$ver/load" ]; then
	echo "debian-kernel: $pkg already prepared in $out"
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "debian-kernel: apt-get download $pkg"
# apt-get download as root warns that _apt cannot write the directory; the
# download works all the same.
if ! (cd "$tmp" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed'); then
	:
fi
deb=$(ls "$tmp"/*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
	echo "debian-kernel: apt-get download $pkg failed" >&2
	exit 1
fi
dpkg-deb -x "$deb" "$tmp/x"
mods="$tmp/x/lib/modules/$ver"
[ -d "$mods" ] || { echo "debian-kernel: $deb has no lib/modules/$ver" >&2; exit 1; }
[ -f "$tmp/x/boot/vmlinuz-$ver" ] || { echo "debian-kernel: $deb has no boot/vmlinuz-$ver" >&2; exit 1; }

# name path, one a line; module names spell - as _.
find "$mods" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' |
	while read -r p; do
		n=${p##*/}; n=${n%%.ko*}; echo "${n//-/_} $p"
	done >"$tmp/index"

stage="$out/.modules-$ver.tmp"
rm -rf "$stage"
mkdir -p "$stage"

# raw PATH: the module's ELF, decompressed.
raw() {
	case $1 in
	*.xz) xz -dc "$1" ;;
	*.zst) zstd -qdc "$1" ;;
	*.gz) gzip -dc "$1" ;;
	*) cat "$1" ;;
	esac
}

# field PATH KEY: the values of KEY= in the module's .modinfo (NUL-separated
# strings, hence grep -z).
field() { raw "$1" | grep -za "^$2=" | tr '\0' '\n' | sed "s/^$2=//" || true; }

pathof() { awk -v n="$1" '$1 == n { print $2; exit }' "$tmp/index"; }

# providers NAME: modules named NAME, else those with alias NAME or
# crypto-NAME (how the kernel asks for a crypto driver).
providers() {
	local p
	p=$(pathof "$1")
	if [ -n "$p" ]; then
		echo "$1"
		return
	fi
	while read -r n p; do
		if raw "$p" | grep -qza -E "^alias=(crypto-)?$1\$"; then
			echo "$n"
		fi
	done <"$tmp/index"
}

seen=" "
# visit NAME SOFT: NAME's dependencies first, then NAME.
visit() {
	local name=$1 soft=$2 p d m
	case $seen in *" $name "*) return ;; esac
	seen="$seen$name "
	p=$(pathof "$name")
	if [ -z "$p" ]; then
		echo "debian-kernel: module $name is not in $pkg" >&2
		exit 1
	fi
	for d in $(field "$p" softdep); do
		case $d in pre: | post:) continue ;; esac
		for m in $(providers "$d"); do visit "$m" "?"; done
	done
	for d in $(field "$p" depends | tr ',' ' '); do visit "$d" "$soft"; done
	raw "$p" >"$stage/$name.ko"
	echo "$soft$name.ko" >>"$stage/load"
}
for r in $ROOTS; do visit "$r" ""; done

cp "$tmp/x/boot/vmlinuz-$ver" "$out/bzImage-$ver"
cp "$tmp/x/boot/config-$ver" "$out/config-$ver"
rm -rf "$out/modules-$ver"
mv "$stage" "$out/modules-$ver"
echo "debian-kernel: $out/bzImage-$ver with modules (load order):" $(cat "$out/modules-$ver/load")
