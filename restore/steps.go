package restore

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/etcdops/etcdops/internal/memberconf"
)

// NextSteps lists what an operator does after Run: copy the data dirs to
// their hosts, start every member, and check the cluster.
func NextSteps(p *Plan, res *Result) []string {
	targets := p.Targets()
	var steps []string
	if len(targets) > 1 && !allLocal(targets) {
		steps = append(steps, "Copy each member's data dir and its .yml/.env files to the member's host, to the same paths "+
			"(rsync -a keeps their 0700/0600 modes); nothing to copy for members that run on this host.")
	}
	steps = append(steps, "Stop anything still running of the old cluster, then start every member of the new one "+
		"within a few minutes (each waits for a quorum of its peers):")
	for _, m := range targets {
		steps = append(steps, "  "+m.Name+": "+memberconf.ServeCommand(m.ConfigFile))
	}
	steps = append(steps, "  or under systemd, on each host (the unit runs as user etcd: `chown -R etcd:etcd` its data dir first, "+
		"unless the data dir is under /var/lib, which systemd hands to it):")
	for _, m := range targets {
		steps = append(steps, "  "+m.Name+": "+systemdCommand(p, m))
	}
	var endpoints []string
	for _, m := range p.Members {
		endpoints = append(endpoints, m.ClientURLs...)
	}
	check := fmt.Sprintf("Check: etcdctl --endpoints=%s endpoint status -w table", strings.Join(endpoints, ","))
	if p.RevisionBump == 0 {
		check += fmt.Sprintf("; `etcdctl endpoint hashkv --cluster --rev %d` prints %d for every member", res.Snapshot.Revision, res.Snapshot.KVHash)
	}
	steps = append(steps, check+".")
	return steps
}

// allLocal reports whether every member's peer URL is on a loopback host:
// all run on this host.
func allLocal(members []Member) bool {
	for _, m := range members {
		for _, raw := range m.PeerURLs {
			u, err := url.Parse(raw)
			if err != nil {
				return false
			}
			ip := net.ParseIP(u.Hostname())
			if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
				return false
			}
		}
	}
	return true
}

// systemdCommand is the `etcdops systemd unit` command that installs a
// unit running the member with its restored settings.
func systemdCommand(p *Plan, m Member) string {
	args := []string{"etcdops", "systemd", "unit", "--install"}
	for _, a := range p.conf(m).Flags() {
		args = append(args, shellQuote(a))
	}
	return strings.Join(args, " ")
}

// shellQuote quotes s for a POSIX shell where it needs quoting.
func shellQuote(s string) string { return memberconf.ShellQuote(s) }
