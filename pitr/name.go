package pitr

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/etcdops/etcdops/backup"
)

// A tag's log lives beside its snapshots, below <tag>_log/ (a tag holds no
// '_', so no snapshot name starts so). Two kinds of objects are there, and
// their names alone say what they hold, zero-padded to 20 digits so that a
// listing is in revision order:
//
//	<tag>_log/<first>-<last>.log[.zst][.age]   a segment: revisions first..last, every one of them
//	<tag>_log/gap-<first>-<last>.json          a gap: revisions first..last are not in the log
//
// A gap is written when the streamer cannot resume (its revision was
// compacted); its JSON (GapRecord) says why and which snapshot the log
// resumed from. Segments of two streamers may overlap (a takeover, a
// rerun): a revision in two segments is the same revision, and replay
// takes it once.
const (
	LogSuffix     = "_log/"
	SegmentExt    = ".log"
	gapPrefix     = "gap-"
	gapExt        = ".json"
	revisionWidth = 20
)

// SegmentName is what a log object's name says of it.
type SegmentName struct {
	Tag         string
	First, Last int64
	// Gap is set for a gap record; Ext is then empty.
	Gap bool
	// Ext tells a segment's encoding: .log, .log.zst, .log.age or
	// .log.zst.age (backup.Decoder reads all four).
	Ext string
}

// LogPrefix is the prefix of every log object of tag.
func LogPrefix(tag string) string { return tag + LogSuffix }

// SegmentExtension returns a segment's name extension for a codec.
func SegmentExtension(c backup.Codec) string {
	ext := SegmentExt
	if c.Compress {
		ext += ".zst"
	}
	if len(c.Recipients) > 0 {
		ext += ".age"
	}
	return ext
}

// String returns the object name (without any bucket prefix).
func (n SegmentName) String() string {
	if n.Gap {
		return fmt.Sprintf("%s%s%0*d-%0*d%s", LogPrefix(n.Tag), gapPrefix, revisionWidth, n.First, revisionWidth, n.Last, gapExt)
	}
	return fmt.Sprintf("%s%0*d-%0*d%s", LogPrefix(n.Tag), revisionWidth, n.First, revisionWidth, n.Last, n.Ext)
}

var segmentRE = regexp.MustCompile(`^(.+)_log/(gap-)?(\d{20})-(\d{20})((?:\.log(?:\.zst)?(?:\.age)?)|\.json)$`)

// ParseSegmentName parses a name written by String. It reports false for
// any other object: snapshots, manifests, temporary or foreign objects.
func ParseSegmentName(s string) (SegmentName, bool) {
	m := segmentRE.FindStringSubmatch(s)
	if m == nil || backup.ValidateTag(m[1]) != nil {
		return SegmentName{}, false
	}
	gap := m[2] != ""
	if gap != (m[5] == gapExt) {
		return SegmentName{}, false
	}
	first, err1 := strconv.ParseInt(m[3], 10, 64)
	last, err2 := strconv.ParseInt(m[4], 10, 64)
	if err1 != nil || err2 != nil || first <= 0 || last < first {
		return SegmentName{}, false
	}
	n := SegmentName{Tag: m[1], First: first, Last: last, Gap: gap}
	if !gap {
		n.Ext = m[5]
	}
	return n, true
}

// Check tells whether revs, a segment's content, is what its name says:
// the first and last revisions named (#1044 of etcd-backup-restore: a name
// and content that disagree).
func (n SegmentName) Check(revs []Revision) error {
	if len(revs) == 0 || revs[0].Rev != n.First || revs[len(revs)-1].Rev != n.Last {
		got := "no revisions"
		if len(revs) > 0 {
			got = fmt.Sprintf("revisions %d-%d", revs[0].Rev, revs[len(revs)-1].Rev)
		}
		return &CorruptError{Offset: -1, Reason: fmt.Sprintf("%s holds %s", n, got)}
	}
	return nil
}
