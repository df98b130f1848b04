package server

import (
	"testing"

	"go.etcd.io/etcd/server/v3/features"
)

// etcdops serve turns StopGRPCServiceOnDefrag on unless the configuration
// sets it, in any of etcd's ways.
func TestParseStopGRPCServiceOnDefragDefault(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want bool
	}{
		{"default", nil, nil, "", true},
		{"other gates", []string{"--feature-gates=CompactHashCheck=true"}, nil, "", true},
		{"gate off", []string{"--feature-gates=CompactHashCheck=true,StopGRPCServiceOnDefrag=false"}, nil, "", false},
		{"gate on", []string{"--feature-gates=StopGRPCServiceOnDefrag=true"}, nil, "", true},
		{"experimental flag off", []string{"--experimental-stop-grpc-service-on-defrag=false"}, nil, "", false},
		{"environment off", nil, map[string]string{"ETCD_FEATURE_GATES": "StopGRPCServiceOnDefrag=false"}, "", false},
		{"all alpha off", []string{"--feature-gates=AllAlpha=false"}, nil, "", false},
		{"config file", nil, nil, "name: a\n", true},
		{"config file off", nil, nil, "name: a\nfeature-gates: StopGRPCServiceOnDefrag=false\n", false},
		{"config file experimental off", nil, nil, "name: a\nexperimental-stop-grpc-service-on-defrag: false\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEtcdEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := tt.args
			if tt.file != "" {
				args = append(args, "--config-file", writeFile(t, "etcd.yml", tt.file))
			}
			cfg, err := Parse(args)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Embed.ServerFeatureGate.Enabled(features.StopGRPCServiceOnDefrag); got != tt.want {
				t.Errorf("StopGRPCServiceOnDefrag %v, want %v", got, tt.want)
			}
			if tt.name == "other gates" && !cfg.Embed.ServerFeatureGate.Enabled(features.CompactHashCheck) {
				t.Error("CompactHashCheck lost")
			}
		})
	}
}
