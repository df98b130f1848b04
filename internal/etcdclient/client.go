// Package etcdclient builds etcd clients from the connection settings every
// etcdops command that talks to a cluster shares with etcdctl.
package etcdclient

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Config holds etcdctl's connection settings.
type Config struct {
	Endpoints             []string
	CACert                string
	Cert                  string
	Key                   string
	InsecureSkipTLSVerify bool
	// User is "name" or "name:password", as etcdctl's --user.
	User string
	// Password is never logged or printed; see String.
	Password       string
	DialTimeout    time.Duration
	CommandTimeout time.Duration
}

// Defaults as in etcdctl.
const (
	DefaultEndpoint       = "127.0.0.1:2379"
	DefaultDialTimeout    = 2 * time.Second
	DefaultCommandTimeout = 5 * time.Second
)

// Field names a connection setting; the command line maps each to its flag.
type Field string

// The settings a ConfigError can be about.
const (
	FieldEndpoints      Field = "endpoints"
	FieldCertAndKey     Field = "client certificate and key"
	FieldDialTimeout    Field = "dial timeout"
	FieldCommandTimeout Field = "command timeout"
	FieldUser           Field = "user"
	FieldPassword       Field = "password"
)

// ConfigError is a setting that is wrong as Reason says. It never holds a
// password.
type ConfigError struct {
	Field  Field
	Reason string
}

func (e *ConfigError) Error() string { return string(e.Field) + ": " + e.Reason }

// Validate checks the settings; its errors are *ConfigError.
func (c *Config) Validate() error {
	bad := func(f Field, format string, args ...any) error {
		return &ConfigError{Field: f, Reason: fmt.Sprintf(format, args...)}
	}
	if len(c.Endpoints) == 0 {
		return bad(FieldEndpoints, "expected at least one endpoint such as 127.0.0.1:2379")
	}
	for _, ep := range c.Endpoints {
		if err := checkEndpoint(ep); err != nil {
			return bad(FieldEndpoints, "%v", err)
		}
	}
	if (c.Cert == "") != (c.Key == "") {
		return bad(FieldCertAndKey, "expected both or neither")
	}
	if c.DialTimeout <= 0 {
		return bad(FieldDialTimeout, "expected a positive duration, got %v", c.DialTimeout)
	}
	if c.CommandTimeout < 0 {
		return bad(FieldCommandTimeout, "expected a positive duration or 0 for none, got %v", c.CommandTimeout)
	}
	if c.Password != "" && c.User == "" {
		return bad(FieldPassword, "given without a user")
	}
	if c.Password != "" && strings.Contains(c.User, ":") {
		return bad(FieldUser, "holds a password, and a password was also given; use one")
	}
	return nil
}

// checkEndpoint accepts what etcdctl accepts: host:port, or a URL with
// scheme http, https, unix or unixs.
func checkEndpoint(ep string) error {
	if !strings.Contains(ep, "://") {
		if ep == "" || strings.ContainsAny(ep, "/ ") || !strings.Contains(ep, ":") {
			return fmt.Errorf("%q: expected host:port or a URL such as https://10.0.0.1:2379", ep)
		}
		return nil
	}
	u, err := url.Parse(ep)
	if err != nil {
		return fmt.Errorf("%q: %w", ep, err)
	}
	switch u.Scheme {
	case "http", "https", "unix", "unixs":
	default:
		return fmt.Errorf("%q: expected scheme http, https, unix or unixs", ep)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: expected a host", ep)
	}
	return nil
}

// String describes the configuration without the password.
func (c Config) String() string {
	user, _, _ := strings.Cut(c.User, ":")
	return fmt.Sprintf("endpoints=%s user=%q tls=%v", strings.Join(c.Endpoints, ","), user, c.usesTLS())
}

func (c *Config) usesTLS() bool {
	if c.CACert != "" || c.Cert != "" || c.InsecureSkipTLSVerify {
		return true
	}
	for _, ep := range c.Endpoints {
		if strings.HasPrefix(ep, "https://") || strings.HasPrefix(ep, "unixs://") {
			return true
		}
	}
	return false
}

// ClientConfig returns the clientv3 configuration for c. Its clients record
// the failed attempts of requests made with a context from WithAttempts.
func (c *Config) ClientConfig(lg *zap.Logger) (clientv3.Config, error) {
	cfg := clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: c.DialTimeout,
		Logger:      clientLogger(lg),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(recordAttempts)},
	}
	if c.usesTLS() {
		tlsCfg, err := c.tlsConfig()
		if err != nil {
			return clientv3.Config{}, err
		}
		cfg.TLS = tlsCfg
	}
	switch user, pass, ok := strings.Cut(c.User, ":"); {
	case c.User == "":
	case ok:
		cfg.Username, cfg.Password = user, pass
	default:
		cfg.Username, cfg.Password = c.User, c.Password
	}
	return cfg, nil
}

// clientLogger is lg for the client's internals. The client warns of every
// request it retries ("retrying of unary invoker failed" while etcd refuses
// a membership change or a member restarts), which the caller expects and
// handles; those show at debug level only, the client's errors always.
func clientLogger(lg *zap.Logger) *zap.Logger {
	switch {
	case lg == nil:
		return zap.NewNop()
	case lg.Core().Enabled(zapcore.DebugLevel):
		return lg
	}
	return lg.WithOptions(zap.IncreaseLevel(zapcore.ErrorLevel))
}

func (c *Config) tlsConfig() (*tls.Config, error) {
	info := transport.TLSInfo{CertFile: c.Cert, KeyFile: c.Key, TrustedCAFile: c.CACert, InsecureSkipVerify: c.InsecureSkipTLSVerify}
	if c.Cert == "" && c.CACert == "" {
		return &tls.Config{InsecureSkipVerify: c.InsecureSkipTLSVerify, MinVersion: tls.VersionTLS12}, nil // #nosec G402 -- only when asked for
	}
	cfg, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("client TLS (--cacert/--cert/--key): %w", err)
	}
	return cfg, nil
}

// New connects a client. The caller closes it. Extra gRPC dial options
// tune the connection, such as flow-control windows for long streams.
func New(c *Config, lg *zap.Logger, opts ...grpc.DialOption) (*clientv3.Client, error) {
	cfg, err := c.ClientConfig(lg)
	if err != nil {
		return nil, err
	}
	cfg.DialOptions = append(cfg.DialOptions, opts...)
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(c.Endpoints, ","), err)
	}
	return cli, nil
}
