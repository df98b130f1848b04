package health

import (
	"fmt"
	"io"
	"strings"
)

// Format is an output format of a report.
type Format string

// Formats of Render.
const (
	FormatTable      Format = "table"
	FormatJSON       Format = "json"
	FormatPrometheus Format = "prometheus"
	FormatNagios     Format = "nagios"
)

// Formats lists the formats in the order the help shows them.
var Formats = []Format{FormatTable, FormatJSON, FormatPrometheus, FormatNagios}

// ParseFormat returns the format named s.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return "", fmt.Errorf("-w %q: expected one of %s", s, strings.Join(names, ", "))
}

// Render writes r and its verdict v in format f. The thresholds t are
// those v was judged with.
func Render(w io.Writer, f Format, r *Report, v Verdict, t Thresholds) error {
	switch f {
	case FormatTable:
		return WriteTable(w, r, v)
	case FormatJSON:
		return WriteJSON(w, r, v, t)
	case FormatPrometheus:
		return WritePrometheus(w, r, v)
	case FormatNagios:
		return WriteNagios(w, r, v, t)
	default:
		return fmt.Errorf("unknown format %q", f)
	}
}

// headline sums the verdict up in one line: the reasons, or when all is
// well the members up and the leader.
func headline(v Verdict) string {
	if len(v.Reasons) > 0 {
		msgs := make([]string, len(v.Reasons))
		for i, r := range v.Reasons {
			msgs[i] = r.Message
		}
		return strings.Join(msgs, "; ")
	}
	s := v.Summary
	line := fmt.Sprintf("%d of %d voting members up, leader %s", s.VotersUp, s.Voters, memberName(v, s.Leader))
	if s.Learners > 0 {
		line += ", " + plural(s.Learners, "learner")
	}
	return line
}

// memberName returns the name of member id from the summary, else its ID in hex.
func memberName(v Verdict, id uint64) string {
	for _, m := range v.Summary.Members {
		if m.ID == id && m.Name != "" {
			return m.Name
		}
	}
	if id == 0 {
		return "none"
	}
	return fmt.Sprintf("%x", id)
}
