package node

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
)

// The node key is stored in libp2p's private-key encoding (protobuf
// {Type: Ed25519, Data: seed||public}), so the mesh can load it as the
// node's libp2p identity and the peer ID derived here is the libp2p peer ID.
var (
	ed25519PrivPrefix = []byte{0x08, 0x01, 0x12, 0x40}
	ed25519PubPrefix  = []byte{0x08, 0x01, 0x12, 0x20}
)

// Identity is the node's long-lived key pair and the ID derived from it.
type Identity struct {
	Key ed25519.PrivateKey
	// ID is the libp2p peer ID of Key ("12D3KooW…").
	ID string
}

// loadIdentity reads <dir>/node.key, creating it on first start.
func loadIdentity(dir string) (Identity, error) {
	path := filepath.Join(dir, "node.key")
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return Identity{}, fmt.Errorf("generate node key: %w", gerr)
		}
		enc := append(append([]byte{}, ed25519PrivPrefix...), priv...)
		if err := writeFileSync(path, enc, 0o600); err != nil {
			return Identity{}, fmt.Errorf("write node key: %w", err)
		}
		return newIdentity(priv), nil
	case err != nil:
		return Identity{}, fmt.Errorf("read node key: %w", err)
	}
	if len(b) != len(ed25519PrivPrefix)+ed25519.PrivateKeySize || !bytes.HasPrefix(b, ed25519PrivPrefix) {
		return Identity{}, fmt.Errorf("node key %s is not an Ed25519 libp2p private key; refusing to replace it", path)
	}
	return newIdentity(ed25519.PrivateKey(b[len(ed25519PrivPrefix):])), nil
}

func newIdentity(priv ed25519.PrivateKey) Identity {
	pub := priv.Public().(ed25519.PublicKey)
	pubProto := append(append([]byte{}, ed25519PubPrefix...), pub...)
	// Identity multihash (code 0x00) of the public key protobuf.
	mh := append([]byte{0x00, byte(len(pubProto))}, pubProto...)
	return Identity{Key: priv, ID: base58(mh)}
}

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

func base58(b []byte) string {
	n := new(big.Int).SetBytes(b)
	radix := big.NewInt(58)
	mod := new(big.Int)
	var out []byte
	for n.Sign() > 0 {
		n.DivMod(n, radix, mod)
		out = append(out, base58Alphabet[mod.Int64()])
	}
	for _, c := range b {
		if c != 0 {
			break
		}
		out = append(out, base58Alphabet[0])
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}

// writeFileSync writes a file atomically and durably: temp file, fsync,
// rename, fsync of the directory.
func writeFileSync(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
