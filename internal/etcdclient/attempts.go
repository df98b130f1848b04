package etcdclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Attempts remembers the error of the last failed attempt of a client's
// requests. The client retries a request whose attempts fail (connection
// refused) until its deadline, and then reports only "context deadline
// exceeded"; the attempt's error says why. Its zero value is ready.
type Attempts struct {
	mu  sync.Mutex
	err error
}

type attemptsKey struct{}

// WithAttempts returns ctx carrying a new Attempts, which records the
// failed attempts of the requests made with ctx by clients from New.
func WithAttempts(ctx context.Context) (context.Context, *Attempts) {
	a := &Attempts{}
	return context.WithValue(ctx, attemptsKey{}, a), a
}

// Intercept records the failed attempts of every request of a client
// dialed with it (grpc.WithChainUnaryInterceptor).
func (a *Attempts) Intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if err != nil {
		a.mu.Lock()
		a.err = err
		a.mu.Unlock()
	}
	return err
}

// recordAttempts is the interceptor of clients from New: it records the
// failed attempts of requests whose context carries an Attempts.
func recordAttempts(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if a, ok := ctx.Value(attemptsKey{}).(*Attempts); ok {
		return a.Intercept(ctx, method, req, reply, cc, invoker, opts...)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// Explain returns err, followed by the last attempt's error when err is
// only the context's: "context deadline exceeded (dial tcp 127.0.0.1:2379:
// connect: connection refused)". It wraps err.
func (a *Attempts) Explain(err error) error {
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && status.Code(err) != codes.DeadlineExceeded {
		return err
	}
	a.mu.Lock()
	last := a.err
	a.mu.Unlock()
	if last == nil {
		return err
	}
	msg := status.Convert(last).Message()
	if _, dial, ok := strings.Cut(msg, "Error while dialing: "); ok {
		msg = strings.TrimSuffix(dial, `"`)
	} else if strings.HasSuffix(msg, "while waiting for connections to become ready") {
		msg = "connected, but the server never completed the handshake"
	}
	if msg == "" || msg == err.Error() || msg == context.DeadlineExceeded.Error() || strings.Contains(err.Error(), msg) {
		return err
	}
	return fmt.Errorf("%w (%s)", err, msg)
}
