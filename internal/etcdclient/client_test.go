package etcdclient

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/etcdops/etcdops/internal/etcdtest"
)

func TestValidate(t *testing.T) {
	ok := Config{Endpoints: []string{DefaultEndpoint}, DialTimeout: DefaultDialTimeout}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"ok", func(*Config) {}, ""},
		{"urls", func(c *Config) { c.Endpoints = []string{"https://10.0.0.1:2379", "unix://localhost:1"} }, ""},
		{"none", func(c *Config) { c.Endpoints = nil }, "endpoints: expected at least one"},
		{"bad scheme", func(c *Config) { c.Endpoints = []string{"ftp://x:1"} }, "endpoints: \"ftp://x:1\": expected scheme"},
		{"no port", func(c *Config) { c.Endpoints = []string{"localhost"} }, "endpoints: \"localhost\": expected host:port"},
		{"cert without key", func(c *Config) { c.Cert = "c.pem" }, "client certificate and key: expected both or neither"},
		{"dial timeout", func(c *Config) { c.DialTimeout = 0 }, "dial timeout: expected a positive duration"},
		{"password without user", func(c *Config) { c.Password = "secret" }, "password: given without a user"},
		{"two passwords", func(c *Config) { c.User, c.Password = "root:secret", "secret" }, "user: holds a password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.change(&c)
			err := c.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
	c := ok
	c.User = "root:secret"
	if s := c.String(); strings.Contains(s, "secret") {
		t.Errorf("String() shows the password: %s", s)
	}
}

func TestClientCertificateAuth(t *testing.T) {
	ca := etcdtest.NewCA(t)
	specs := etcdtest.WithTLS(t, etcdtest.Specs(t, 1, t.TempDir()), ca)
	cluster := etcdtest.StartEmbeddedSpecs(t, specs)
	pair := ca.Issue(t, "client")
	ep := cluster.Members[0].Spec.ClientURL

	get := func(cfg *Config) error {
		cli, err := New(cfg, nil)
		if err != nil {
			return err
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err = cli.Get(ctx, "k")
		return err
	}
	good := &Config{Endpoints: []string{ep}, CACert: ca.CertFile, Cert: pair.CertFile, Key: pair.KeyFile, DialTimeout: 2 * time.Second}
	if err := get(good); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	noCert := &Config{Endpoints: []string{ep}, CACert: ca.CertFile, DialTimeout: time.Second}
	if err := get(noCert); err == nil {
		t.Error("a client without a certificate was served by a member with --client-cert-auth")
	}
	missing := &Config{Endpoints: []string{ep}, CACert: "/nonexistent/ca.pem", DialTimeout: time.Second}
	if err := get(missing); err == nil || !strings.Contains(err.Error(), "--cacert") {
		t.Errorf("missing CA file: %v, want an error naming --cacert", err)
	}
}

func TestClientLoggerHidesRetriesBelowDebug(t *testing.T) {
	tests := []struct {
		level    zapcore.Level
		wantWarn bool
	}{
		{zapcore.DebugLevel, true},
		{zapcore.InfoLevel, false},
		{zapcore.WarnLevel, false},
	}
	for _, tt := range tests {
		t.Run(tt.level.String(), func(t *testing.T) {
			core, logs := observer.New(tt.level)
			cfg := Config{Endpoints: []string{DefaultEndpoint}, DialTimeout: DefaultDialTimeout}
			cc, err := cfg.ClientConfig(zap.New(core))
			if err != nil {
				t.Fatal(err)
			}
			cc.Logger.Warn("retrying of unary invoker failed")
			cc.Logger.Error("a real error")
			if got := logs.FilterMessage("retrying of unary invoker failed").Len() > 0; got != tt.wantWarn {
				t.Errorf("retry warning logged = %v, want %v", got, tt.wantWarn)
			}
			if logs.FilterMessage("a real error").Len() != 1 {
				t.Errorf("the client's error was not logged")
			}
		})
	}
}
