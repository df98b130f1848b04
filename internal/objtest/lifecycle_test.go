package objtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
)

// helperEnv makes the test binary run helperMain instead of its tests.
const helperEnv = "OBJTEST_HELPER"

// helperMain is a child test process:
//   - "start" starts every server, prints "server PID DIR" for each, and
//     exits without stopping them, like a test binary that panics or is
//     killed by go test's timeout;
//   - "read" reads key "k" from each URL in OBJTEST_URLS and prints it.
func helperMain(mode string) int {
	switch mode {
	case "start":
		for _, s := range []*service{minioService, fakeGCSService, azuriteService} {
			srv, err := s.ensure()
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Printf("server %d %s\n", srv.cmd.Process.Pid, srv.dir)
		}
		return 0
	case "read":
		for _, u := range strings.Fields(os.Getenv("OBJTEST_URLS")) {
			b, err := blob.OpenBucket(context.Background(), u)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			data, err := b.ReadAll(context.Background(), "k")
			b.Close()
			if err != nil {
				fmt.Fprintf(os.Stderr, "read %s: %v\n", u, err)
				return 1
			}
			fmt.Printf("%s\n", data)
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "%s=%s: unknown mode\n", helperEnv, mode)
	return 2
}

func TestServersDieWithTestProcess(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=start")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	type started struct {
		pid int
		dir string
	}
	var servers []started
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var s started
		if _, err := fmt.Sscanf(sc.Text(), "server %d %s", &s.pid, &s.dir); err == nil {
			servers = append(servers, s)
		}
	}
	if len(servers) != 3 {
		t.Fatalf("child started %d servers, want 3; output:\n%s", len(servers), out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range servers {
		for alive(s.pid) {
			if time.Now().After(deadline) {
				t.Fatalf("server %d still runs after its test process exited", s.pid)
			}
			time.Sleep(pollEvery)
		}
	}
	sweep(filepath.Dir(servers[0].dir))
	for _, s := range servers {
		if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
			t.Errorf("data directory %s of a dead test process is still there after a sweep: %v", s.dir, err)
		}
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// TestEnvIsEnough checks that a process with nothing in its environment but
// PATH and Backend.Env can open the bucket URLs.
func TestEnvIsEnough(t *testing.T) {
	env := []string{"PATH=" + os.Getenv("PATH"), helperEnv + "=read"}
	var urls, want []string
	for _, b := range Backends(t) {
		if b.Ephemeral {
			continue
		}
		u := b.NewBucket(t)
		if err := open(t, u).WriteAll(t.Context(), "k", []byte(b.Name), nil); err != nil {
			t.Fatal(err)
		}
		urls = append(urls, u)
		want = append(want, b.Name)
		env = append(env, b.Env...)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(env, "OBJTEST_URLS="+strings.Join(urls, " "))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child with env %q: %v\n%s", cmd.Env, err, stderr.String())
	}
	if got := strings.Fields(string(out)); !slices.Equal(got, want) {
		t.Errorf("child read %q, want %q", got, want)
	}
}
