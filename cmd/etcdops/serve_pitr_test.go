package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/objtest"
	"github.com/etcdops/etcdops/internal/pitrtest"
	"github.com/etcdops/etcdops/pitr"
)

// serve --backup-pitr: one member streams the log to MinIO; killed -9,
// another member takes over and the log goes on from the bucket's last
// revision, with no hole (segments of the two may overlap).
func TestServeBackupPITRTakeover(t *testing.T) {
	bucket := objtest.S3(t).NewBucket(t)
	c := etcdtest.StartServeCluster(t, 3, "--backup-cron", "@every 1h", "--backup-to", bucket, "--backup-tag", "t", "--backup-pitr", "--backup-compress")
	cli := etcdtest.NewClient(t, c.Endpoints()...)
	store := pitrtest.OpenBucket(t, bucket)
	ctx := context.Background()

	streamer := func() (string, error) {
		resp, err := cli.Get(ctx, pitr.ElectionPrefix+"t/", clientv3.WithFirstCreate()...)
		if err != nil || len(resp.Kvs) == 0 {
			return "", fmt.Errorf("no streamer elected (%v)", err)
		}
		return string(resp.Kvs[0].Value), nil
	}
	writeAndWait := func(n int, eps []string) int64 {
		t.Helper()
		wcli := etcdtest.NewClient(t, eps...)
		for i := range n {
			// A write may fail while the killed member's leadership moves: retry it.
			etcdtest.Eventually(t, 30*time.Second, func() error {
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				_, err := wcli.Put(pctx, fmt.Sprintf("k%03d", i%100), fmt.Sprint(i))
				return err
			})
		}
		var resp *clientv3.GetResponse
		etcdtest.Eventually(t, 30*time.Second, func() (err error) {
			resp, err = wcli.Get(ctx, "k000")
			return err
		})
		etcdtest.Eventually(t, 60*time.Second, func() error {
			last, err := pitr.LastLogged(ctx, store, "t")
			if err == nil && last < resp.Header.Revision {
				err = fmt.Errorf("log reaches %d, want %d", last, resp.Header.Revision)
			}
			return err
		})
		return resp.Header.Revision
	}

	var first string
	etcdtest.Eventually(t, 60*time.Second, func() (err error) {
		first, err = streamer()
		return err
	})
	writeAndWait(200, c.Endpoints())
	var killed *etcdtest.Process
	var survivors []string
	for _, p := range c.Procs {
		if p.Spec.Name == first {
			killed = p
		} else {
			survivors = append(survivors, p.Spec.ClientURL)
		}
	}
	if killed == nil {
		t.Fatalf("the elected streamer %q is no member", first)
	}
	killed.Kill(t)
	// Writes go on while the streaming seat is empty and after it is taken.
	end := writeAndWait(300, survivors)
	next, err := streamer()
	if err != nil || next == first {
		t.Fatalf("streamer after the kill: %q (%v), killed %q", next, err, first)
	}

	snap, err := store.Find(ctx, "latest", "t")
	if err != nil {
		t.Fatal(err)
	}
	l := readContiguousLog(t, store, "t", nil)
	if l.last < end {
		t.Fatalf("log ends at %d, before %d", l.last, end)
	}
	t.Logf("streamer %s killed, %s took over; %d segments (%d overlapping) from snapshot %s to revision %d",
		first, next, l.segments, l.overlaps, snap.Key(), l.last)
}
