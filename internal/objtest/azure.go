package objtest

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// Azurite's well-known development account.
const (
	azuriteAccount = "devstoreaccount1"
	azuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Azure returns the azblob:// backend, an Azurite blob server. Bucket URLs
// look like
//
//	azblob://NAME?protocol=http&domain=127.0.0.1:PORT
//
// (a domain starting with 127.0.0.1 makes azureblob use the emulator's
// http://127.0.0.1:PORT/ACCOUNT form), and Env holds AZURE_STORAGE_ACCOUNT
// and AZURE_STORAGE_KEY.
func Azure(t testing.TB) Backend {
	t.Helper()
	srv := azuriteService.get(t)
	return Backend{Name: "azblob", Env: slices.Clone(srv.env), newBucket: func(t testing.TB) string {
		t.Helper()
		name := bucketName(t)
		u := fmt.Sprintf("azblob://%s?protocol=http&domain=%s", name, srv.addr)
		createBucket(t, u, func(ctx context.Context, c *container.Client) error {
			_, err := c.Create(ctx, nil)
			return err
		})
		return u
	}}
}

func startAzurite() (*server, error) {
	script, err := tool("azurite-blob.js")
	if err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("%w (run scripts/test.sh, which installs Node.js for Azurite)", err)
	}
	srv, err := startServer(serverSpec{
		name: "azurite",
		path: node,
		args: func(addr, dir string) []string {
			// The azblob SDK of gocloud.dev v0.47.0 speaks API version
			// 2026-06-06, newer than any Azurite that runs on Node 20 knows.
			return []string{script, "--blobHost", "127.0.0.1", "--blobPort", portOf(addr),
				"--location", dir, "--skipApiVersionCheck", "--disableTelemetry", "--silent"}
		},
		// Ctrl-C's signal, which every Azurite release handles; SIGTERM
		// only since Azure/Azurite#580 (both work in the pinned 3.35.0).
		stopSig: syscall.SIGINT,
		ready: func(ctx context.Context, addr string) error {
			// Any answer will do: without credentials it is 403.
			_, err := httpStatus(ctx, "http://"+addr+"/"+azuriteAccount+"?comp=list")
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	srv.env = []string{"AZURE_STORAGE_ACCOUNT=" + azuriteAccount, "AZURE_STORAGE_KEY=" + azuriteKey}
	return srv, nil
}
