package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/etcdops/etcdops/internal/etcdclient"
)

// clientFlags are etcdctl's connection flags, with its ETCDCTL_* variables,
// shared by every command that talks to a cluster.
func clientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "endpoints", EnvVars: []string{"ETCDCTL_ENDPOINTS"}, Value: cli.NewStringSlice(etcdclient.DefaultEndpoint),
			Usage: "comma-separated client `URLS` of the cluster"},
		&cli.StringFlag{Name: "cacert", EnvVars: []string{"ETCDCTL_CACERT"}, Usage: "verify servers with the CA bundle in `FILE`"},
		&cli.StringFlag{Name: "cert", EnvVars: []string{"ETCDCTL_CERT"}, Usage: "client certificate `FILE` for client-certificate auth"},
		&cli.StringFlag{Name: "key", EnvVars: []string{"ETCDCTL_KEY"}, Usage: "client key `FILE`"},
		&cli.BoolFlag{Name: "insecure-skip-tls-verify", EnvVars: []string{"ETCDCTL_INSECURE_SKIP_TLS_VERIFY"},
			Usage: "do not verify the servers' certificates (testing only)"},
		&cli.StringFlag{Name: "user", EnvVars: []string{"ETCDCTL_USER"}, Usage: "`NAME` or NAME:PASSWORD for etcd auth"},
		&cli.StringFlag{Name: "password", EnvVars: []string{"ETCDCTL_PASSWORD"},
			Usage: "password for --user (prefer the ETCDCTL_PASSWORD variable: flags show in ps)"},
		&cli.DurationFlag{Name: "dial-timeout", EnvVars: []string{"ETCDCTL_DIAL_TIMEOUT"}, Value: etcdclient.DefaultDialTimeout,
			Usage: "time to establish a connection"},
		&cli.DurationFlag{Name: "command-timeout", EnvVars: []string{"ETCDCTL_COMMAND_TIMEOUT"}, Value: etcdclient.DefaultCommandTimeout,
			Usage: "time a short request may take (long transfers such as snapshots are not bound by it)"},
	}
}

// clientConfig reads the flags of clientFlags and validates them.
func clientConfig(c *cli.Context) (*etcdclient.Config, error) {
	cfg := &etcdclient.Config{
		Endpoints:             c.StringSlice("endpoints"),
		CACert:                c.String("cacert"),
		Cert:                  c.String("cert"),
		Key:                   c.String("key"),
		InsecureSkipTLSVerify: c.Bool("insecure-skip-tls-verify"),
		User:                  c.String("user"),
		Password:              c.String("password"),
		DialTimeout:           c.Duration("dial-timeout"),
		CommandTimeout:        c.Duration("command-timeout"),
	}
	if err := cfg.Validate(); err != nil {
		return nil, usageError(clientFlagError(err))
	}
	return cfg, nil
}

// clientFlagNames names the flag of each etcdclient.Field.
var clientFlagNames = map[etcdclient.Field]string{
	etcdclient.FieldEndpoints:      "--endpoints",
	etcdclient.FieldCertAndKey:     "--cert and --key",
	etcdclient.FieldDialTimeout:    "--dial-timeout",
	etcdclient.FieldCommandTimeout: "--command-timeout",
	etcdclient.FieldUser:           "--user",
	etcdclient.FieldPassword:       "--password",
}

// clientFlagError is err, or, for an *etcdclient.ConfigError, the same error naming the flag.
func clientFlagError(err error) error {
	var ce *etcdclient.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	return fmt.Errorf("%s: %s", clientFlagNames[ce.Field], ce.Reason)
}
