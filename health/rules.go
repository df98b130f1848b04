package health

import (
	"fmt"
	"github.com/etcdops/etcdops/defrag"
	"slices"
	"strings"
	"time"
)

// run applies every check, in the order the reasons are listed.
func (j *judge) run() {
	j.members()
	if j.reachable() == 0 {
		var errs []string
		for _, e := range j.r.Endpoints {
			errs = append(errs, e.Endpoint+": "+firstError(&e))
		}
		j.add(Unknown, "endpoints", "no endpoint answered: %s", strings.Join(errs, "; "))
		if j.r.DiscoveryError != "" {
			j.add(Unknown, "endpoints", "member discovery: %s", j.r.DiscoveryError)
		}
		j.backups()
		return
	}
	if j.r.DiscoveryError != "" {
		j.add(Warning, "endpoints", "member discovery: %s; checked the given endpoints instead", j.r.DiscoveryError)
	}
	j.quorum()
	j.leader()
	j.learners()
	j.raft()
	j.alarms()
	j.db()
	j.versions()
	j.backups()
}

func (j *judge) reachable() int {
	n := 0
	for _, e := range j.r.Endpoints {
		if e.Reachable {
			n++
		}
	}
	return n
}

// members pairs each member with the endpoint that reached it (by member
// ID, else by client URL) and counts voters and learners. Without a member
// list, each endpoint stands for one member.
func (j *judge) members() {
	members := j.r.Members
	if members == nil {
		for _, e := range j.r.Endpoints {
			members = append(members, Member{ID: e.MemberID, Name: e.Name, ClientURLs: []string{e.Endpoint}, IsLearner: e.IsLearner})
		}
	}
	byID := map[uint64]*Endpoint{}
	byAddr := map[string]*Endpoint{}
	for i := range j.r.Endpoints {
		e := &j.r.Endpoints[i]
		if e.Reachable && byID[e.MemberID] == nil {
			byID[e.MemberID] = e
		}
		if byAddr[hostPort(e.Endpoint)] == nil {
			byAddr[hostPort(e.Endpoint)] = e
		}
	}
	for _, m := range members {
		ms := MemberState{Member: m, Endpoint: byID[m.ID]}
		for _, u := range m.ClientURLs {
			if ms.Endpoint == nil {
				ms.Endpoint = byAddr[hostPort(u)]
			}
		}
		e := ms.Endpoint
		switch {
		case !m.Started():
			ms.State = StateNotStarted
		case e == nil:
			ms.State = StateNotChecked
		case !e.Reachable:
			ms.State = StateUnreachable
		case e.Healthy:
			ms.State = StateHealthy
		default:
			ms.State = StateUnhealthy
		}
		ms.Up = e != nil && e.Reachable && (e.QuorumRead || m.IsLearner && e.Healthy)
		if m.IsLearner {
			j.sum.Learners++
		} else {
			j.sum.Voters++
			if ms.Up {
				j.sum.VotersUp++
			}
		}
		j.sum.Members = append(j.sum.Members, ms)
	}
	j.sum.Quorum = j.sum.Voters/2 + 1
}

// quorum judges whether enough voters are up, and names each member down.
func (j *judge) quorum() {
	s := &j.sum
	quorumRead, notChecked := false, 0
	for _, e := range j.r.Endpoints {
		quorumRead = quorumRead || e.QuorumRead
	}
	for _, m := range s.Members {
		if !m.IsLearner && m.State == StateNotChecked {
			notChecked++
		}
	}
	switch {
	case !quorumRead:
		j.add(Critical, "quorum", "no quorum: no member completed a linearizable read (%d of %d voting members reachable, quorum is %d)",
			j.reachableVoters(), s.Voters, s.Quorum)
	case s.VotersUp+notChecked < s.Quorum:
		j.add(Critical, "quorum", "no quorum: %d of %d voting members up, quorum is %d", s.VotersUp, s.Voters, s.Quorum)
	}
	matched := map[*Endpoint]bool{}
	for _, m := range s.Members {
		matched[m.Endpoint] = true
		switch {
		case m.State == StateNotStarted:
			j.add(Warning, "members", "member %x was added but never started", m.ID)
		case m.Endpoint != nil && !m.Up:
			j.add(Warning, "members", "member %s (%s) %s: %s", j.name(m.ID), m.Endpoint.Endpoint, m.State, firstError(m.Endpoint))
		}
	}
	for i := range j.r.Endpoints {
		if e := &j.r.Endpoints[i]; !matched[e] && !e.Reachable {
			j.add(Warning, "endpoints", "%s unreachable: %s", e.Endpoint, firstError(e))
		}
	}
}

func (j *judge) reachableVoters() int {
	n := 0
	for _, m := range j.sum.Members {
		if !m.IsLearner && m.Endpoint != nil && m.Endpoint.Reachable {
			n++
		}
	}
	return n
}

// leader requires every reachable member to follow the same leader.
func (j *judge) leader() {
	followers := map[uint64][]string{}
	for _, e := range j.r.Endpoints {
		if e.Reachable {
			followers[e.Leader] = append(followers[e.Leader], j.name(e.MemberID))
		}
	}
	if len(followers) == 1 {
		for id := range followers {
			if id == 0 {
				j.add(Critical, "leader", "no leader: no reachable member has one")
			}
			j.sum.Leader = id
		}
		return
	}
	var views []string
	for _, id := range sortedKeys(followers) {
		leader := "none"
		if id != 0 {
			leader = j.name(id)
		}
		views = append(views, fmt.Sprintf("%s follow %s", strings.Join(followers[id], ", "), leader))
	}
	j.add(Critical, "leader", "members disagree on the leader: %s", strings.Join(views, "; "))
}

func (j *judge) learners() {
	for _, m := range j.sum.Members {
		if m.IsLearner {
			j.add(Warning, "learners", "member %s is a learner: once it has caught up, promote it (etcdctl member promote %x) or remove it", j.name(m.ID), m.ID)
		}
	}
}

// raft compares the raft index of the reachable members.
func (j *judge) raft() {
	var hi, lo *Endpoint
	for i := range j.r.Endpoints {
		e := &j.r.Endpoints[i]
		if !e.Reachable {
			continue
		}
		if hi == nil || e.RaftIndex > hi.RaftIndex {
			hi = e
		}
		if lo == nil || e.RaftIndex < lo.RaftIndex {
			lo = e
		}
	}
	j.sum.RaftIndexLag = hi.RaftIndex - lo.RaftIndex
	if j.t.WarnRaftLag > 0 && j.sum.RaftIndexLag > j.t.WarnRaftLag {
		j.add(Warning, "raft", "member %s is %d raft entries behind %s (more than %d)", j.name(lo.MemberID), j.sum.RaftIndexLag, j.name(hi.MemberID), j.t.WarnRaftLag)
	}
}

func (j *judge) alarms() {
	hints := map[string]string{
		"NOSPACE": "the database reached its quota: compact, defragment, then etcdctl alarm disarm",
		"CORRUPT": "the member's data differs from the others': replace it from a snapshot",
	}
	for _, a := range j.r.Alarms {
		msg := fmt.Sprintf("%s alarm on member %s", a.Type, j.name(a.MemberID))
		if h := hints[a.Type]; h != "" {
			msg += " (" + h + ")"
		}
		j.add(Critical, "alarms", "%s", msg)
	}
}

// db compares each member's database size with its quota.
func (j *judge) db() {
	defragged := map[uint64]bool{}
	defer j.defrag(defragged)
	for _, e := range j.r.Endpoints {
		pct, ok := quotaPercent(e.DBSize, e.DBQuota)
		if !e.Reachable || !ok {
			continue
		}
		j.sum.MaxDBPercent = max(j.sum.MaxDBPercent, pct)
		status := OK
		switch {
		case pct >= j.t.CritDBPercent:
			status = Critical
		case pct >= j.t.WarnDBPercent:
			status = Warning
		default:
			continue
		}
		msg := fmt.Sprintf("member %s database is %.1f%% of its quota (%s of %s)", j.name(e.MemberID), pct, formatBytes(e.DBSize), formatBytes(e.DBQuota))
		defragged[e.MemberID] = true
		if e.DBSizeInUse < e.DBSize/2 {
			msg += fmt.Sprintf("; only %s in use: defragment to reclaim the rest", formatBytes(e.DBSizeInUse))
		}
		j.add(status, "db", "%s", msg)
	}
}

// defrag warns of each member whose free space passes the default rule of
// `etcdops defrag` (the quota rule is the db check's), but those done names.
func (j *judge) defrag(done map[uint64]bool) {
	rule := defrag.DefaultRule()
	rule.FallbackQuota = 0
	for _, e := range j.r.Endpoints {
		if !e.Reachable || e.IsLearner || done[e.MemberID] {
			continue
		}
		d := defrag.Decide([]defrag.MemberStatus{{DBSize: e.DBSize, DBSizeInUse: e.DBSizeInUse, Quota: -1}}, rule)[0]
		if d.Defrag {
			j.add(Warning, "db", "member %s database has %s: defragment it (etcdops defrag)", j.name(e.MemberID), d.Reason)
		}
	}
}

func (j *judge) versions() {
	byVersion := map[string][]string{}
	for _, e := range j.r.Endpoints {
		if e.Reachable {
			byVersion[e.Version] = append(byVersion[e.Version], j.name(e.MemberID))
		}
	}
	j.sum.Versions = sortedKeys(byVersion)
	if len(byVersion) > 1 {
		var parts []string
		for _, v := range j.sum.Versions {
			parts = append(parts, fmt.Sprintf("%s (%s)", v, strings.Join(byVersion[v], ", ")))
		}
		j.add(Warning, "versions", "members run different etcd versions: %s", strings.Join(parts, ", "))
	}
}

func (j *judge) backups() {
	b := j.r.Backup
	if b == nil {
		return
	}
	what := "snapshot"
	if b.Tag != "" {
		what = "snapshot tagged " + b.Tag
	}
	age, found := j.r.backupAge()
	switch {
	case b.Error != "":
		j.add(Unknown, "backups", "backups in %s: %s", b.URL, b.Error)
	case !found:
		j.add(Warning, "backups", "no complete %s (with its manifest) in %s", what, b.URL)
	default:
		j.sum.BackupAge, j.sum.BackupFound = age, true
		if j.t.MaxBackupAge > 0 && age > j.t.MaxBackupAge {
			newest := b.Newest
			if b.Log != nil {
				newest += fmt.Sprintf(" and its log through revision %d", b.Log.Revision)
			}
			j.add(Warning, "backups", "newest %s, %s, is %s old: more than the %s allowed",
				what, newest, shortDuration(age), shortDuration(j.t.MaxBackupAge))
		}
	}
}

// name returns a member's name, else its ID in hex as etcdctl prints it.
func (j *judge) name(id uint64) string {
	for _, m := range j.r.Members {
		if m.ID == id && m.Name != "" {
			return m.Name
		}
	}
	for _, e := range j.r.Endpoints {
		if e.MemberID == id && e.Name != "" {
			return e.Name
		}
	}
	return fmt.Sprintf("%x", id)
}

func firstError(e *Endpoint) string {
	if len(e.Errors) == 0 {
		return "no error reported"
	}
	return e.Errors[0]
}

// hostPort reduces an endpoint or client URL to the address it names, so
// that 127.0.0.1:2379 and http://127.0.0.1:2379 match.
func hostPort(ep string) string {
	if _, rest, ok := strings.Cut(ep, "://"); ok {
		ep = rest
	}
	return strings.TrimSuffix(ep, "/")
}

func sortedKeys[K interface{ ~string | ~uint64 }, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// shortDuration prints d to the second, or to the minute from an hour,
// without zero minutes and seconds: 26h, 1h30m, 45s.
func shortDuration(d time.Duration) string {
	unit := time.Second
	if d >= time.Hour {
		unit = time.Minute
	}
	s := d.Round(unit).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// formatBytes prints n in binary units as etcd's quota is usually given:
// 2.0 GiB, 64 KiB.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %ciB", int64(v), "KMGTPE"[exp])
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp])
}
