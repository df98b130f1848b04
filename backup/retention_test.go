package backup

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// series returns complete snapshots of tag every step, newest at end.
func series(tag string, end time.Time, step time.Duration, n int) []Snapshot {
	var out []Snapshot
	for i := n - 1; i >= 0; i-- {
		out = append(out, Snapshot{Name: Name{Tag: tag, Time: end.Add(-time.Duration(i) * step), Ext: ".db"}, Manifest: &Manifest{}})
	}
	return out
}

// kept returns the kept snapshots' times as "01-02T15" strings, newest first.
func kept(ds []Decision) string {
	var out []string
	for _, d := range ds {
		if d.Keep {
			out = append(out, d.Snapshot.Name.Time.Format("01-02T15:04"))
		}
	}
	return strings.Join(out, " ")
}

func TestApplyPolicy(t *testing.T) {
	end := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	hourly := series("etcd-1", end, time.Hour, 72) // 3 days, hourly
	tests := []struct {
		name   string
		snaps  []Snapshot
		policy Policy
		want   string
	}{
		{"last 3", hourly, Policy{Last: 3}, "11-21T12:00 11-21T11:00 11-21T10:00"},
		{"daily 3: newest of each day", hourly, Policy{Daily: 3}, "11-21T12:00 11-20T23:00 11-19T23:00"},
		{"hourly 2 + daily 2", hourly, Policy{Hourly: 2, Daily: 2}, "11-21T12:00 11-21T11:00 11-20T23:00"},
		{"within 2h of the newest", hourly, Policy{Within: 2 * time.Hour}, "11-21T12:00 11-21T11:00 11-21T10:00"},
		{"weekly 1", hourly, Policy{Weekly: 1}, "11-21T12:00"},
		{"monthly 5 with one month", hourly, Policy{Monthly: 5}, "11-21T12:00"},
		{"newest always kept", hourly, Policy{Within: time.Nanosecond}, "11-21T12:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := ApplyPolicy(tt.snaps, tt.policy, end)
			if err != nil {
				t.Fatal(err)
			}
			if got := kept(ds); got != tt.want {
				t.Errorf("kept %s\nwant %s", got, tt.want)
			}
			if len(ds) != len(tt.snaps) {
				t.Errorf("%d decisions for %d snapshots", len(ds), len(tt.snaps))
			}
			for _, d := range ds {
				if len(d.Reasons) == 0 {
					t.Errorf("%s: no reason", d.Snapshot.Key())
				}
			}
		})
	}
}

func TestApplyPolicyPerTagAndIncomplete(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	snaps := append(series("a", now.Add(-time.Hour), time.Hour, 3), series("b", now.Add(-10*time.Hour), time.Hour, 3)...)
	// A fresh upload without manifest (maybe in progress) and an old one.
	snaps = append(snaps,
		Snapshot{Name: Name{Tag: "a", Time: now.Add(-time.Minute), Ext: ".db"}},
		Snapshot{Name: Name{Tag: "a", Time: now.Add(-48 * time.Hour), Ext: ".db"}})
	ds, err := ApplyPolicy(snaps, Policy{Last: 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, fmt.Sprintf("%s:%v:%s", d.Snapshot.Key(), d.Keep, d.Reasons[0]))
	}
	want := []string{
		"a_2026-11-21_11-59-00.db:true:upload may be in progress",
		"a_2026-11-21_11-00-00.db:true:newest complete snapshot",
		"a_2026-11-21_10-00-00.db:false:no rule keeps it",
		"a_2026-11-21_09-00-00.db:false:no rule keeps it",
		"a_2026-11-19_12-00-00.db:false:incomplete upload: no manifest",
		"b_2026-11-21_02-00-00.db:true:newest complete snapshot",
		"b_2026-11-21_01-00-00.db:false:no rule keeps it",
		"b_2026-11-21_00-00-00.db:false:no rule keeps it",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, tt := range []struct {
		p     Policy
		field Field
	}{{Policy{Last: -1}, FieldKeepLast}, {Policy{Daily: -2}, FieldKeepDaily}, {Policy{Within: -time.Hour}, FieldKeepWithin}, {Policy{}, FieldPolicy}} {
		_, err := ApplyPolicy(nil, tt.p, time.Now())
		var ie *InputError
		if !errors.As(err, &ie) || ie.Field != tt.field {
			t.Errorf("%+v: %v, want an InputError of %s", tt.p, err, tt.field)
		}
		if err != nil && strings.Contains(err.Error(), "--") {
			t.Errorf("%+v: %q names a flag", tt.p, err)
		}
	}
	if _, err := ApplyPolicy(nil, Policy{}, time.Now()); !errors.Is(err, ErrEmptyPolicy) {
		t.Errorf("empty policy: %v", err)
	}
}
