package backup

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
)

// trailerSize is the size of the sha256 digest etcd appends to a snapshot.
const trailerSize = sha256.Size

// trailerCheck checks, while a snapshot streams through it, etcd's
// integrity trailer: the sha256 of the database, appended to it. It hashes
// all but the last trailerSize bytes written and keeps those aside.
type trailerCheck struct {
	h     hash.Hash
	tail  [trailerSize]byte
	n     int
	total int64
}

func newTrailerCheck() *trailerCheck { return &trailerCheck{h: sha256.New()} }

func (c *trailerCheck) Write(p []byte) (int, error) {
	c.total += int64(len(p))
	if len(p) >= trailerSize {
		c.h.Write(c.tail[:c.n])
		c.h.Write(p[:len(p)-trailerSize])
		c.n = copy(c.tail[:], p[len(p)-trailerSize:])
		return len(p), nil
	}
	if over := c.n + len(p) - trailerSize; over > 0 {
		c.h.Write(c.tail[:over])
		c.n = copy(c.tail[:], c.tail[over:c.n])
	}
	c.n += copy(c.tail[c.n:], p)
	return len(p), nil
}

// errNoTrailer is returned for a snapshot without etcd's sha256 trailer.
var errNoTrailer = errors.New("snapshot has no sha256 trailer")

// Check reports whether the stream ended with a matching trailer. A
// database is a whole number of 512-byte sectors; with its trailer the
// size is 32 bytes over, which is how etcdutl recognises one too.
func (c *trailerCheck) Check() error {
	if c.total%512 != trailerSize || c.n != trailerSize {
		return fmt.Errorf("%w (%d bytes)", errNoTrailer, c.total)
	}
	if sum := c.h.Sum(nil); !bytes.Equal(sum, c.tail[:]) {
		return fmt.Errorf("snapshot sha256 mismatch: data hashes to %x, trailer says %x", sum, c.tail[:])
	}
	return nil
}

// RawSHA256 returns the sha256 of everything written, trailer included;
// it is valid only after Check returned nil, and only once.
func (c *trailerCheck) RawSHA256() []byte {
	c.h.Write(c.tail[:c.n])
	return c.h.Sum(nil)
}

// Size is how many bytes were written.
func (c *trailerCheck) Size() int64 { return c.total }

// DBSize is the size of the database without its trailer.
func (c *trailerCheck) DBSize() int64 { return c.total - trailerSize }
