package etcdtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestEmbeddedClusterSurvivesAMemberRestart(t *testing.T) {
	c := StartEmbedded(t, 3)
	cli := c.Client()
	Put(t, cli, "k", "v1")

	c.Members[1].Stop()
	Put(t, NewClient(t, c.Endpoints()...), "k", "v2")
	c.Members[1].Restart(t)

	// A serializable read is answered by the restarted member alone.
	restarted := NewClient(t, c.Members[1].Spec.ClientURL)
	Eventually(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := restarted.Get(ctx, "k", clientv3.WithSerializable())
		if err != nil {
			return err
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v2" {
			return fmt.Errorf("restarted member has %v", resp.Kvs)
		}
		return nil
	})
}

func TestServeAndStockProcessClusters(t *testing.T) {
	for name, start := range map[string]func(testing.TB, int, ...string) *ProcessCluster{
		"etcdops serve": StartServeCluster, "stock etcd": StartStockCluster,
		"stock etcd 3.5": func(t testing.TB, n int, extra ...string) *ProcessCluster {
			return StartToolCluster(t, StockEtcd35, n, extra...)
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := start(t, 3)
			status := Etcdctl(t, c.Endpoints(), "endpoint", "status", "-w", "json")
			if want := map[bool]string{true: `"version":"3.5.35"`, false: `"version":"3.6.16"`}[name == "stock etcd 3.5"]; !strings.Contains(status, want) {
				t.Fatalf("endpoint status does not say %s: %s", want, status)
			}
			Etcdctl(t, c.Endpoints(), "put", "k", "v")
			c.Procs[0].Kill(t)
			if c.Procs[0].Running() {
				t.Fatal("killed member still running")
			}
			Eventually(t, 30*time.Second, func() error {
				_, err := RunEtcdctl(t, c.Endpoints()[1:], "put", "k", "v2", "--command-timeout=2s")
				return err
			})
			c.Procs[0].Start(t)
			c.Procs[0].WaitHealthy(t, 30*time.Second)
		})
	}
}
