package migrate

import (
	"strings"
	"testing"
)

func TestOnThisHost(t *testing.T) {
	for u, want := range map[string]bool{
		"http://127.0.0.1:2380": true, "https://localhost:2380": true, "http://[::1]:2380": true,
		"http://192.0.2.1:2380": false, "https://node4.example:2380": false, "::": false,
	} {
		if got := onThisHost(u); got != want {
			t.Errorf("onThisHost(%q) = %v, want %v", u, got, want)
		}
	}
}

// TestNewMemberErrorNamesTheDataDir: removed again, a member's data dir is
// stale; the error says what a rerun does with it, or what to do by hand.
func TestNewMemberErrorNamesTheDataDir(t *testing.T) {
	e := &NewMemberError{Member: "A", Action: WaitCaughtUp, Seen: "applied index 3", RemovedAgain: true, DataDir: "/var/lib/etcd/A"}
	for _, want := range []string{"before a rerun, move its data dir /var/lib/etcd/A aside on its host", "{stale-data-dir}"} {
		if !strings.Contains(e.Error(), want) {
			t.Errorf("%q lacks %q", e.Error(), want)
		}
	}
	e.OnThisHost = true
	if want := "a rerun moves its data dir /var/lib/etcd/A aside"; !strings.Contains(e.Error(), want) {
		t.Errorf("%q lacks %q", e.Error(), want)
	}
}
