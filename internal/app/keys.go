package app

import (
	"errors"
	"strings"

	"github.com/kinema/kinema/internal/iam"
	"github.com/kinema/kinema/internal/notify"
	"github.com/kinema/kinema/internal/playback"
)

// Purposes of the keys derived from a configured server key. Changing one
// changes that key on every node: session URLs, or webhook secrets derived
// for receivers, made before stop verifying.
const (
	playbackKeyPurpose = "kinema/playback session tokens/v1"
	notifyKeyPurpose   = "kinema/notification webhook secrets/v1"
)

// errClusterNeedsServerKey refuses a shared index without a configured
// server key: each node would make its own data-dir keys, so one node
// could not decrypt the access keys another stored, and session URLs and
// tokens would work only on the node that minted them.
var errClusterNeedsServerKey = errors.New("a PostgreSQL index is shared by several nodes, which must share one server key: " +
	"set KINEMA_SERVER_KEY (64 hex digits, e.g. `openssl rand -hex 32`) to the same value on every node (docs/deploy.md)")

// sharedIndex reports whether the index URL names a database several
// nodes may share.
func sharedIndex(index string) bool {
	return strings.HasPrefix(index, "postgres://") || strings.HasPrefix(index, "postgresql://")
}

// nodeKeys returns the keys a node signs with that another node must
// verify: the playback session-token key, and the notification key set
// into ncfg. With a configured server key (Config.ServerKey) both are
// derived from it, so nodes with the same server key agree; without one,
// they are the data dir's playback.key and notify.key, as a single node
// has always kept them.
func nodeKeys(cfg Config, serverKey []byte, ncfg *notify.Config) (*playback.Keyring, error) {
	if err := loadNotifyKey(cfg.DataDir, cfg.ServerKey != "", serverKey, ncfg); err != nil {
		return nil, err
	}
	if cfg.ServerKey == "" {
		return playback.LoadKeyring(cfg.DataDir)
	}
	pk, err := iam.DeriveKey(serverKey, playbackKeyPurpose)
	if err != nil {
		return nil, err
	}
	return playback.NewKeyring(pk), nil
}

// LoadNotifyKey sets into ncfg the notification key of a node with this
// data dir and configured server key (KINEMA_SERVER_KEY's 64 hex digits,
// "" for none): what `kinema events secret` needs to print the secret the
// server signs a webhook with.
func LoadNotifyKey(dataDir, serverKeyHex string, ncfg *notify.Config) error {
	if serverKeyHex == "" {
		return ncfg.LoadKey(dataDir)
	}
	key, err := iam.LoadServerKey(dataDir, serverKeyHex)
	if err != nil {
		return err
	}
	return loadNotifyKey(dataDir, true, key, ncfg)
}

func loadNotifyKey(dataDir string, configured bool, serverKey []byte, ncfg *notify.Config) error {
	if !configured {
		return ncfg.LoadKey(dataDir)
	}
	nk, err := iam.DeriveKey(serverKey, notifyKeyPurpose)
	if err != nil {
		return err
	}
	ncfg.UseKey(nk)
	return nil
}
