package schedule

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/etcdops/etcdops/backup"
	"github.com/etcdops/etcdops/pitr"
)

// Config is the daemon's configuration.
type Config struct {
	Jobs []Job
	// Defrags are scheduled rolling defrags (see DefragJob).
	Defrags []DefragJob
	// MetricsAddr is the host:port that serves /metrics and /healthz;
	// empty serves nothing.
	MetricsAddr string
	// MaxAge makes /healthz answer 503 while a job's last success is
	// older; 0 never does.
	MaxAge time.Duration
	// Verify configures scheduled restore tests (identities, spool dir).
	Verify backup.VerifyConfig
	// Bucket tunes every job's bucket (its stall timeout).
	Bucket []backup.StoreOption
	Logger *zap.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Registry receives the metrics and serves them on MetricsAddr; nil
	// makes a private one.
	Registry *prometheus.Registry
	// Registerer, when set instead of Registry, receives the metrics for
	// another server to serve (a member's own /metrics).
	Registerer prometheus.Registerer
}

// Scheduler runs jobs on their schedules until its context ends.
type Scheduler struct {
	cfg     Config
	lg      *zap.Logger
	metrics *metrics
	reg     *prometheus.Registry
	jobs    []*jobState
	started time.Time

	defragMetrics *defragMetrics
	defrags       []*defragState
}

// jobState is a job with what its runs share.
type jobState struct {
	Job
	store *backup.Store
	lg    *zap.Logger
	// running holds the job's one token: a run starts only by taking it.
	running, verifying atomic.Bool
	// uploading is the token of jobs whose slots are claimed: a run that
	// won its slot waits for it, up to one interval.
	uploading chan struct{}

	pitrMetrics *pitr.Metrics // of a job with a log

	mu          sync.Mutex
	tag         string // the job's tag once known
	lastSuccess time.Time
	failures    int
}

// New checks cfg and prepares a scheduler; Run starts it.
func New(cfg Config) (*Scheduler, error) {
	if len(cfg.Jobs) == 0 && len(cfg.Defrags) == 0 {
		return nil, errors.New("no jobs to schedule")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registry == nil && cfg.Registerer == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	var reg prometheus.Registerer = cfg.Registry
	if cfg.Registerer != nil {
		reg = cfg.Registerer
	}
	s := &Scheduler{cfg: cfg, lg: cfg.Logger, reg: cfg.Registry, metrics: newMetrics(reg), started: cfg.Now()}
	for _, j := range cfg.Jobs {
		st := &jobState{Job: j, tag: j.Save.Tag, lg: cfg.Logger.With(zap.String("job", j.Name)), uploading: make(chan struct{}, 1)}
		if j.PITR != nil {
			st.pitrMetrics = pitr.NewMetrics(reg, j.Name)
		}
		s.jobs = append(s.jobs, st)
	}
	if len(cfg.Defrags) > 0 {
		s.defragMetrics = newDefragMetrics(reg)
	}
	for _, j := range cfg.Defrags {
		s.defrags = append(s.defrags, &defragState{DefragJob: j, lg: cfg.Logger.With(zap.String("defrag-job", j.Name))})
	}
	return s, nil
}

// Run opens the jobs' buckets, serves the metrics, runs any catch-up and
// then every job on its schedule until ctx ends. It returns once every
// run it started has stopped: an upload in progress is aborted, so that
// nothing of it becomes visible. It returns nil when ctx ended it.
func (s *Scheduler) Run(ctx context.Context) (err error) {
	for _, st := range s.jobs {
		store, err := backup.OpenStore(ctx, st.To, s.cfg.Bucket...)
		if err != nil {
			return fmt.Errorf("job %s: %w", st.Name, err)
		}
		st.store = store
		defer store.Close()
	}
	var lis net.Listener
	if s.cfg.MetricsAddr != "" && s.reg != nil {
		if lis, err = net.Listen("tcp", s.cfg.MetricsAddr); err != nil {
			return fmt.Errorf("metrics address: %w", err)
		}
		defer lis.Close()
	}

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	srvErr := make(chan error, 1)
	if lis != nil {
		srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
				srvErr <- fmt.Errorf("metrics server: %w", err)
			}
		}()
		defer func() {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			srv.Shutdown(sctx)
		}()
		s.lg.Info("serving metrics", zap.String("addr", lis.Addr().String()))
	}

	c := cron.New(cron.WithLocation(time.UTC), cron.WithLogger(cronLogger{s.lg}))
	now := s.cfg.Now()
	var catchUps []cron.Job
	for _, st := range s.jobs {
		s.metrics.init(st.Name)
		s.metrics.interval.WithLabelValues(st.Name).Set(st.Cron.Interval(now).Seconds())
		st := st
		// A job whose slots are claimed waits for its turn to upload in
		// runBackup instead: its claims may overlap, its uploads never.
		token := &st.running
		if st.Claim != nil {
			token = nil
		}
		c.Schedule(st.Cron.sched, s.wrap(rctx, st, token, func() { s.runBackup(rctx, st, st.Cron.Slot(s.cfg.Now())) }))
		if st.Verify != nil {
			c.Schedule(st.Verify.sched, s.wrap(rctx, st, &st.verifying, func() { s.runVerify(rctx, st) }))
		}
		newest := s.newest(rctx, st)
		slot, catchUp := CatchUpSlot(st.CatchUp, st.Cron, newest, now)
		fields := []zap.Field{zap.String("cron", st.Cron.Text), zap.Time("next-run", st.Cron.Next(now)),
			zap.Duration("interval", st.Cron.Interval(now)), zap.Time("newest-snapshot", newest), zap.Bool("catch-up-now", catchUp)}
		if catchUp {
			catchUps = append(catchUps, s.wrap(rctx, st, token, func() { s.runBackup(rctx, st, slot) }))
			fields = append(fields, zap.Time("catch-up-slot", slot))
		}
		s.metrics.nextRun.WithLabelValues(st.Name).Set(unix(st.Cron.Next(now)))
		st.lg.Info("job scheduled", fields...)
	}
	for _, st := range s.defrags {
		s.defragMetrics.init(st.Name)
		s.defragMetrics.interval.WithLabelValues(st.Name).Set(st.Cron.Interval(now).Seconds())
		s.defragMetrics.nextRun.WithLabelValues(st.Name).Set(unix(st.Cron.Next(now)))
		skip := func(reason string) { s.defragMetrics.skips.WithLabelValues(st.Name, reason).Inc() }
		c.Schedule(st.Cron.sched, guard(rctx, skip, st.lg, &st.running, func() { s.runDefrag(rctx, st, st.Cron.Slot(s.cfg.Now())) }))
		st.lg.Info("rolling defrag scheduled", zap.String("cron", st.Cron.Text), zap.Time("next-run", st.Cron.Next(now)),
			zap.Bool("claims", st.Claim != nil))
	}
	c.Start()
	for _, st := range s.jobs {
		if st.PITR != nil {
			wg.Add(1)
			go func() { defer wg.Done(); s.runPITR(rctx, st) }()
		}
	}
	for _, j := range catchUps {
		wg.Add(1)
		go func() { defer wg.Done(); j.Run() }()
	}
	select {
	case <-ctx.Done():
	case err = <-srvErr:
	}
	cancel()
	<-c.Stop().Done()
	s.lg.Info("scheduler stopped")
	return err
}

// wrap makes fn a cron job that never overlaps itself (token holds the
// job's one run; a run due while it is taken is skipped and counted) and
// whose panics are recovered. A nil token skips nothing. Recover is innermost, and the token is
// returned by a defer, so that a panicking run can never keep the token
// (robfig/cron#366).
func (s *Scheduler) wrap(ctx context.Context, st *jobState, token *atomic.Bool, fn func()) cron.Job {
	return guard(ctx, func(reason string) { s.metrics.skips.WithLabelValues(st.Name, reason).Inc() }, st.lg, token, fn)
}

// guard is wrap for any job: skipped counts a skip by its reason.
func guard(ctx context.Context, skipped func(reason string), lg *zap.Logger, token *atomic.Bool, fn func()) cron.Job {
	skip := func(j cron.Job) cron.Job {
		return cron.FuncJob(func() {
			if ctx.Err() != nil {
				skipped(reasonShutdown)
				return
			}
			if token == nil {
				j.Run()
				return
			}
			if !token.CompareAndSwap(false, true) {
				skipped(reasonRunning)
				lg.Warn("run skipped: the previous run is still going")
				return
			}
			defer token.Store(false)
			j.Run()
		})
	}
	return cron.NewChain(skip, cron.Recover(cronLogger{lg})).Then(cron.FuncJob(fn))
}

// newest is the time of the newest complete snapshot of the job's tag in
// its bucket; zero when there is none or it cannot be known.
func (s *Scheduler) newest(ctx context.Context, st *jobState) time.Time {
	tag, err := s.tagOf(ctx, st)
	if err != nil {
		st.lg.Warn("cannot tell the job's tag to look for its newest snapshot", zap.Error(err))
		return time.Time{}
	}
	snaps, err := st.store.List(ctx, tag, false)
	if err != nil {
		st.lg.Warn("cannot list the job's snapshots", zap.Error(err))
		return time.Time{}
	}
	for i := len(snaps) - 1; i >= 0; i-- {
		if snaps[i].Complete() {
			t := snaps[i].Name.Time
			st.mu.Lock()
			st.lastSuccess = t
			st.mu.Unlock()
			s.metrics.lastSuccess.WithLabelValues(st.Name).Set(unix(t))
			return t
		}
	}
	return time.Time{}
}

// tagOf is the job's tag: given, else learnt from the cluster as a save
// would choose it.
func (s *Scheduler) tagOf(ctx context.Context, st *jobState) (string, error) {
	st.mu.Lock()
	tag := st.tag
	st.mu.Unlock()
	if tag != "" {
		return tag, nil
	}
	src, err := backup.PickSource(ctx, st.Save.Dial, st.Save.Endpoints, st.Save.Member, st.Save.CommandTimeout)
	if err != nil {
		return "", err
	}
	tag = backup.DefaultTag(src, len(st.Save.Endpoints))
	st.mu.Lock()
	st.tag = tag
	st.mu.Unlock()
	return tag, nil
}

// handler serves /metrics and /healthz.
func (s *Scheduler) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttpHandler(s.reg))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		now := s.cfg.Now()
		var stale []string
		for _, st := range s.jobs {
			st.mu.Lock()
			last := st.lastSuccess
			st.mu.Unlock()
			if Stale(last, s.cfg.MaxAge, now) {
				if last.IsZero() {
					stale = append(stale, fmt.Sprintf("job %s: no successful backup", st.Name))
				} else {
					stale = append(stale, fmt.Sprintf("job %s: last successful backup %s ago, more than %s", st.Name, now.Sub(last).Round(time.Second), s.cfg.MaxAge))
				}
			}
			// A member of serve streams only while it leads the election:
			// its log is judged by the metrics of all members together.
			if st.pitrMetrics != nil && st.PITR.Member == "" {
				if p := LogProblem(st.pitrMetrics.State(), s.started, now); p != "" {
					stale = append(stale, fmt.Sprintf("job %s: %s", st.Name, p))
				}
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if len(stale) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			for _, l := range stale {
				fmt.Fprintln(w, l)
			}
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// cronLogger passes cron's messages to zap: its chatter at debug level.
type cronLogger struct{ lg *zap.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.lg.Sugar().Debugw("cron: "+msg, kv...) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.lg.Sugar().Errorw("cron: "+msg, append(kv, "error", err)...)
}
