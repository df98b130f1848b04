package backup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// Codec is how a snapshot is stored: optionally zstd-compressed, then
// optionally age-encrypted to one or more recipients.
type Codec struct {
	Compress   bool
	Recipients []age.Recipient
	// Fingerprints name the recipients in manifests: their public keys.
	Fingerprints []string
}

// ParseRecipients parses age recipients (age1… public keys), as given to
// --age-recipient, or lines of a recipients file.
func ParseRecipients(keys []string) ([]age.Recipient, []string, error) {
	var rs []age.Recipient
	var fps []string
	for _, k := range keys {
		k = strings.TrimSpace(k)
		if k == "" || strings.HasPrefix(k, "#") {
			continue
		}
		r, err := age.ParseX25519Recipient(k)
		// age's error repeats the whole input, which may be a private key.
		if err != nil && strings.HasPrefix(strings.ToUpper(k), "AGE-SECRET-KEY-") {
			return nil, nil, inputErr(FieldRecipient, abbreviate(k), "expected an age1… public key, not a private key (identity)")
		}
		if err != nil {
			return nil, nil, inputErr(FieldRecipient, abbreviate(k), "expected an age1… public key")
		}
		rs = append(rs, r)
		fps = append(fps, r.String())
	}
	return rs, fps, nil
}

// ReadIdentities reads age identities (AGE-SECRET-KEY-1…) from a file.
func ReadIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &InputError{Field: FieldIdentity, Value: path, Err: err}
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, &InputError{Field: FieldIdentity, Value: path, Err: err}
	}
	return ids, nil
}

func abbreviate(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// Ext returns the object name extension for the codec.
func (c Codec) Ext() string { return Extension(c.Compress, len(c.Recipients) > 0) }

// Encoder returns a writer that encodes into dst. Closing it flushes the
// encoding but does not close dst.
func (c Codec) Encoder(dst io.Writer) (io.WriteCloser, error) {
	var closers []io.Closer
	w := dst
	if len(c.Recipients) > 0 {
		aw, err := age.Encrypt(w, c.Recipients...)
		if err != nil {
			return nil, fmt.Errorf("age: %w", err)
		}
		w, closers = aw, append(closers, aw)
	}
	if c.Compress {
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		w, closers = zw, append(closers, zw)
	}
	return &chainWriter{Writer: w, closers: closers}, nil
}

// chainWriter closes the encoders innermost (last added) first.
type chainWriter struct {
	io.Writer
	closers []io.Closer
}

func (c *chainWriter) Close() error {
	var errs []error
	for i := len(c.closers) - 1; i >= 0; i-- {
		errs = append(errs, c.closers[i].Close())
	}
	return errors.Join(errs...)
}

// Decoder returns a reader of the raw snapshot from src, stored with the
// encoding named by ext. Encrypted snapshots need identities.
func Decoder(src io.Reader, ext string, identities []age.Identity) (io.ReadCloser, error) {
	r := src
	if strings.HasSuffix(ext, ".age") {
		if len(identities) == 0 {
			return nil, &InputError{Field: FieldIdentity, Err: ErrNeedsIdentity}
		}
		ar, err := age.Decrypt(r, identities...)
		if err != nil {
			return nil, fmt.Errorf("decrypt: %w", err)
		}
		r = ar
	}
	if strings.Contains(ext, ".zst") {
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}
