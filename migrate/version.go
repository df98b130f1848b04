package migrate

import (
	"github.com/coreos/go-semver/semver"
)

// MinVersion35 is the oldest 3.5 release that etcd's upgrade guide lets run
// beside 3.6 members (etcd.io/docs/v3.6/upgrades/upgrade_3_6: "make sure that
// all of your 3.5 members are updated to 3.5.26 or later"; 3.5.20 fixed the
// "too many learner members" failure of etcd-io/etcd#19557, 3.5.24-3.5.26
// further upgrade blockers). New members run the embedded etcd 3.6.
var MinVersion35 = semver.Version{Major: 3, Minor: 5, Patch: 26}

// checkVersions refuses a cluster whose members may not mix with 3.6
// members. A member whose version is unknown is not judged here.
func checkVersions(members []Member) error {
	for _, m := range members {
		if m.Version == "" {
			continue
		}
		v, err := semver.NewVersion(m.Version)
		if err != nil {
			return inputErr("cluster", "", "member %s reports etcd version %q, which is not a version", display(m), m.Version)
		}
		switch {
		case v.Major == 3 && v.Minor == 6:
		case v.Major == 3 && v.Minor == 5 && !v.LessThan(MinVersion35):
		case v.Major == 3 && v.Minor == 5:
			return inputErr("cluster", "", "member %s runs etcd %s: new members run etcd 3.6, which etcd's upgrade rules mix only with 3.5.%d or later; "+
				"upgrade the 3.5 members to the newest 3.5 release first", display(m), v, MinVersion35.Patch)
		default:
			return inputErr("cluster", "", "member %s runs etcd %s: new members run etcd 3.6, which mixes only with 3.5.%d or later and 3.6",
				display(m), v, MinVersion35.Patch)
		}
	}
	return nil
}
