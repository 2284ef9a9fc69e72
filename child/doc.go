// Package child starts the traced program in a world of its own: a
// re-executed copy of nsntrace in new network, mount and PID namespaces,
// which waits until the caller has wired the namespace up (veth, addresses,
// routes, nft table, capture) and only then execs the program.
//
// The re-executed process is the init (PID 1) of the new PID namespace. It
// makes its mount namespace private, mounts a fresh /proc (so the program's
// ps and /proc/self are right), optionally covers /etc/resolv.conf with a
// private file, and tells the caller it is ready. After [Process.Release] it
// starts the program with the requested credentials, reaps every process of
// the namespace (orphans are re-parented to it) and forwards signals. When
// the program exits, whatever it left running gets SIGTERM and, after
// [Config.Grace], SIGKILL (kill(-1) from the init reaches exactly the
// namespace's processes); with [Config.WaitAll] the init instead waits
// until it has no child left. Then it reports the program's status, with
// how many processes were stopped, over its socket and exits. The kernel
// kills whatever is still in the PID namespace when its init exits, so
// nothing the program started outlives the run, and [Process.Wait] returns
// only after they are all gone.
//
// Parent and init talk over one CLOEXEC socketpair (fd 3 in the init); the
// init learns that it is one from an environment variable that only [Start]
// sets and that the program never sees. Every binary that calls [Start] must
// call [MaybeRun] first thing in main (and in TestMain).
//
// # Privileges
//
// [Start] needs CAP_SYS_ADMIN (namespaces, mounts) in the caller's user
// namespace; in practice it runs as root. The program itself runs as root
// unless [Config.User] is set, in which case it runs with that user's uid,
// gid and groups and without capabilities, also when the uid is 0: the
// bounding, ambient and inheritable sets of the thread that forks it are
// emptied first, as execve would otherwise give root the bounding set
// back. [LookupUser] takes a numeric UID that /etc/passwd does not list as
// that uid, with gid the same number and no supplementary groups.
//
// # Network namespaces
//
// The new network namespace holds only an lo that is down; configuring it is
// the caller's job, through the handle [Process.NetNS] returns, before
// [Process.Release]. Nothing here touches the caller's own namespaces.
//
// /sys is deliberately left as it is (unlike `ip netns exec`, which mounts
// a sysfs of the new namespace over it): a fresh sysfs would hide
// /sys/fs/cgroup and other submounts from the program. Programs that list
// interfaces through netlink or ioctl see the new namespace; a program that
// reads /sys/class/net sees the host's devices.
//
// # Signals
//
// Signals that a terminal sends to its foreground process group (SIGINT,
// SIGQUIT, SIGHUP) reach the program directly, because init and program stay
// in the caller's process group; the init therefore drops those when they
// are sent to it, so that the program does not see them twice. SIGTERM,
// SIGUSR1 and SIGUSR2 sent to the init are forwarded to the program, and
// [Process.Signal] forwards any signal explicitly.
package child
