package migrate

import (
	"slices"
	"strconv"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
)

// useMembers makes the voting members' client URLs the endpoints to talk
// to: learners answer only status requests and serializable reads.
func (r *runner) useMembers(members []Member) {
	if eps := voterEndpoints(members); len(eps) > 0 {
		r.endpoints = eps
	}
}

func fromPB(list []*etcdserverpb.Member) []Member {
	var out []Member
	for _, m := range list {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
	}
	return out
}

func voterEndpoints(members []Member) []string {
	var eps []string
	for _, m := range members {
		if !m.IsLearner {
			eps = append(eps, m.ClientURLs...)
		}
	}
	return eps
}

func hexID(id uint64) string { return strconv.FormatUint(id, 16) }

func parseID(s string) uint64 {
	id, _ := strconv.ParseUint(s, 16, 64)
	return id
}

func byID(members []Member, id uint64) *Member {
	for i := range members {
		if members[i].ID == id {
			return &members[i]
		}
	}
	return nil
}

func byPeerURL(members []Member, u string) *Member {
	for i := range members {
		if slices.Contains(members[i].PeerURLs, u) {
			return &members[i]
		}
	}
	return nil
}
