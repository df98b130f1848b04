package backup

import (
	"encoding/json"
	"time"
)

// RevisionUnknown is a manifest's Revision when the save could not read it.
const RevisionUnknown = -1

// ManifestVersion is the version of the manifest format written now.
const ManifestVersion = 1

// Manifest describes one stored snapshot. It is written next to the
// snapshot, as <name>.json, after the snapshot is stored and checked, so
// that its existence means the snapshot is complete.
type Manifest struct {
	Version int    `json:"manifest_version"`
	Name    string `json:"name"`
	Tag     string `json:"tag"`
	// Time is the UTC time in the name: when the snapshot was taken, or
	// the slot a schedule's catch-up run was due in, maybe long before.
	Time time.Time `json:"time"`
	// Taken is when the snapshot had streamed from the member: its state
	// is of no later time (zero in manifests written before it).
	Taken time.Time `json:"taken,omitzero"`
	// Revision is the snapshot's own revision: the newest revision in its
	// key space, which `etcdutl snapshot status` reports for the file;
	// RevisionUnknown when the stream reader could not read it (see Save).
	Revision int64 `json:"revision"`
	// TotalKeys is how many keys the snapshot holds at Revision; -1 when
	// unknown (the revision was compacted before they could be counted, or
	// is unknown itself).
	TotalKeys int64 `json:"total_keys"`
	// ClusterID, MemberID and MemberName say where it was taken, in etcd's
	// hexadecimal form.
	ClusterID      string `json:"cluster_id"`
	MemberID       string `json:"member_id"`
	MemberName     string `json:"member_name"`
	Endpoint       string `json:"endpoint"`
	EtcdVersion    string `json:"etcd_version"`
	StorageVersion string `json:"storage_version,omitempty"`
	// RawSize and RawSHA256 are of the snapshot as etcd sent it (the bolt
	// database followed by etcd's sha256 trailer): the file that
	// `etcdctl snapshot save` writes and `backup fetch` returns.
	RawSize   int64  `json:"raw_size"`
	RawSHA256 string `json:"raw_sha256"`
	// StoredSize and StoredSHA256 are of the object in the bucket.
	StoredSize   int64  `json:"stored_size"`
	StoredSHA256 string `json:"stored_sha256"`
	Compression  string `json:"compression"`
	// Encryption is "age" or "none"; Recipients are the age public keys
	// that can decrypt it.
	Encryption     string   `json:"encryption"`
	Recipients     []string `json:"recipients,omitempty"`
	EtcdopsVersion string   `json:"etcdops_version"`
	// Duration is how long taking and storing the snapshot took.
	Duration string `json:"duration"`
}

// Marshal returns the manifest as indented JSON.
func (m *Manifest) Marshal() ([]byte, error) {
	return json.MarshalIndent(m, "", "  ")
}
