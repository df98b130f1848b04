package main

import (
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdops/etcdops/internal/etcdtest"
)

// BenchmarkHealth measures the two goals of `etcdops health` on a
// three-member stock etcd cluster, running the binaries as operators do:
//
//   - dead: 5 endpoints, the 3 members, a closed loopback port and a
//     loopback listener that accepts connections and never answers; the run
//     must end within --command-timeout + 50 ms (metric over-timeout-ms:
//     the process's wall time; check-over-timeout-ms: the check's own, as
//     the report's duration_seconds says).
//   - live: the 3 members, etcdops health against one `etcdctl endpoint
//     status` run, interleaved (metrics etcdops-ms, etcdctl-ms, ratio), with
//     the check's own duration (etcdops-check-ms) and the binary's start-up
//     cost, `etcdops version` (etcdops-version-ms).
//
// Run: scripts/test.sh -run '^$' -bench BenchmarkHealth -benchtime 20x ./cmd/etcdops/
func BenchmarkHealth(b *testing.B) {
	c := etcdtest.StartStockCluster(b, 3)
	live := c.Endpoints()
	dead := append(slices.Clone(live), etcdtest.FreeAddr(b), "http://"+benchSilentListener(b))
	bin, ctl := etcdtest.EtcdopsBin(b), etcdtest.Tool(b, "etcdctl")

	b.Run("dead", func(b *testing.B) {
		const timeout = time.Second
		var over, checkOver []time.Duration
		for b.Loop() {
			took, out := timeRun(b, bin, []int{1}, "health", "--endpoints="+strings.Join(dead, ","), "--command-timeout="+timeout.String(), "-w", "json")
			over = append(over, took-timeout)
			checkOver = append(checkOver, reportDuration(b, out)-timeout)
		}
		b.ReportMetric(ms(median(over)), "over-timeout-ms")
		b.ReportMetric(ms(slices.Max(over)), "max-over-timeout-ms")
		b.ReportMetric(ms(median(checkOver)), "check-over-timeout-ms")
	})
	b.Run("live", func(b *testing.B) {
		var ours, theirs, checks, startup []time.Duration
		i := 0
		for b.Loop() {
			runOurs := func() {
				took, out := timeRun(b, bin, []int{0}, "health", "--endpoints="+strings.Join(live, ","), "-w", "json")
				ours = append(ours, took)
				checks = append(checks, reportDuration(b, out))
				took, _ = timeRun(b, bin, []int{0}, "version")
				startup = append(startup, took)
			}
			runTheirs := func() {
				took, _ := timeRun(b, ctl, []int{0}, "--endpoints="+strings.Join(live, ","), "endpoint", "status", "-w", "json")
				theirs = append(theirs, took)
			}
			if i%2 == 0 {
				runOurs()
				runTheirs()
			} else {
				runTheirs()
				runOurs()
			}
			i++
		}
		b.ReportMetric(ms(median(ours)), "etcdops-ms")
		b.ReportMetric(ms(median(theirs)), "etcdctl-ms")
		b.ReportMetric(float64(median(ours))/float64(median(theirs)), "ratio")
		b.ReportMetric(ms(median(checks)), "etcdops-check-ms")
		b.ReportMetric(ms(median(startup)), "etcdops-version-ms")
	})
}

// timeRun runs bin with args, fails unless it exits with one of codes, and
// returns its wall time and stdout.
func timeRun(b *testing.B, bin string, codes []int, args ...string) (time.Duration, []byte) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, _ := cmd.Output()
	took := time.Since(start)
	if !slices.Contains(codes, cmd.ProcessState.ExitCode()) {
		b.Fatalf("%s %v: exit %d\n%s%s", bin, args, cmd.ProcessState.ExitCode(), out, stderr.String())
	}
	return took, out
}

// reportDuration returns the check's own duration from a JSON report.
func reportDuration(b *testing.B, out []byte) time.Duration {
	var doc struct {
		Duration float64 `json:"duration_seconds"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		b.Fatal(err)
	}
	return time.Duration(doc.Duration * float64(time.Second))
}

func benchSilentListener(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	})
	b.Cleanup(func() {
		l.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
