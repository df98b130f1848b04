package backup

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
)

type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, f.err
	}
	return len(p), nil
}

type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

func TestCopyFanout(t *testing.T) {
	data := make([]byte, 3*fanoutChunk*fanoutChunks+12345)
	rand.New(rand.NewSource(2)).Read(data)
	var a, b, c bytes.Buffer
	n, err := copyFanout(bytes.NewReader(data), []io.Writer{&a, &b}, []io.Writer{&c})
	if err != nil || n != int64(len(data)) || !bytes.Equal(a.Bytes(), data) || !bytes.Equal(b.Bytes(), data) || !bytes.Equal(c.Bytes(), data) {
		t.Fatalf("copy: n=%d err=%v", n, err)
	}

	boom := errors.New("disk full")
	if _, err := copyFanout(bytes.NewReader(data), []io.Writer{io.Discard}, []io.Writer{&failAfter{n: fanoutChunk * 3, err: boom}}); !errors.Is(err, boom) {
		t.Errorf("writer error: %v", err)
	}
	reset := errors.New("connection reset")
	if _, err := copyFanout(&errReader{bytes.NewReader(data), reset}, []io.Writer{io.Discard}); !errors.Is(err, reset) {
		t.Errorf("reader error: %v", err)
	}
	if n, err := copyFanout(bytes.NewReader(nil), []io.Writer{&a}); n != 0 || err != nil {
		t.Errorf("empty: %d %v", n, err)
	}
}
