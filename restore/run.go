package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/schema"

	"github.com/etcdops/etcdops/internal/atomicfile"
)

// Options say how Run writes.
type Options struct {
	// MoveAside renames an existing non-empty data dir (and config files
	// that differ) to <path>.old-<UTC time> instead of refusing to restore.
	MoveAside bool
	// DryRun stops after the checks that precede writing.
	DryRun bool
	Logger *zap.Logger
	Now    func() time.Time

	// skipSpaceCheck lets tests run into a full filesystem.
	skipSpaceCheck bool
}

// Result is what Run did, or with DryRun would do.
type Result struct {
	Snapshot *Snapshot `json:"snapshot"`
	Cluster  *Plan     `json:"cluster"`
	// Revision is the restored members' revision: the snapshot's plus any bump.
	Revision int64          `json:"revision"`
	Members  []MemberResult `json:"members"`
	DryRun   bool           `json:"dry_run"`
	Duration string         `json:"duration,omitempty"`
}

// MemberResult is what Run wrote for one member.
type MemberResult struct {
	Name       string `json:"name"`
	DataDir    string `json:"data_dir"`
	ConfigFile string `json:"config_file"`
	EnvFile    string `json:"env_file"`
	// MovedAside maps existing paths to where they were (in a dry run:
	// would be) moved.
	MovedAside map[string]string `json:"moved_aside,omitempty"`
	// Database says how its database was written: DBRestored, DBReflink
	// or DBCopy.
	Database string `json:"database,omitempty"`
	// Checked says how its key space was checked against the snapshot:
	// CheckedSnapshot, CheckedKVHash or DBReflink (shares the blocks of the
	// first member's checked database; size and meta pages compared).
	Checked string `json:"checked,omitempty"`
}

// How a member's key space was checked against the snapshot.
const (
	// CheckedSnapshot: etcd's restore copied it from the snapshot whose
	// sha256 and pages were checked; its transactions after
	// the copy (members, consistent index, a revision bump) leave the
	// earlier revisions alone, so the key space is not read again.
	CheckedSnapshot = "snapshot"
	// CheckedKVHash: every revision's key and value read back and hashed
	// (crc32c), equal to the snapshot's.
	CheckedKVHash = "kv-hash"
)

// walReserve is the room a member needs besides its database: etcd
// preallocates a 64 MB WAL segment, and a spare one beside it.
const walReserve = 129 << 20

func (o Options) logger() *zap.Logger {
	if o.Logger == nil {
		return zap.NewNop()
	}
	return o.Logger
}

func (o Options) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// Check looks at the targets before anything is written and returns the
// Result that Run would produce: it refuses a non-empty data dir (unless
// MoveAside), a config file that differs (unless MoveAside), a target that
// cannot be written and a filesystem without room for the databases.
func Check(p *Plan, s *Snapshot, opts Options) (*Result, error) {
	res := &Result{Snapshot: s, Cluster: p, DryRun: opts.DryRun}
	stamp := opts.now().UTC().Format(asideStamp)
	need := map[unix.Fsid]int64{}
	free := map[unix.Fsid]int64{}
	where := map[unix.Fsid]string{}
	for _, m := range p.Targets() {
		mr := MemberResult{Name: m.Name, DataDir: m.DataDir, ConfigFile: m.ConfigFile, EnvFile: m.EnvFile}
		if err := checkTarget(m.DataDir, nil, opts.MoveAside, stamp, &mr); err != nil {
			return nil, err
		}
		if err := checkTarget(m.ConfigFile, p.ConfigYAML(m), opts.MoveAside, stamp, &mr); err != nil {
			return nil, err
		}
		if err := checkTarget(m.EnvFile, p.EnvFile(m), opts.MoveAside, stamp, &mr); err != nil {
			return nil, err
		}
		for _, path := range []string{m.DataDir, m.ConfigFile} {
			dir := existingAncestor(filepath.Dir(path))
			if err := unix.Access(dir, unix.W_OK); err != nil {
				return nil, fmt.Errorf("cannot write %s: %s: %w", path, dir, err)
			}
		}
		var st unix.Statfs_t
		dir := existingAncestor(filepath.Dir(m.DataDir))
		if err := unix.Statfs(dir, &st); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		need[st.Fsid] += s.Size + walReserve
		free[st.Fsid] = int64(st.Bavail) * st.Bsize
		if where[st.Fsid] == "" {
			where[st.Fsid] = dir
		}
		res.Members = append(res.Members, mr)
	}
	for fsid, n := range need {
		if free[fsid] < n && !opts.skipSpaceCheck {
			return nil, fmt.Errorf("not enough space on the filesystem of %s: %s free, the data dirs need %s (database %s and WALs %s per member)",
				where[fsid], humanize.IBytes(uint64(free[fsid])), humanize.IBytes(uint64(n)), humanize.IBytes(uint64(s.Size)), humanize.IBytes(walReserve))
		}
	}
	return res, nil
}

// checkTarget refuses to write path when it exists, unless it is an empty
// directory, holds want already, or moveAside allows moving it away.
func checkTarget(path string, want []byte, moveAside bool, stamp string, mr *MemberResult) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	}
	if want == nil && fi.IsDir() {
		if empty, err := emptyDir(path); err != nil || empty {
			return err
		}
	}
	if want != nil && fi.Mode().IsRegular() {
		if have, err := os.ReadFile(path); err == nil && string(have) == string(want) {
			return nil
		}
	}
	if !moveAside {
		what := "config file " + path + " exists with other settings"
		if want == nil {
			what = "data dir " + path + " exists and is not empty"
		}
		return fmt.Errorf("%s: %w", what, ErrWouldOverwrite)
	}
	aside := asidePath(path, stamp)
	if mr.MovedAside == nil {
		mr.MovedAside = map[string]string{}
	}
	mr.MovedAside[path] = aside
	return nil
}

// Run writes the data dirs and configurations of the plan's targets from a
// checked snapshot. It runs Check first, and stops there with DryRun.
//
// Every data dir is written as <dir>.restoring-<random> next to where it
// goes, checked, and renamed into place only once all of them are complete,
// so that an interrupted restore leaves nothing that looks like a data dir;
// a rerun removes what it left. The first member's data dir is written by
// etcd's own restore (etcdutl's snapshot.Restore) from the snapshot. The
// others are written by etcd's restore from a tiny seed database, which
// gives them their own WAL and raft snapshot, and then receive a reflink or
// copy of the first member's database: etcd's restore writes the same
// database contents for every member of one initial cluster (often byte for
// byte; etcd's backend also commits on a timer, so bolt's page layout can
// vary between runs), so the result is that of
// one full restore per member at the cost of one. Each data dir is checked
// on another goroutine as soon as it is written.
func Run(ctx context.Context, p *Plan, s *Snapshot, opts Options) (*Result, error) {
	start := time.Now()
	res, err := Check(p, s, opts)
	if err != nil {
		return nil, err
	}
	if err := s.Inspect(); err != nil {
		return nil, err
	}
	res.Revision = s.Revision + int64(p.RevisionBump)
	if opts.DryRun {
		return res, nil
	}
	lg := opts.logger()
	targets := p.Targets()
	for _, m := range targets {
		removeStale(m.DataDir, lg)
	}
	// Whatever is still under a temporary name at the end goes; the data
	// dirs that were renamed into place are no longer there.
	var temps []string
	defer func() {
		for _, t := range temps {
			os.RemoveAll(t)
		}
	}()
	dirs, err := writeDataDirs(ctx, p, s, res, lg, &temps)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, m := range targets {
		if err := moveAside(res.Members[i].MovedAside, m.DataDir); err != nil {
			return nil, fmt.Errorf("member %s: %w", m.Name, err)
		}
		if err := os.Rename(dirs[i], m.DataDir); err != nil {
			return nil, fmt.Errorf("member %s: %w", m.Name, err)
		}
		if err := atomicfile.SyncDir(filepath.Dir(m.DataDir)); err != nil {
			return nil, fmt.Errorf("member %s: %w", m.Name, err)
		}
	}
	for i, m := range targets {
		for path, data := range map[string][]byte{m.ConfigFile: p.ConfigYAML(m), m.EnvFile: p.EnvFile(m)} {
			if err := moveAside(res.Members[i].MovedAside, path); err != nil {
				return nil, fmt.Errorf("member %s: %w", m.Name, err)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return nil, fmt.Errorf("member %s: %w", m.Name, err)
			}
			if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
				return nil, fmt.Errorf("member %s: %w", m.Name, err)
			}
		}
	}
	res.Duration = time.Since(start).Round(time.Millisecond).String()
	lg.Info("restored", zap.Int("members", len(targets)), zap.Int64("revision", res.Revision), zap.String("took", res.Duration))
	return res, nil
}

// writeDataDirs writes every target's data dir under a temporary name,
// adding each temporary dir to temps, and checks each on another goroutine
// as soon as it is complete. It returns the dirs in target order.
func writeDataDirs(ctx context.Context, p *Plan, s *Snapshot, res *Result, lg *zap.Logger, temps *[]string) ([]string, error) {
	targets := p.Targets()
	dirs := make([]string, len(targets))
	var checks errgroup.Group
	check := func(i int) {
		m, mr := targets[i], &res.Members[i]
		checks.Go(func() error {
			if err := privatize(dirs[i]); err != nil {
				return fmt.Errorf("member %s: %w", m.Name, err)
			}
			full := mr.Database == DBCopy
			if _, err := checkDataDir(dirs[i], p, m, s, full); err != nil {
				return fmt.Errorf("member %s: written data dir is wrong: %w", m.Name, err)
			}
			mr.Checked = CheckedKVHash
			switch mr.Database {
			case DBRestored:
				mr.Checked = CheckedSnapshot
			case DBReflink:
				if err := sameStart(dbPath(dirs[0]), dbPath(dirs[i]), 2*os.Getpagesize()); err != nil {
					return fmt.Errorf("member %s: reflinked %w", m.Name, err)
				}
				mr.Checked = DBReflink
			}
			return nil
		})
	}
	err := func() error {
		var seed string
		for i, m := range targets {
			if err := ctx.Err(); err != nil {
				return err
			}
			tmp, err := tempDataDir(m.DataDir)
			if err != nil {
				return fmt.Errorf("member %s: %w", m.Name, err)
			}
			*temps, dirs[i] = append(*temps, tmp), tmp
			if i == 0 {
				lg.Info("restoring the database", zap.String("member", m.Name), zap.String("snapshot", s.Source),
					zap.String("size", humanize.IBytes(uint64(s.Size))))
				if err := etcdRestore(p, m, s.path, tmp, true, lg); err != nil {
					return fmt.Errorf("member %s: %w", m.Name, err)
				}
				res.Members[i].Database = DBRestored
				lg.Info("member written", zap.String("member", m.Name), zap.String("database", DBRestored))
				check(i)
				continue
			}
			if seed == "" {
				dir, err := tempDataDir(targets[0].DataDir)
				if err != nil {
					return fmt.Errorf("member %s: %w", m.Name, err)
				}
				*temps = append(*temps, dir)
				if seed, err = seedDB(dir, lg); err != nil {
					return fmt.Errorf("member %s: seed database: %w", m.Name, err)
				}
			}
			if err := etcdRestore(p, m, seed, tmp, false, lg); err != nil {
				return fmt.Errorf("member %s: %w", m.Name, err)
			}
			kind, err := cloneFile(dbPath(dirs[0]), dbPath(tmp))
			if err != nil {
				return fmt.Errorf("member %s: database: %w", m.Name, err)
			}
			res.Members[i].Database = kind
			lg.Info("member written", zap.String("member", m.Name), zap.String("database", kind))
			check(i)
		}
		return nil
	}()
	if cerr := checks.Wait(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ctx.Err()
	}
	return dirs, err
}

// etcdRestore runs etcd's restore of one member into dir. etcd's storage
// code exits the process or panics on some write errors (a full disk);
// here those become errors, so that Run can remove what it wrote.
func etcdRestore(p *Plan, m Member, from, dir string, bump bool, lg *zap.Logger) (err error) {
	elg := lg.WithOptions(zap.IncreaseLevel(zapcore.WarnLevel), zap.WithFatalHook(zapcore.WriteThenPanic)).Named("etcd")
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("etcd's restore: %v", r)
		}
	}()
	cfg := snapshot.RestoreConfig{
		SnapshotPath: from, Name: m.Name, OutputDataDir: dir, PeerURLs: m.PeerURLs,
		InitialCluster: p.InitialCluster, InitialClusterToken: p.Token,
		// OpenSnapshot checked the snapshot's sha256 (or was told not to).
		SkipHashCheck:   true,
		InitialMmapSize: backend.InitialMmapSize,
	}
	if bump {
		cfg.RevisionBump, cfg.MarkCompacted = p.RevisionBump, p.MarkCompacted
	}
	return snapshot.NewV3(elg).Restore(cfg)
}

// seedDB writes a tiny etcd database into dir for the members after the
// first: etcd's restore of it writes their WAL and raft snapshot, which do
// not depend on the database, and Run then gives them the first member's
// database.
func seedDB(dir string, lg *zap.Logger) (path string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	path = filepath.Join(dir, "seed.db")
	lg = lg.WithOptions(zap.IncreaseLevel(zapcore.WarnLevel), zap.WithFatalHook(zapcore.WriteThenPanic))
	be := backend.NewDefaultBackend(lg, path)
	tx := be.BatchTx()
	schema.CreateMetaBucket(tx)
	tx.LockOutsideApply()
	tx.UnsafeCreateBucket(schema.Key)
	tx.Unlock()
	schema.NewMembershipBackend(lg, be).MustCreateBackendBuckets()
	be.ForceCommit()
	return path, be.Close()
}

func dbPath(dataDir string) string { return filepath.Join(dataDir, "member", "snap", "db") }

// tempDataDir makes <dir>.restoring-<random>, private, in dir's parent.
func tempDataDir(dir string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return "", err
	}
	return os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".restoring-")
}

// removeStale removes what an interrupted restore to dir left.
func removeStale(dir string, lg *zap.Logger) {
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), globEscape(filepath.Base(dir))+".restoring-*"))
	for _, s := range stale {
		lg.Info("removing what an interrupted restore left", zap.String("dir", s))
		os.RemoveAll(s)
	}
}

func globEscape(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r == '*' || r == '?' || r == '[' || r == '\\' {
			out = append(out, '\\')
		}
		out = append(out, r)
	}
	return string(out)
}

// moveAside renames path to where aside says, if it says.
func moveAside(aside map[string]string, path string) error {
	to, ok := aside[path]
	if !ok {
		return nil
	}
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return os.Rename(path, to)
}
