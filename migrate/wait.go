package migrate

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// How a wait shows itself: from showAfter on, as a line of Progress
// rewritten at each check on a terminal, otherwise as a log line, repeated
// every logEvery.
const (
	showAfter = 2 * time.Second
	logEvery  = 10 * time.Second
)

// wait is one wait of a step for the cluster or a member, shown when it
// lasts (see showAfter).
type wait struct {
	r      *runner
	what   string
	start  time.Time
	logged time.Time
	shown  bool
}

// newWait starts a wait for what ("member A to start").
func (r *runner) newWait(what string) *wait {
	return &wait{r: r, what: what, start: time.Now()}
}

// sleep waits until the next check; past showAfter it shows the wait with
// seen, what the last check found. It returns ctx's error when the step's
// time is up or the run is interrupted.
func (w *wait) sleep(ctx context.Context, seen string) error {
	if err := w.r.sleep(ctx); err != nil {
		return err
	}
	if time.Since(w.start) < showAfter {
		return nil
	}
	elapsed := time.Since(w.start)
	if d, ok := ctx.Deadline(); ok {
		elapsed = w.r.o.StepTimeout - time.Until(d)
	}
	elapsed = elapsed.Round(time.Second)
	if len(seen) > 100 {
		seen = seen[:97] + "..."
	}
	if w.r.o.Progress != nil {
		line := fmt.Sprintf("waiting for %s: %s of the step's %s", w.what, elapsed, w.r.o.StepTimeout)
		if seen != "" {
			line += "; " + seen
		}
		fmt.Fprint(w.r.o.Progress, "\r\033[K"+line)
		w.shown = true
		return nil
	}
	if w.logged.IsZero() || time.Since(w.logged) >= logEvery {
		w.logged = time.Now()
		w.r.lg.Info("waiting", zap.String("for", w.what), zap.Stringer("elapsed", elapsed),
			zap.Stringer("step-timeout", w.r.o.StepTimeout), zap.String("seen", seen))
	}
	return nil
}

// done clears the progress line, if the wait showed one.
func (w *wait) done() {
	if w.shown {
		fmt.Fprint(w.r.o.Progress, "\r\033[K")
	}
}
