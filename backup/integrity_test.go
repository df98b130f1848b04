package backup

import (
	"crypto/sha256"
	"math/rand"
	"testing"
)

func TestTrailerCheck(t *testing.T) {
	db := make([]byte, 4096*3)
	rand.New(rand.NewSource(1)).Read(db)
	sum := sha256.Sum256(db)
	good := append(append([]byte{}, db...), sum[:]...)
	bad := append([]byte{}, good...)
	bad[100] ^= 1

	for _, chunk := range []int{1, 7, 31, 32, 33, 4096, len(good)} {
		for name, tt := range map[string]struct {
			data []byte
			ok   bool
		}{"good": {good, true}, "corrupt": {bad, false}, "no trailer": {db, false}, "short": {good[:len(good)-1], false}} {
			c := newTrailerCheck()
			for i := 0; i < len(tt.data); i += chunk {
				c.Write(tt.data[i:min(i+chunk, len(tt.data))])
			}
			if err := c.Check(); (err == nil) != tt.ok {
				t.Errorf("chunk %d, %s: Check() = %v", chunk, name, err)
			}
			if tt.ok && c.DBSize() != int64(len(db)) {
				t.Errorf("DBSize = %d", c.DBSize())
			}
		}
	}
}
