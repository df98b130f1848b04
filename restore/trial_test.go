package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcdops/backup"
)

// TestTrial restores a stock etcdctl snapshot into a trial member and compares what it serves with
// a manifest; a manifest it does not match fails, a context past its deadline stops it, and
// nothing is left beside the snapshot either way.
func TestTrial(t *testing.T) {
	path, _, rev := makeSnapshot(t, 20)
	good := &backup.Manifest{Revision: rev, TotalKeys: 20}
	if err := Trial(context.Background(), path, good, nil); err != nil {
		t.Fatalf("trial: %v", err)
	}
	if err := Trial(context.Background(), path, &backup.Manifest{Revision: rev + 1, TotalKeys: 20}, nil); err == nil || !strings.Contains(err.Error(), "manifest says") {
		t.Errorf("trial against a wrong revision: %v", err)
	}
	if err := Trial(context.Background(), path, &backup.Manifest{Revision: backup.RevisionUnknown, TotalKeys: -1}, nil); err != nil {
		t.Errorf("trial against a manifest without revision: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	if err := Trial(ctx, path, good, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("trial past its deadline: %v, want DeadlineExceeded", err)
	}
	left, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(left) != 1 {
		t.Errorf("left beside the snapshot: %v %v", left, err)
	}
}
