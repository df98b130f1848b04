package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcdops/internal/etcdtest"
)

// A learner takes no backup or defrag slot (etcd refuses its writes); a
// voter claims as usual.
func TestLearnerTakesNoSlot(t *testing.T) {
	specs := etcdtest.SpecsNamed(t, t.TempDir(), "v", "l")
	specs[0].InitialCluster = strings.Split(specs[0].InitialCluster, ",")[0]
	voter := etcdtest.StartEmbeddedSpecs(t, specs[:1])
	etcdtest.Eventually(t, 30*time.Second, func() error {
		_, err := voter.Client().MemberAddAsLearner(context.Background(), []string{specs[1].PeerURL})
		return err
	})
	specs[1].ClusterState = "existing"
	learner := etcdtest.StartEmbeddedSpecs(t, specs[1:])

	for _, m := range []*etcdtest.EmbeddedMember{voter.Members[0], learner.Members[0]} {
		asked := false
		won, err := votersClaim(m.Etcd, func(context.Context, string, time.Time) (bool, error) {
			asked = true
			return true, nil
		})(context.Background(), "t", time.Now())
		isLearner := m.Spec.Name == "l"
		if err != nil || won == isLearner || asked == isLearner {
			t.Errorf("member %s: won %v, claim asked %v, err %v; want a claim only by the voter", m.Spec.Name, won, asked, err)
		}
	}
}
