package systemd

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Defaults of a Backup; the ones that contain %s take its name.
const (
	DefaultBackupEnvFile   = "/etc/etcdops/backup-%s.env"
	DefaultBackupUnit      = "etcdops-backup-%s"
	DefaultOnCalendar      = "hourly"
	DefaultRandomizedDelay = "5min"
)

// Backup describes scheduled backups run by systemd: either a service that
// runs the `etcdops schedule` daemon, or (Timer) a oneshot service that runs
// `etcdops backup save` and a timer that starts it.
type Backup struct {
	Name string // names the units etcdops-backup-<name>.service and .timer
	// Args are the flags of `etcdops schedule` (or, with Timer, of
	// `etcdops backup save`), as on a command line.
	Args  []string
	Timer bool
	// OnCalendar and RandomizedDelay are the timer's, in systemd's syntax.
	OnCalendar      string
	RandomizedDelay string

	Binary  string // defaults to DefaultBinary
	User    string // defaults to DefaultUser
	Group   string // defaults to DefaultGroup
	EnvFile string // defaults to /etc/etcdops/backup-<name>.env; may not exist
}

var backupName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// SetDefaults fills the fields that are empty and have a default.
func (b *Backup) SetDefaults() {
	def := func(field *string, value string) {
		if *field == "" {
			*field = value
		}
	}
	def(&b.Binary, DefaultBinary)
	def(&b.User, DefaultUser)
	def(&b.Group, DefaultGroup)
	def(&b.EnvFile, fmt.Sprintf(DefaultBackupEnvFile, b.Name))
	if b.Timer {
		def(&b.OnCalendar, DefaultOnCalendar)
		def(&b.RandomizedDelay, DefaultRandomizedDelay)
	}
}

// Validate checks a Backup after SetDefaults.
func (b Backup) Validate() error {
	if !backupName.MatchString(b.Name) {
		return fmt.Errorf("name %q: expected letters, digits, '.', '_' and '-'", b.Name)
	}
	if len(b.Args) == 0 {
		return errors.New("no etcdops flags: give those of backup save (timer) or schedule after --")
	}
	has := func(flag string) bool {
		return slices.ContainsFunc(b.Args, func(a string) bool { return a == flag || strings.HasPrefix(a, flag+"=") })
	}
	switch {
	case b.Timer && (has("--cron") || has("--config")):
		return errors.New("--cron/--config: the timer schedules backup save; give OnCalendar instead")
	case b.Timer && has("--defrag-cron"):
		return errors.New("--defrag-cron: the timer runs backup save; a scheduled defrag needs the daemon (no --timer)")
	case !b.Timer && !has("--cron") && !has("--config") && !has("--defrag-cron"):
		return errors.New("etcdops schedule needs --cron or --config among its flags (or --defrag-cron)")
	case !b.Timer && (b.OnCalendar != "" || b.RandomizedDelay != ""):
		return errors.New("on-calendar and randomized-delay are the timer's: add the timer")
	}
	for _, f := range []struct{ name, v string }{{"on-calendar", b.OnCalendar}, {"randomized-delay", b.RandomizedDelay}} {
		if strings.ContainsAny(f.v, "\n%") {
			return fmt.Errorf("%s %q: expected one line without %%", f.name, f.v)
		}
	}
	return nil
}

// Files renders the units: the service, and with Timer the timer.
func (b Backup) Files() ([]File, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	unit := fmt.Sprintf(DefaultBackupUnit, b.Name)
	command := "schedule"
	if b.Timer {
		command = "backup save"
	}
	exec := []string{b.Binary}
	exec = append(exec, strings.Fields(command)...)
	exec = append(exec, b.Args...)
	writes := bucketDirs(b.Args)
	protectHome := "yes"
	for _, d := range writes {
		if d == "/root" || strings.HasPrefix(d, "/root/") || d == "/home" || strings.HasPrefix(d, "/home/") {
			protectHome = "no"
		}
	}
	data := map[string]any{
		"Name": b.Name, "Timer": b.Timer, "User": b.User, "Group": b.Group, "EnvFile": b.EnvFile,
		"ExecStart": execLine(exec), "ReadWritePaths": writes, "StateDirectories": []string(nil), "ProtectHome": protectHome,
		"OnCalendar": b.OnCalendar, "RandomizedDelay": b.RandomizedDelay,
		"ServiceUnit": unit + ".service", "TimerUnit": unit + ".timer",
	}
	svc, err := render("backup.service.tmpl", data)
	if err != nil {
		return nil, err
	}
	files := []File{{Path: UnitDir + "/" + unit + ".service", Mode: 0o644, Data: svc}}
	if b.Timer {
		tmr, err := render("backup.timer.tmpl", data)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: UnitDir + "/" + unit + ".timer", Mode: 0o644, Data: tmr})
	}
	return files, nil
}

// bucketDirs are the directories of file:// buckets among the --to flags
// of args: the only places the sandboxed service writes to.
func bucketDirs(args []string) []string {
	var dirs []string
	for i, a := range args {
		v, ok := strings.CutPrefix(a, "--to=")
		if !ok && a == "--to" && i+1 < len(args) {
			v, ok = args[i+1], true
		}
		if u, err := url.Parse(v); ok && err == nil && u.Scheme == "file" && u.Path != "" {
			dirs = append(dirs, u.Path)
		}
	}
	return dirs
}

// execLine joins args into a systemd command line: arguments with spaces,
// quotes or backslashes are double-quoted and escaped, and the specifier
// and variable characters % and $ are doubled.
func execLine(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		a = strings.NewReplacer("%", "%%", "$", "$$").Replace(a)
		if a == "" || strings.ContainsAny(a, " \t\"'\\;") {
			a = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
