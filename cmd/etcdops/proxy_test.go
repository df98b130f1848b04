package main

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxyFault is what a faultProxy does once its byte count is reached.
type proxyFault int

const (
	pause  proxyFault = iota // stop forwarding until release
	stall                    // stop forwarding for good, keep connections open
	reset                    // abort every connection with a TCP RST
	hangUp                   // close every connection cleanly (FIN)
)

var faultNames = map[proxyFault]string{pause: "pause", stall: "stall", reset: "reset", hangUp: "close"}

// faultProxy forwards TCP connections to target and meets them with a fault
// once `after` bytes went through in one direction (up: towards target;
// down: back from it). From then on every new connection meets it too, as
// when a server or its network fails. Fired is closed when the fault fires.
type faultProxy struct {
	Addr  string
	Fired chan struct{}

	target  string
	fault   proxyFault
	up      bool
	after   int64
	seen    atomic.Int64
	fire    sync.Once
	release chan struct{}
	done    chan struct{}
	ln      net.Listener
	mu      sync.Mutex
	conns   []*net.TCPConn
	wg      sync.WaitGroup
}

// startProxy starts a proxy to target; it stops when the test ends.
func startProxy(t testing.TB, target string, fault proxyFault, up bool, after int64) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{Addr: ln.Addr().String(), Fired: make(chan struct{}), target: target, fault: fault, up: up, after: after,
		release: make(chan struct{}), done: make(chan struct{}), ln: ln}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Release lets a paused proxy forward again.
func (p *faultProxy) Release() { close(p.release) }

// WaitFired waits until the fault fired, or fails the test.
func (p *faultProxy) WaitFired(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.Fired:
	case <-time.After(timeout):
		t.Fatalf("proxy to %s: %s not reached after %v (%d bytes seen)", p.target, faultNames[p.fault], timeout, p.seen.Load())
	}
}

func (p *faultProxy) fired() bool {
	select {
	case <-p.Fired:
		return true
	default:
		return false
	}
}

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		client, server := c.(*net.TCPConn), s.(*net.TCPConn)
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		if p.fired() && (p.fault == reset || p.fault == hangUp) {
			p.hit(client, server)
			continue
		}
		p.wg.Add(2)
		go p.pipe(server, client, p.up)
		go p.pipe(client, server, !p.up)
	}
}

// pipe copies src to dst; counted says whether it counts towards after.
func (p *faultProxy) pipe(dst, src *net.TCPConn, counted bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		if p.fired() {
			if !p.hit(dst, src) {
				return
			}
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
			if counted && p.seen.Add(int64(n)) >= p.after {
				p.fire.Do(func() { close(p.Fired) })
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				dst.CloseWrite()
			} else { // pass a reset on
				src.Close()
				dst.Close()
			}
			return
		}
	}
}

// hit applies the fault to the connection a, b and reports whether it may
// forward again.
func (p *faultProxy) hit(a, b *net.TCPConn) bool {
	switch p.fault {
	case pause:
		select {
		case <-p.release:
			return true
		case <-p.done:
		}
	case stall:
		<-p.done
	case reset:
		a.SetLinger(0)
		b.SetLinger(0)
		a.Close()
		b.Close()
	case hangUp:
		a.Close()
		b.Close()
	}
	return false
}

func (p *faultProxy) close() {
	close(p.done)
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
