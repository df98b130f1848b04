package server

import (
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// servingStoppedMsg is what embedded etcd logs, at error level, for each
// listener that stops serving, including when it is closed on purpose.
const servingStoppedMsg = "setting up serving from embedded etcd failed."

// quietStop wraps lg so that, once stopping is set, etcd's reports of
// listeners closed by the shutdown itself are logged at info level: a
// normal stop logs nothing at error level. Every other entry is unchanged.
func quietStop(lg *zap.Logger, stopping *atomic.Bool) *zap.Logger {
	return lg.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return &quietStopCore{Core: c, stopping: stopping}
	}))
}

type quietStopCore struct {
	zapcore.Core
	stopping *atomic.Bool
}

func (c *quietStopCore) With(fields []zapcore.Field) zapcore.Core {
	return &quietStopCore{Core: c.Core.With(fields), stopping: c.stopping}
}

func (c *quietStopCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if ent.Level == zapcore.ErrorLevel && ent.Message == servingStoppedMsg && c.stopping.Load() {
		ent.Level = zapcore.InfoLevel
	}
	return c.Core.Check(ent, ce)
}
