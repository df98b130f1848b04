// Package backup takes etcd snapshots into buckets (gocloud.dev/blob) with a
// manifest each, and lists, verifies, fetches and prunes them by retention.
package backup

import (
	"regexp"
	"strings"
	"time"
)

// TimeLayout is the UTC time in a snapshot's name.
const TimeLayout = "2006-01-02_15-04-05"

// ManifestExt is appended to a snapshot's name to name its manifest.
const ManifestExt = ".json"

// Name is what a snapshot's object name says of it:
// <tag>_<YYYY-MM-DD_HH-MM-SS><ext>, such as etcd-1_2026-11-21_04-00-00.db.zst.
type Name struct {
	Tag  string
	Time time.Time
	// Ext tells the encoding: .db, .db.zst, .db.age or .db.zst.age.
	Ext string
}

// tagPattern is what a tag may hold: a member name made safe for object keys.
var tagPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*$`)

// nameRE matches a snapshot name; the tag may itself hold underscores
// only in the time's place, so the last "_date_time" splits it.
var nameRE = regexp.MustCompile(`^(.+)_(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})(\.db(?:\.zst)?(?:\.age)?)$`)

// ValidateTag checks that tag can stand in an object name.
func ValidateTag(tag string) error {
	if !tagPattern.MatchString(tag) {
		return inputErr(FieldTag, tag, "expected letters, digits, '.' and '-', starting with a letter or digit")
	}
	return nil
}

// SafeTag turns a member name into a tag: characters a tag may not hold
// become '-'.
func SafeTag(memberName string) string {
	var b strings.Builder
	for i, r := range memberName {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case (r == '.' || r == '-') && i > 0:
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	if b.Len() == 0 || !tagPattern.MatchString(b.String()) {
		return "etcd"
	}
	return b.String()
}

// String returns the object name (without any bucket prefix).
func (n Name) String() string {
	return n.Tag + "_" + n.Time.UTC().Format(TimeLayout) + n.Ext
}

// Manifest returns the object name of the snapshot's manifest.
func (n Name) Manifest() string { return n.String() + ManifestExt }

// ParseName parses an object name written by String. It reports false for
// names that are not snapshots (manifests, temporary or foreign objects).
func ParseName(s string) (Name, bool) {
	m := nameRE.FindStringSubmatch(s)
	if m == nil || !tagPattern.MatchString(m[1]) {
		return Name{}, false
	}
	t, err := time.Parse(TimeLayout, m[2])
	if err != nil {
		return Name{}, false
	}
	return Name{Tag: m[1], Time: t.UTC(), Ext: m[3]}, true
}

// Extension returns the name extension for a snapshot's encoding.
func Extension(compressed, encrypted bool) string {
	ext := ".db"
	if compressed {
		ext += ".zst"
	}
	if encrypted {
		ext += ".age"
	}
	return ext
}
