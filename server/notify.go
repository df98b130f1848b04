package server

import (
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
)

// notifier speaks systemd's notify protocol (sd_notify) to the socket in
// NOTIFY_SOCKET. Without that variable every call does nothing, as with etcd.
type notifier struct {
	lg    *zap.Logger
	tick  <-chan time.Time
	timer *time.Ticker
}

func newNotifier(lg *zap.Logger) *notifier {
	n := &notifier{lg: lg}
	// systemd asks for keep-alives at least every WATCHDOG_USEC; send them
	// twice as often, as sd_watchdog_enabled(3) recommends.
	if interval, err := daemon.SdWatchdogEnabled(false); err != nil {
		lg.Warn("ignoring invalid systemd watchdog settings", zap.Error(err))
	} else if interval > 0 {
		n.timer = time.NewTicker(interval / 2)
		n.tick = n.timer.C
	}
	return n
}

// notify sends state, one or more newline-separated KEY=VALUE assignments.
func (n *notifier) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.lg.Warn("failed to notify systemd", zap.String("state", state), zap.Error(err))
	}
}

// watchdog ticks when a WATCHDOG=1 keep-alive is due; it never ticks when
// systemd's watchdog is off.
func (n *notifier) watchdog() <-chan time.Time { return n.tick }
