package health

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/internal/etcdclient"
)

// healthKey is the key read to check health, as etcdctl reads it.
const healthKey = "health"

// probeResult is what one endpoint answered, with the cluster-wide facts
// (member list, alarms) it reported.
type probeResult struct {
	Endpoint
	members   []Member
	membersOK bool
	// alarms are the cluster's active alarms as this member knows them.
	alarms    []Alarm
	clusterID uint64
}

// probe checks one endpoint with its own client. Everything, the dial
// included, ends by ctx's deadline.
func probe(ctx context.Context, ep string, base clientv3.Config) probeResult {
	last := &etcdclient.Attempts{}
	cfg := base
	cfg.Endpoints = []string{ep}
	cfg.Context = ctx
	cfg.DialOptions = append(slices.Clip(cfg.DialOptions), grpc.WithChainUnaryInterceptor(last.Intercept))
	if dl, ok := ctx.Deadline(); ok && (cfg.DialTimeout <= 0 || time.Until(dl) < cfg.DialTimeout) {
		cfg.DialTimeout = max(time.Until(dl), time.Millisecond)
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return probeResult{Endpoint: Endpoint{Endpoint: ep, Errors: []string{"connect: " + last.Explain(err).Error()}}}
	}
	defer cli.Close()
	// The maintenance client of cli.Maintenance dials a second connection
	// for Status; this one reuses the client's.
	m := clientv3.NewMaintenanceFromMaintenanceClient(clientv3.RetryMaintenanceClient(cli, cli.ActiveConnection()), cli)
	return gather(ctx, ep, m, cli.Cluster, cli.KV, func(err error) string { return last.Explain(err).Error() })
}

// gather asks one member for its status (which carries the alarms), then
// reads the health key and the member list together. Nothing it does goes
// through the raft log: etcdctl's alarm list does, and would add an entry
// to every member's log at each check.
func gather(ctx context.Context, ep string, m clientv3.Maintenance, c clientv3.Cluster, kv clientv3.KV, explain func(error) string) probeResult {
	r := probeResult{Endpoint: Endpoint{Endpoint: ep}}
	st, err := m.Status(ctx, ep)
	if err != nil {
		r.Errors = append(r.Errors, "status: "+explain(err))
		return r
	}
	r.setStatus(st)

	var (
		wg      sync.WaitGroup
		readErr error
		took    time.Duration
		members *clientv3.MemberListResponse
		membErr error
	)
	wg.Go(func() {
		var opts []clientv3.OpOption
		if r.IsLearner { // learners serve serializable reads only
			opts = append(opts, clientv3.WithSerializable())
		}
		start := time.Now()
		_, readErr = kv.Get(ctx, healthKey, opts...)
		took = time.Since(start)
	})
	wg.Go(func() { members, membErr = c.MemberList(ctx, clientv3.WithSerializable()) })
	wg.Wait()

	r.RTT = took
	readOK := readErr == nil || errors.Is(readErr, rpctypes.ErrPermissionDenied)
	if !readOK {
		r.Errors = append(r.Errors, "health read: "+explain(readErr))
	}
	r.QuorumRead = readOK && !r.IsLearner
	r.Healthy = readOK && len(r.alarms) == 0
	if membErr != nil {
		r.Errors = append(r.Errors, "member list: "+explain(membErr))
		return r
	}
	r.membersOK = true
	for _, mb := range members.Members {
		r.members = append(r.members, Member{ID: mb.ID, Name: mb.Name, PeerURLs: mb.PeerURLs, ClientURLs: mb.ClientURLs, IsLearner: mb.IsLearner})
		if mb.ID == r.MemberID {
			r.Name = mb.Name
		}
	}
	return r
}

// setStatus records a status answer. Its errors hold the cluster's active
// alarms, as every member applies them; they go to the alarms, the rest
// (such as "etcdserver: no leader") to the errors.
func (r *probeResult) setStatus(st *clientv3.StatusResponse) {
	r.Reachable = true
	if st.Header != nil {
		r.MemberID = st.Header.MemberId
		r.clusterID = st.Header.ClusterId
	}
	r.Version = st.Version
	r.StorageVersion = st.StorageVersion
	r.DBSize = st.DbSize
	r.DBSizeInUse = st.DbSizeInUse
	r.DBQuota = st.DbSizeQuota
	r.Leader = st.Leader
	r.IsLeader = st.Leader != 0 && st.Leader == r.MemberID
	r.IsLearner = st.IsLearner
	r.RaftTerm = st.RaftTerm
	r.RaftIndex = st.RaftIndex
	r.RaftAppliedIndex = st.RaftAppliedIndex
	var types []string
	for _, e := range st.Errors {
		a, ok := parseStatusAlarm(e)
		if !ok {
			r.Errors = append(r.Errors, e)
			continue
		}
		r.alarms = append(r.alarms, a)
		types = append(types, a.Type)
		if a.MemberID == r.MemberID {
			r.Alarms = append(r.Alarms, a.Type)
		}
	}
	if len(types) > 0 {
		r.Errors = append(r.Errors, "active alarms: "+strings.Join(types, ", "))
	}
}

// statusAlarm is how a status answer lists an alarm: etcd's AlarmMember in
// protobuf text, "memberID:10276657743932975437 alarm:NOSPACE ".
var statusAlarm = regexp.MustCompile(`^memberID:(\d+) alarm:([A-Z_]+)\s*$`)

// parseStatusAlarm returns the alarm that a status error reports, if it is one.
func parseStatusAlarm(s string) (Alarm, bool) {
	m := statusAlarm.FindStringSubmatch(s)
	if m == nil {
		return Alarm{}, false
	}
	id, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return Alarm{}, false
	}
	return Alarm{MemberID: id, Type: m[2]}, true
}
