package pitr_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/etcdops/etcdops/internal/etcdtest"
	"github.com/etcdops/etcdops/internal/pitrtest"
	"github.com/etcdops/etcdops/pitr"
)

// A schedule's catch-up snapshot is named after the slot it was due in,
// maybe an hour before it was taken: as a restore's base, its time is
// when it was taken, so that a time before that is refused instead of
// restored to the snapshot's later state.
func TestBaseTimeIsWhenTheSnapshotWasTaken(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.StartEmbedded(t, 1)
	etcdtest.Put(t, c.Client(), "k", "v")
	_, store := pitrtest.FileBucket(t)
	before := time.Now()
	slot := before.Add(-time.Hour).UTC().Truncate(time.Hour)
	m := pitrtest.Save(t, store, c.Endpoints(), "t", slot)
	l, err := pitr.List(ctx, store, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Bases) != 1 || l.Bases[0].Time.Before(before) || !m.Time.Equal(slot) {
		t.Fatalf("bases %+v of a snapshot named %s, taken after %s", l.Bases, m.Name, before.UTC())
	}
	_, err = pitr.AtTime(l, slot.Add(time.Minute), func(pitr.SegmentName) ([]pitr.Revision, error) { return nil, nil })
	if !errors.Is(err, pitr.ErrOutOfRange) {
		t.Errorf("a time after the slot, before the snapshot was taken: %v, expected %v", err, pitr.ErrOutOfRange)
	}
}
