package etcdtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWriterRecordsEveryAcknowledgedWrite(t *testing.T) {
	c := StartEmbedded(t, 3)
	w := StartWriter(t, c.Endpoints(), WriterConfig{Rate: 500, Duration: 2 * time.Second, ValueSize: 64})
	s := w.Wait(t)
	t.Log(s)
	if s.Failed != 0 || s.Acked != s.Sent {
		t.Fatalf("want every write acknowledged: %v", s)
	}
	if s.Sent < 900 || s.Rate() < 450 {
		t.Fatalf("want about 1000 writes at 500/s: %v", s)
	}
	w.Check(t, c.Endpoints())

	// The check must see a lost and a changed write.
	cli := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, w.prefix+"000000007"); err != nil {
		t.Fatal(err)
	}
	Put(t, cli, w.prefix+"000000011", "other")
	err := w.Verify(ctx, cli)
	if err == nil || !strings.Contains(err.Error(), "2 of ") ||
		!strings.Contains(err.Error(), "000000007 missing") || !strings.Contains(err.Error(), `000000011 = "other"`) {
		t.Fatalf("verify after losing two writes: %v", err)
	}
}

func TestWriterRecordsFailedWrites(t *testing.T) {
	c := StartEmbedded(t, 3)
	w := StartWriter(t, c.Endpoints(), WriterConfig{Rate: 200, Duration: 20 * time.Second, Timeout: 500 * time.Millisecond})
	Eventually(t, 10*time.Second, func() error {
		if s := w.Stats(); s.Acked < 50 {
			return fmt.Errorf("%v", s)
		}
		return nil
	})
	c.Members[1].Stop()
	c.Members[2].Stop()
	Eventually(t, 10*time.Second, func() error {
		if s := w.Stats(); s.Failed < 10 {
			return fmt.Errorf("%v", s)
		}
		return nil
	})
	s := w.Stop()
	t.Log(s)
	if s.Failed != len(s.Failures) || s.Acked+s.Failed != s.Sent {
		t.Fatalf("counts do not add up: %v", s)
	}
	for _, f := range s.Failures {
		if f.Err == nil || !strings.HasPrefix(f.Key, w.prefix) {
			t.Fatalf("failure without error or key: %+v", f)
		}
	}
	c.Members[1].Restart(t)
	c.Members[2].Restart(t)
	w.Check(t, c.Endpoints())
}

func TestQuorumWatcherRecordsSamplesWithoutQuorum(t *testing.T) {
	c := StartEmbedded(t, 3)
	q := StartQuorumWatcher(t, c.Endpoints(), nil, time.Second)
	Eventually(t, 10*time.Second, func() error {
		s := q.Stats()
		switch {
		case len(s.Lost) > 0:
			return Stop(fmt.Errorf("sample without quorum in a healthy cluster: %v", s))
		case s.Samples < 5:
			return fmt.Errorf("%v", s)
		case !slices.Equal(s.Memberships, []string{"m0,m1,m2"}):
			return Stop(fmt.Errorf("want membership m0,m1,m2: %v", s))
		}
		return nil
	})
	c.Members[0].Stop()
	c.Members[1].Stop()
	Eventually(t, 10*time.Second, func() error {
		if s := q.Stats(); len(s.Lost) == 0 {
			return fmt.Errorf("no sample without quorum yet: %v", s)
		}
		return nil
	})
	s := q.Stop()
	t.Log(s)
	if s.Lost[0].Err == nil {
		t.Fatalf("sample without quorum has no error: %v", s)
	}
}
