package systemd

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/etcdops/etcdops/internal/atomicfile"
)

// ErrDiffers is returned by Install for an existing file whose content differs
// from the one to install, unless it is forced.
var ErrDiffers = errors.New("exists with different content")

// Install writes files below root (like systemctl --root; "" or "/" is the
// running system), creating missing directories with mode 0755. Each file is
// written atomically: to name.part, synced, then renamed over name.
//
// Existing files with the same content are rewritten, which also resets their
// mode; if any file exists with a different content, Install writes nothing
// and returns an error wrapping ErrDiffers, unless force is set.
func Install(root string, files []File, force bool) error {
	for _, f := range files {
		if !filepath.IsAbs(f.Path) {
			return fmt.Errorf("install %s: path is not absolute", f.Path)
		}
		p := filepath.Join(root, f.Path)
		old, err := os.ReadFile(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fmt.Errorf("install %s: %w", p, err)
		case !force && !bytes.Equal(old, f.Data):
			return fmt.Errorf("install %s: %w", p, ErrDiffers)
		}
	}
	for _, f := range files {
		p := filepath.Join(root, f.Path)
		if err := writeFile(p, f.Data, f.Mode); err != nil {
			return fmt.Errorf("install %s: %w", p, err)
		}
	}
	return nil
}

// writeFile replaces path atomically by a file with data and exactly mode,
// creating its missing directories.
func writeFile(path string, data []byte, mode fs.FileMode) error {
	if err := mkdirs(filepath.Dir(path)); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, mode)
}

// mkdirs creates dir and its missing parents with mode 0755, whatever the umask.
func mkdirs(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirs(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	return os.Chmod(dir, 0o755)
}
