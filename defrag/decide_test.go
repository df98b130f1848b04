package defrag

import (
	"strings"
	"testing"
)

const mib = 1 << 20

func TestDecide(t *testing.T) {
	def := DefaultRule()
	for _, tt := range []struct {
		name   string
		m      MemberStatus
		rule   Rule
		defrag bool
		reason string // a part of the reason
		quota  int64
	}{
		{"enough free by both bounds", MemberStatus{DBSize: 400 * mib, DBSizeInUse: 200 * mib, Quota: 2048 * mib}, def, true, "200 MiB free, 50% of the file (at least 100 MiB and 45%)", 2048 * mib},
		{"exactly at both bounds", MemberStatus{DBSize: 1000 * mib, DBSizeInUse: 550 * mib, Quota: 8192 * mib}, Rule{MinFree: 450 * mib, MinFreeFraction: 0.45, QuotaFraction: 0.8}, true, "450 MiB free", 8192 * mib},
		{"fraction high, too few bytes", MemberStatus{DBSize: 100 * mib, DBSizeInUse: 10 * mib, Quota: 2048 * mib}, def, false, "90 MiB free, 90% of the file: not at least 100 MiB and 45%", 2048 * mib},
		{"bytes enough, fraction low", MemberStatus{DBSize: 1000 * mib, DBSizeInUse: 600 * mib, Quota: 2048 * mib}, def, false, "400 MiB free, 40% of the file: not", 2048 * mib},
		{"above the quota fraction with little free", MemberStatus{DBSize: 1700 * mib, DBSizeInUse: 1690 * mib, Quota: 2048 * mib}, def, true, "file 1.7 GiB is 83% of its 2.0 GiB quota (above 80%)", 2048 * mib},
		{"at the quota fraction is not above it", MemberStatus{DBSize: 800 * mib, DBSizeInUse: 790 * mib, Quota: 1000 * mib}, def, false, "not at least", 1000 * mib},
		{"no quota reported: the fallback", MemberStatus{DBSize: 1700 * mib, DBSizeInUse: 1690 * mib}, def, true, "of its 2.0 GiB quota", 2048 * mib},
		{"no quota reported, no fallback", MemberStatus{DBSize: 1700 * mib, DBSizeInUse: 1690 * mib}, Rule{MinFree: 100 * mib, MinFreeFraction: 0.45, QuotaFraction: 0.8}, false, "not at least", 0},
		{"quota off", MemberStatus{DBSize: 1700 * mib, DBSizeInUse: 1690 * mib, Quota: -1}, def, false, "not at least", 0},
		{"all", MemberStatus{DBSize: 20 * mib, DBSizeInUse: 20 * mib, Quota: 2048 * mib}, Rule{All: true, MinFreeFraction: 1, QuotaFraction: 1}, true, "every member asked for", 2048 * mib},
		{"learner", MemberStatus{DBSize: 400 * mib, DBSizeInUse: 10 * mib, IsLearner: true, Quota: 2048 * mib}, def, false, "rpc not supported for learner", 2048 * mib},
		{"learner with all", MemberStatus{DBSize: 400 * mib, DBSizeInUse: 10 * mib, IsLearner: true}, Rule{All: true}, false, "learner", 0},
		{"no status", MemberStatus{Error: "connection refused"}, def, false, "no status: connection refused", 0},
		{"in use above size (racy status)", MemberStatus{DBSize: 10 * mib, DBSizeInUse: 11 * mib, Quota: 2048 * mib}, def, false, "0 B free, 0% of the file", 2048 * mib},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide([]MemberStatus{tt.m}, tt.rule)[0]
			if d.Defrag != tt.defrag || !strings.Contains(d.Reason, tt.reason) || d.QuotaUsed != tt.quota {
				t.Errorf("got defrag %v, quota %d, %q; want %v, %d, containing %q", d.Defrag, d.QuotaUsed, d.Reason, tt.defrag, tt.quota, tt.reason)
			}
		})
	}
}

func TestDecideOrdersLeaderLast(t *testing.T) {
	in := []MemberStatus{{Name: "a", IsLeader: true}, {Name: "b"}, {Name: "l", IsLearner: true}, {Name: "c"}}
	var got []string
	for _, d := range Decide(in, DefaultRule()) {
		got = append(got, d.Name)
	}
	if strings.Join(got, ",") != "b,l,c,a" {
		t.Errorf("order %v, want followers in the given order, then the leader: b,l,c,a", got)
	}
}

func TestRuleValidate(t *testing.T) {
	for _, tt := range []struct {
		name  string
		edit  func(*Rule)
		field Field
	}{
		{"zero fraction", func(r *Rule) { r.MinFreeFraction = 0 }, FieldMinFreeFraction},
		{"fraction above one", func(r *Rule) { r.QuotaFraction = 1.5 }, FieldQuotaFraction},
		{"negative fraction", func(r *Rule) { r.QuotaFraction = -0.1 }, FieldQuotaFraction},
		{"negative size", func(r *Rule) { r.MinFree = -1 }, FieldMinFree},
		{"negative quota", func(r *Rule) { r.FallbackQuota = -1 }, FieldFallbackQuota},
		{"one is a fraction", func(r *Rule) { r.MinFreeFraction = 1 }, ""},
		{"default", func(*Rule) {}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := DefaultRule()
			tt.edit(&r)
			err := r.Validate()
			ie, _ := err.(*InputError)
			if tt.field == "" && err != nil || tt.field != "" && (ie == nil || ie.Field != tt.field) {
				t.Errorf("Validate: %v, want an error about %q", err, tt.field)
			}
		})
	}
}
