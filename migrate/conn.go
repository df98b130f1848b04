package migrate

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdops/etcdops/internal/etcdclient"
)

// Conn is what a migration needs of a connection to the cluster.
type Conn interface {
	clientv3.Cluster
	clientv3.Maintenance
	Close() error
}

// Dialer connects to the given client URLs of the cluster.
type Dialer func(endpoints []string) (Conn, error)

// Connection says how to reach the cluster.
type Connection struct {
	// Client holds the endpoints to start from and the connection settings
	// (TLS, auth, dial timeout) shared with etcdctl.
	Client etcdclient.Config
	// Timeout bounds each request and each health check.
	Timeout time.Duration
	// Logger logs the client's internals; nil logs nothing.
	Logger *zap.Logger
}

func (c Connection) logger() *zap.Logger {
	if c.Logger == nil {
		return zap.NewNop()
	}
	return c.Logger
}

// Dial connects to endpoints with c's settings.
func (c Connection) Dial(endpoints []string) (Conn, error) {
	cfg := c.Client
	cfg.Endpoints = endpoints
	cli, err := etcdclient.New(&cfg, c.logger())
	if err != nil {
		return nil, err
	}
	return &client{Client: cli, own: clientv3.NewMaintenanceFromMaintenanceClient(clientv3.RetryMaintenanceClient(cli, cli.ActiveConnection()), cli)}, nil
}

// client asks its only endpoint for its status over its own connection:
// clientv3 dials a new one for each Status call, so that a caller polling a
// member that does not serve yet would wait for a whole handshake each time
// instead of for the connection it keeps.
type client struct {
	*clientv3.Client
	own clientv3.Maintenance
}

func (c *client) Status(ctx context.Context, endpoint string) (*clientv3.StatusResponse, error) {
	if eps := c.Endpoints(); len(eps) == 1 && eps[0] == endpoint {
		return c.own.Status(ctx, endpoint)
	}
	return c.Client.Status(ctx, endpoint)
}

// request runs f with the per-request timeout on a connection to endpoints.
func (r *runner) request(ctx context.Context, endpoints []string, f func(context.Context, Conn) error) error {
	conn, err := r.dial(endpoints)
	if err != nil {
		return err
	}
	defer conn.Close()
	rctx, cancel := context.WithTimeout(ctx, r.o.Connection.Timeout)
	defer cancel()
	return f(rctx, conn)
}

// list reads the linearizable member list.
func (r *runner) list(ctx context.Context) ([]Member, error) {
	conn, err := r.dial(r.endpoints)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rctx, cancel := context.WithTimeout(ctx, r.o.Connection.Timeout)
	defer cancel()
	resp, err := conn.MemberList(rctx)
	if err != nil {
		return nil, fmt.Errorf("member list: %w", err)
	}
	members := fromPB(resp.Members)
	r.useMembers(members)
	return members, nil
}

func (r *runner) dial(endpoints []string) (Conn, error) {
	if r.o.dial != nil {
		return r.o.dial(endpoints)
	}
	return r.o.Connection.Dial(endpoints)
}
