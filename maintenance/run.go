package maintenance

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/dustin/go-humanize"

	"github.com/etcdops/etcdops/defrag"
	"github.com/etcdops/etcdops/health"
	"github.com/etcdops/etcdops/internal/etcdclient"
)

type runner struct {
	o    Options
	lg   *zap.Logger
	conn Conn
	// members is the member list as the last health check read it.
	members []health.Member
}

// Run reads every member's status, decides with o.Rule and, unless
// o.DryRun, defragments the members that need it one at a time, followers
// first and the leader last, after it has handed leadership over. Before
// each member the cluster must be healthy (every voter up, one leader, no
// alarm but NOSPACE, every applied index within o.MaxLag of the leader's);
// after it, the member must answer and catch up before the next starts.
// Cancelling ctx stops the run between members, never during one. The
// result is returned with the error too, as far as the run went.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.MaxLag == 0 {
		o.MaxLag = DefaultMaxLag
	}
	if o.Poll <= 0 {
		o.Poll = 50 * time.Millisecond
	}
	r := &runner{o: o, lg: o.Logger}
	if r.lg == nil {
		r.lg = zap.NewNop()
	}
	start := time.Now()
	rep, err := r.check(ctx)
	if err != nil {
		return nil, err
	}
	statuses, voters := r.statuses(rep)
	if len(voters) == 0 {
		return nil, &UnreachableError{Reason: unreachableReason(rep)}
	}
	res := &Result{ClusterID: fmt.Sprintf("%x", rep.ClusterID), DryRun: o.DryRun}
	dial := o.Dial
	if dial == nil {
		dial = r.dial
	}
	if r.conn, err = dial(voters); err != nil {
		return nil, err
	}
	defer r.conn.Close()
	defer func() { res.Seconds = time.Since(start).Seconds() }()
	if o.Compact {
		if res.Compaction, res.CompactedTo, err = r.compact(ctx, statuses); err != nil {
			return res, err
		}
		r.event(Event{Event: "compaction", Detail: res.Compaction})
		if res.CompactedTo > 0 {
			// Decide on the sizes the compaction leaves.
			if rep, err = r.settle(ctx, statuses, res.CompactedTo); err != nil {
				return res, err
			}
			statuses, _ = r.statuses(rep)
		}
	}
	res.Plan = defrag.Decide(statuses, o.Rule)
	r.event(Event{Event: "plan", Plan: res.Plan})
	if o.DryRun {
		return res, nil
	}
	// After a compaction, members count the pages it freed only as they
	// commit again: each is judged again on its status just before its turn.
	recheck := func(d defrag.Decision) bool {
		return res.CompactedTo > 0 && !o.Rule.All && d.Error == "" && !d.IsLearner
	}
	var failed []string
	of := 0
	for _, d := range res.Plan {
		if d.Defrag || recheck(d) {
			of++
		}
	}
	step := 0
	for _, d := range res.Plan {
		mr := MemberResult{ID: d.ID, Name: d.Name, Outcome: OutcomeSkipped, Reason: d.Reason, Before: d.DBSize}
		switch {
		case !d.Defrag && !recheck(d):
			r.event(Event{Event: "skipped", Member: d.Name, Detail: d.Reason})
		case ctx.Err() != nil || res.Interrupted || len(failed) > 0 && !o.ContinueOnError:
			mr.Outcome = OutcomeNotRun
		default:
			step++
			var err error
			mr, err = r.member(ctx, d, step, of, recheck(d))
			if err != nil {
				r.event(Event{Event: "failed", Member: d.Name, Step: step, Of: of, Detail: err.Error()})
				failed = append(failed, d.Name)
				if !o.ContinueOnError {
					res.Members = append(res.Members, mr)
					r.notRun(res, uint64(d.ID))
					r.finish(ctx, res)
					return res, err
				}
			}
			if ctx.Err() != nil && step < of {
				res.Interrupted = true
				r.event(Event{Event: "interrupted", Member: d.Name, Step: step, Of: of, Detail: "stopped after this member"})
			}
		}
		res.Members = append(res.Members, mr)
	}
	r.finish(ctx, res)
	switch {
	case len(failed) > 0:
		return res, &FailedError{Members: failed}
	case res.Interrupted:
		return res, ErrInterrupted
	}
	return res, nil
}

// notRun adds the members after the one with ID id that the run did not reach.
func (r *runner) notRun(res *Result, id uint64) {
	i := slices.IndexFunc(res.Plan, func(d defrag.Decision) bool { return uint64(d.ID) == id })
	for _, d := range res.Plan[i+1:] {
		mr := MemberResult{ID: d.ID, Name: d.Name, Outcome: OutcomeNotRun, Reason: d.Reason, Before: d.DBSize}
		if !d.Defrag {
			mr.Outcome = OutcomeSkipped
		}
		res.Members = append(res.Members, mr)
	}
}

// finish totals the result and disarms NOSPACE alarms when the members are
// below their quota fraction again. It runs after Ctrl-C too, with a
// context of its own.
func (r *runner) finish(ctx context.Context, res *Result) {
	for _, m := range res.Members {
		res.Reclaimed += m.Reclaimed
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*r.o.RequestTimeout)
	defer cancel()
	res.Disarm = r.disarm(ctx)
	if res.Disarm != "" {
		r.event(Event{Event: "disarm", Detail: res.Disarm})
	}
}

// member defragments one member, moving leadership away first if it leads.
// With recheck, the rule is applied again to the member's status after the
// gate, and the member skipped when it no longer holds.
func (r *runner) member(ctx context.Context, d defrag.Decision, step, of int, recheck bool) (MemberResult, error) {
	mr := MemberResult{ID: d.ID, Name: d.Name, Outcome: OutcomeFailed, Before: d.DBSize}
	fail := func(what, seen string) (MemberResult, error) {
		mr.Reason = what + ": " + seen
		return mr, &MemberError{Member: d.Name, Step: what, Seen: seen}
	}
	rep, why, err := r.gate(ctx)
	if err != nil {
		return fail("gate", err.Error())
	}
	if why != "" {
		return fail("gate", "cluster not healthy: "+why)
	}
	ep := endpointOf(rep, uint64(d.ID))
	if ep == nil {
		return fail("gate", "member no longer answers")
	}
	mr.Before = ep.DBSize
	if recheck {
		now := defrag.Decide([]defrag.MemberStatus{memberStatus(d.MemberStatus, ep)}, r.o.Rule)[0]
		if d.Reason = now.Reason; !now.Defrag {
			mr.Outcome, mr.Reason = OutcomeSkipped, now.Reason
			r.event(Event{Event: "skipped", Member: d.Name, Step: step, Of: of, Detail: now.Reason})
			return mr, nil
		}
	}
	timeout := r.o.MemberTimeout
	if timeout == 0 {
		timeout = MemberTimeoutFor(ep.DBSize)
	}
	// The member's own work ends by its timeout, not by Ctrl-C: a member is
	// never left in the middle of its defragmentation or leadership move.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if ep.IsLeader {
		to, err := r.moveLeader(mctx, uint64(d.ID))
		if err != nil {
			return fail("move leadership", err.Error())
		}
		r.event(Event{Event: "move-leader", Member: d.Name, Step: step, Of: of, Detail: "leadership moved to " + to})
	}
	r.event(Event{Event: "defragmenting", Member: d.Name, Step: step, Of: of, Detail: humanize.IBytes(uint64(mr.Before))})
	began := time.Now()
	stop := r.showProgress(fmt.Sprintf("[%d/%d] defragmenting %s (%s)", step, of, d.Name, humanize.IBytes(uint64(mr.Before))), began)
	_, err = r.conn.Defragment(mctx, ep.Endpoint)
	stop()
	if err != nil {
		return fail("defragment", fmt.Sprintf("%v (after %s, timeout %s)", err, time.Since(began).Round(time.Millisecond), timeout))
	}
	after, seen, err := r.waitCaughtUp(mctx, ep.Endpoint)
	if err != nil {
		return fail("catch up", fmt.Sprintf("%s within %s: %s", "not caught up", timeout, seen))
	}
	mr.Outcome, mr.After, mr.Reclaimed = OutcomeDefragmented, after, max(mr.Before-after, 0)
	mr.Seconds = time.Since(began).Seconds()
	mr.Reason = d.Reason
	r.event(Event{Event: "defragmented", Member: d.Name, Step: step, Of: of, Detail: fmt.Sprintf("%s to %s (%s reclaimed) in %s; %s",
		humanize.IBytes(uint64(mr.Before)), humanize.IBytes(uint64(after)), humanize.IBytes(uint64(mr.Reclaimed)),
		time.Since(began).Round(time.Millisecond), seen)})
	return mr, nil
}

// waitCaughtUp polls the member at endpoint, at intervals growing from
// o.Poll to a second, until it answers and its applied index is within
// o.MaxLag of its leader's; it returns the member's database size then.
func (r *runner) waitCaughtUp(ctx context.Context, endpoint string) (int64, string, error) {
	seen := "no answer yet"
	for wait := r.o.Poll; ; wait = min(wait*3/2, time.Second) {
		sctx, cancel := context.WithTimeout(ctx, r.o.RequestTimeout)
		st, err := r.conn.Status(sctx, endpoint)
		cancel()
		switch {
		case err != nil:
			seen = "status: " + err.Error()
		case st.Leader == 0:
			seen = "no leader"
		default:
			lead := r.clientURL(st.Leader)
			sctx, cancel := context.WithTimeout(ctx, r.o.RequestTimeout)
			lst, err := r.conn.Status(sctx, lead)
			cancel()
			switch {
			case err != nil:
				seen = fmt.Sprintf("status of the leader %s: %v", lead, err)
			case lst.RaftAppliedIndex <= st.RaftAppliedIndex+r.o.MaxLag:
				return st.DbSize, fmt.Sprintf("caught up: applied index %d, the leader's %d", st.RaftAppliedIndex, lst.RaftAppliedIndex), nil
			default:
				seen = fmt.Sprintf("applied index %d, the leader's %d (more than %d behind)", st.RaftAppliedIndex, lst.RaftAppliedIndex, r.o.MaxLag)
			}
		}
		select {
		case <-ctx.Done():
			return 0, seen, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// clientURL is the first client URL of member id, or "" when it is unknown.
func (r *runner) clientURL(id uint64) string {
	for _, m := range r.members {
		if m.ID == id && len(m.ClientURLs) > 0 {
			return m.ClientURLs[0]
		}
	}
	return ""
}

// showProgress writes line and the time since began on o.Progress until
// the returned function is called, which waits for it.
func (r *runner) showProgress(line string, began time.Time) func() {
	if r.o.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			fmt.Fprintf(r.o.Progress, "\r\033[K%s: %s", line, time.Since(began).Round(100*time.Millisecond))
			select {
			case <-done:
				fmt.Fprint(r.o.Progress, "\r\033[K")
				return
			case <-t.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (r *runner) event(ev Event) {
	if ev.Event != "plan" {
		r.lg.Debug("defrag", zap.String("event", ev.Event), zap.String("member", ev.Member), zap.String("detail", ev.Detail))
	}
	if r.o.Events != nil {
		ev.Time = time.Now()
		r.o.Events(ev)
	}
}

// dial connects with the options' client settings.
func (r *runner) dial(endpoints []string) (Conn, error) {
	cfg := r.o.Client
	cfg.Endpoints = endpoints
	cli, err := etcdclient.New(&cfg, r.lg)
	if err != nil {
		return nil, err
	}
	return cli, nil
}

func unreachableReason(rep *health.Report) string {
	var errs []string
	for _, e := range rep.Endpoints {
		if len(e.Errors) > 0 {
			errs = append(errs, e.Endpoint+": "+e.Errors[0])
		}
	}
	if rep.DiscoveryError != "" {
		errs = append(errs, rep.DiscoveryError)
	}
	if len(errs) == 0 {
		return "no voting member answered"
	}
	return strings.Join(errs, "; ")
}
