package backup

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// fanoutChunk and fanoutChunks size the buffers copyFanout keeps in flight.
const (
	fanoutChunk  = 256 << 10
	fanoutChunks = 8
)

// copyFanout copies r to every writer of each group, like io.Copy to an
// io.MultiWriter of them all, but with each group writing concurrently
// with the others and with the reading: hashing a snapshot, for instance,
// then costs no time beside writing it out. Writers within a group are
// written in order. It returns the bytes read and the first error.
func copyFanout(r io.Reader, groups ...[]io.Writer) (int64, error) {
	type chunk struct {
		buf     []byte
		n       int
		pending atomic.Int32
	}
	free := make(chan *chunk, fanoutChunks)
	for range fanoutChunks {
		free <- &chunk{buf: make([]byte, fanoutChunk)}
	}
	var (
		once     sync.Once
		firstErr error
		failed   = make(chan struct{})
	)
	fail := func(err error) {
		once.Do(func() { firstErr = err; close(failed) })
	}
	queues := make([]chan *chunk, len(groups))
	var wg sync.WaitGroup
	for i, ws := range groups {
		queues[i] = make(chan *chunk, fanoutChunks)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range queues[i] {
				for _, w := range ws {
					select {
					case <-failed: // another writer failed: just drain
						continue
					default:
					}
					if _, err := w.Write(c.buf[:c.n]); err != nil {
						fail(err)
					}
				}
				if c.pending.Add(-1) == 0 {
					free <- c
				}
			}
		}()
	}
	var total int64
	var readErr error
	for readErr == nil {
		var c *chunk
		select {
		case c = <-free:
		case <-failed:
		}
		if c == nil {
			break
		}
		c.n, readErr = io.ReadFull(r, c.buf)
		if c.n == 0 {
			free <- c
			continue
		}
		total += int64(c.n)
		c.pending.Store(int32(len(groups)))
		for _, q := range queues {
			q <- c
		}
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	if errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF) {
		readErr = nil
	}
	if readErr != nil {
		return total, readErr
	}
	return total, firstErr
}
