# Shared by the bench scripts: source it after `cd "$root"`.

say() { echo "bench: $*" >&2; }
die() {
	say "$*"
	exit 1
}

# need_disk DIR MIB: DIR must be a real disk (fsync on a RAM filesystem costs
# nothing) with at least MIB MiB free.
need_disk() {
	case $(stat -f -c %T "$1") in
	tmpfs | ramfs) die "TMPDIR is on a RAM filesystem, where fsync costs nothing; point TMPDIR at a real disk" ;;
	esac
	local avail_kib
	avail_kib=$(df -Pk "$1" | awk 'NR==2 {print $4}')
	[ "$avail_kib" -ge $(($2 * 1024)) ] || die "needs $2 MiB free in $1, has $((avail_kib / 1024)) MiB"
}

# pasteable SCRIPT VAR...: the command that ran, as it can be pasted back:
# each VAR that is set, as VAR=value, then SCRIPT.
pasteable() {
	local script=$1 v out=
	shift
	for v in "$@"; do
		if [ -n "${!v:-}" ]; then out+="$v=${!v} "; fi
	done
	echo "$out$script"
}
