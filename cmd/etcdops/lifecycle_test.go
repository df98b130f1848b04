package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/internal/etcdtest"
)

// notifySocket is a fake systemd: it receives sd_notify datagrams.
type notifySocket struct {
	path string
	msgs chan string
}

func newNotifySocket(t *testing.T) *notifySocket {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := &notifySocket{path: path, msgs: make(chan string, 1000)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	return n
}

// expect waits for a datagram containing want; it fails on one containing
// any of refuse first.
func (n *notifySocket) expect(t *testing.T, timeout time.Duration, want string, refuse ...string) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-n.msgs:
			for _, r := range refuse {
				if strings.Contains(m, r) {
					t.Fatalf("got %q before %q", m, want)
				}
			}
			if strings.Contains(m, want) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q from serve within %v", want, timeout)
		}
	}
}

func TestServeNotifiesSystemd(t *testing.T) {
	sd := newNotifySocket(t)
	specs := etcdtest.Specs(t, 3, t.TempDir())
	procs := make([]*etcdtest.Process, 3)
	for i, s := range specs {
		procs[i] = &etcdtest.Process{Spec: s, Binary: etcdtest.EtcdopsBin(t), Command: []string{"serve"}}
	}
	procs[0].Env = []string{"NOTIFY_SOCKET=" + sd.path, "WATCHDOG_USEC=400000"}
	procs[0].Start(t)

	// Alone, the first member reports that it waits, keeps the watchdog fed,
	// and is not ready.
	sd.expect(t, 10*time.Second, "STATUS=starting member m0", "READY=1")
	sd.expect(t, 10*time.Second, "STATUS=waiting for quorum: 2 of 3 members needed", "READY=1")
	sd.expect(t, 5*time.Second, "WATCHDOG=1", "READY=1")

	procs[1].Start(t)
	procs[2].Start(t)
	sd.expect(t, 60*time.Second, "READY=1")
	etcdtest.Etcdctl(t, []string{specs[0].ClientURL}, "put", "ready", "yes")
	sd.expect(t, 5*time.Second, "WATCHDOG=1")

	procs[0].Signal(t, syscall.SIGTERM)
	sd.expect(t, 10*time.Second, "STOPPING=1")
	if code := procs[0].Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
}

func TestServeLeaderHandsOverOnSIGTERM(t *testing.T) {
	c := etcdtest.StartServeCluster(t, 3)
	cli := etcdtest.NewClient(t, c.Endpoints()...)
	leader := findLeader(t, cli, c)

	leader.Signal(t, syscall.SIGTERM)
	if code := leader.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("leader exit %d after SIGTERM, want 0; output:\n%s", code, leader.Output())
	}
	// etcd's Stop moves leadership to a follower before the leader leaves.
	if out := leader.Output(); !strings.Contains(out, `"msg":"leadership transfer finished"`) {
		t.Errorf("the leader stopped without handing leadership over; output:\n%s", out)
	}
	var rest []string
	for _, p := range c.Procs {
		if p != leader {
			rest = append(rest, p.Spec.ClientURL)
		}
	}
	etcdtest.Etcdctl(t, rest, "put", "after-handover", "ok")
	checkLogs(t, leader.Output())
}

func findLeader(t *testing.T, cli *clientv3.Client, c *etcdtest.ProcessCluster) *etcdtest.Process {
	t.Helper()
	var leader *etcdtest.Process
	etcdtest.Eventually(t, 10*time.Second, func() error {
		for _, p := range c.Procs {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := cli.Status(ctx, p.Spec.ClientURL)
			cancel()
			if err != nil {
				return err
			}
			if st.Leader == st.Header.MemberId {
				leader = p
				return nil
			}
		}
		return context.DeadlineExceeded
	})
	return leader
}

func TestServeSecondSignalForcesExit(t *testing.T) {
	c := etcdtest.StartServeCluster(t, 1)
	p := c.Procs[0]
	// An open watch makes etcd's graceful stop wait for its request timeout
	// (several seconds), which leaves time for a second signal.
	watch := exec.Command(etcdtest.Tool(t, "etcdctl"), "--endpoints="+p.Spec.ClientURL, "watch", "k")
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { watch.Process.Kill(); watch.Wait() }()
	etcdtest.Eventually(t, 10*time.Second, func() error {
		return hasMetric(p.Spec.ClientURL, "etcd_debugging_mvcc_watcher_total 1")
	})

	p.Signal(t, syscall.SIGTERM)
	p.Signal(t, syscall.SIGTERM) // a copy, as `timeout` delivers: still graceful
	time.Sleep(2 * duplicateSignalWindow)
	if !p.Running() {
		t.Fatalf("graceful stop ended before the second signal could be sent; output:\n%s", p.Output())
	}
	start := time.Now()
	p.Signal(t, syscall.SIGINT)
	if code := p.Wait(t, 3*time.Second); code != 128+int(syscall.SIGINT) {
		t.Fatalf("exit %d after a second signal, want %d", code, 128+int(syscall.SIGINT))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("forced exit took %v", d)
	}
	if !strings.Contains(p.Output(), "second signal (interrupt), exiting without graceful shutdown") {
		t.Errorf("no message about the forced exit; output:\n%s", p.Output())
	}
}

// hasMetric returns nil when the member's /metrics has the line want.
func hasMetric(clientURL, want string) error {
	resp, err := http.Get(clientURL + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line == want {
			return nil
		}
	}
	return fmt.Errorf("no %q in %s/metrics", want, clientURL)
}
