package backup

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// boltSeed writes a bbolt database shaped as etcd's (a "key" bucket of revision keys, beside others)
// and returns its bytes and last revision.
func boltSeed(f *testing.F, keys int, value int) ([]byte, int64) {
	path := filepath.Join(f.TempDir(), "seed.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		f.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"alarm", "auth", "cluster", "lease", "members", "meta"} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		b, err := tx.CreateBucket([]byte("key"))
		if err != nil {
			return err
		}
		for i := 1; i <= keys; i++ {
			k := make([]byte, revBytesLen)
			binary.BigEndian.PutUint64(k, uint64(i))
			k[8] = '_'
			if err := b.Put(k, make([]byte, value)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = db.Close()
	}
	if err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return data, int64(keys)
}

// FuzzRevisionScanner feeds the stream reader damaged databases in chunks of every size: it must
// return a revision or an error, and never panic, hang or allocate by what a damaged header says.
func FuzzRevisionScanner(f *testing.F) {
	for _, shape := range []struct{ keys, value int }{{0, 0}, {3, 10}, {200, 100}, {2, 10000}} {
		data, rev := boltSeed(f, shape.keys, shape.value)
		var s revisionScanner
		s.Write(data)
		if got, err := s.Revision(); err != nil || got != rev {
			f.Fatalf("seed of %d keys: revision %d, %v; want %d", shape.keys, got, err, rev)
		}
		f.Add(data, uint16(4096))
		f.Add(data, uint16(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16) {
		var s revisionScanner
		step := max(int(chunk), 1)
		for i := 0; i < len(data); i += step {
			s.Write(data[i:min(i+step, len(data))])
		}
		s.Revision()
	})
}
