package etcdtest

import (
	"os/exec"
	"strings"
	"testing"
)

// Mount mounts a filesystem on a new temporary dir for the test, such as
// Mount(t, "-t", "tmpfs", "-o", "size=4m", "tmpfs"), and unmounts it when
// the test ends. It skips the test, saying why, where mounting is not
// permitted (not root, no mount(8)).
func Mount(t testing.TB, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", append(args, dir)...).CombinedOutput(); err != nil {
		t.Skipf("cannot mount %v here (%v: %s): this test needs root and mount(8)", args, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		// Lazily: etcd's wal.Create leaks its file when preallocation
		// fails, until this process exits.
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}
