package app

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kinema/kinema/internal/sigv4"
)

// Credentials is the root access key pair.
type Credentials struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
}

// SecretFor implements sigv4.Credentials for the single root key.
func (c Credentials) SecretFor(ctx context.Context, accessKeyID string) (string, error) {
	if accessKeyID != c.AccessKeyID {
		return "", sigv4.ErrUnknownKey
	}
	return c.SecretAccessKey, nil
}

const credentialsFile = "credentials.json"

// rootCredentials takes the key pair from the environment, else from the
// data dir, else makes one, stores it (mode 0600) and prints it once.
func rootCredentials(dataDir, envID, envSecret string, out io.Writer) (Credentials, error) {
	if envID != "" || envSecret != "" {
		if envID == "" || envSecret == "" {
			return Credentials{}, errors.New("set both KINEMA_ACCESS_KEY_ID and KINEMA_SECRET_ACCESS_KEY, or neither")
		}
		return Credentials{AccessKeyID: envID, SecretAccessKey: envSecret}, nil
	}
	path := filepath.Join(dataDir, credentialsFile)
	if b, err := os.ReadFile(path); err == nil {
		var c Credentials
		if err := json.Unmarshal(b, &c); err != nil || c.AccessKeyID == "" || c.SecretAccessKey == "" {
			return Credentials{}, fmt.Errorf("%s is damaged; remove it to make a new key pair", path)
		}
		return c, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return Credentials{}, err
	}
	c := Credentials{
		AccessKeyID:     "AKIA" + randomString("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
		SecretAccessKey: randomString("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 40),
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	if err := writeFileSync(path, append(b, '\n'), 0o600); err != nil {
		return Credentials{}, err
	}
	fmt.Fprintf(out, "Created root credentials (kept in %s; shown only this once):\n"+
		"  AWS_ACCESS_KEY_ID=%s\n  AWS_SECRET_ACCESS_KEY=%s\n", path, c.AccessKeyID, c.SecretAccessKey)
	return c, nil
}

func randomString(alphabet string, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// writeFileSync writes a file and fsyncs it, so a key printed to the user
// is never lost to a crash right after.
func writeFileSync(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
