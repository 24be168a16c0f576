package node

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestHostIdentityIsNodeID(t *testing.T) {
	id, err := loadIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h, err := newHost(id, []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}, newGater(time.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.ID().String() != id.ID {
		t.Fatalf("peer ID %s, node ID %s", h.ID(), id.ID)
	}
	if len(hostAddrs(h)) != 2 {
		t.Fatalf("addresses %v, want one TCP and one QUIC", hostAddrs(h))
	}
}

func TestRPCFrames(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  rpcRequest
	}{
		{"forward", rpcRequest{op: opForward, timeout: 1500 * time.Millisecond, group: "things", payload: []byte("cmd")}},
		{"read index", rpcRequest{op: opReadIndex, timeout: time.Second, group: "policies"}},
		{"member", rpcRequest{op: opAddMember, group: "connectivity", payload: []byte(`{"id":"x"}`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame, err := readFrame(bytes.NewReader(encodeRPCRequest(tc.req)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeRPCRequest(frame)
			if err != nil {
				t.Fatal(err)
			}
			if got.payload == nil {
				got.payload = []byte{}
			}
			want := tc.req
			if want.payload == nil {
				want.payload = []byte{}
			}
			if d := cmp.Diff(want, got, cmp.AllowUnexported(rpcRequest{})); d != "" {
				t.Fatal(d)
			}
		})
	}
	frame, err := readFrame(bytes.NewReader(encodeRPCResponse(42, "not-leader", "leader is x")))
	if err != nil {
		t.Fatal(err)
	}
	index, code, msg, err := decodeRPCResponse(frame)
	if err != nil || index != 42 || code != "not-leader" || msg != "leader is x" {
		t.Fatalf("response %d %q %q %v", index, code, msg, err)
	}
}

func FuzzRPCDecode(f *testing.F) {
	f.Add(encodeRPCRequest(rpcRequest{op: opForward, group: "things", payload: []byte("x")})[4:])
	f.Add(encodeRPCResponse(7, "timeout", "late")[4:])
	f.Add([]byte{1, 0, 0, 0, 0, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if req, err := decodeRPCRequest(b); err == nil {
			again, err := decodeRPCRequest(encodeRPCRequest(req)[4:])
			if err != nil || again.group != req.group || !bytes.Equal(again.payload, req.payload) {
				t.Fatalf("request does not round-trip: %+v %+v %v", req, again, err)
			}
		}
		_, _, _, _ = decodeRPCResponse(b)
		var m handshakeMsg
		_ = readMsg(bytes.NewReader(b), &m, 1<<16)
	})
}

func TestJoinMACBindsPeersAndSecret(t *testing.T) {
	a, _ := peer.Decode("12D3KooWFjccBUPghgA3zfbfWjfbqNEyru6E5qxX4aM7P7eKfLmM")
	idB, err := loadIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := peer.Decode(idB.ID)
	nonce := newNonce()
	k := secretKey("s1")
	base := joinMAC(k, "join", nonce, a, b)
	for name, other := range map[string][]byte{
		"other secret":    joinMAC(secretKey("s2"), "join", nonce, a, b),
		"swapped peers":   joinMAC(k, "join", nonce, b, a),
		"other label":     joinMAC(k, "accept", nonce, a, b),
		"other nonce":     joinMAC(k, "join", newNonce(), a, b),
		"secret not used": joinMAC(secretKey(""), "join", nonce, a, b),
	} {
		if bytes.Equal(base, other) {
			t.Errorf("%s gives the same MAC", name)
		}
	}
}

func TestGaterDenyExpires(t *testing.T) {
	now := time.Unix(1000, 0)
	g := newGater(func() time.Time { return now })
	p, _ := peer.Decode("12D3KooWFjccBUPghgA3zfbfWjfbqNEyru6E5qxX4aM7P7eKfLmM")
	if !g.InterceptPeerDial(p) {
		t.Fatal("unknown peer refused")
	}
	g.denyPeer(p, time.Minute)
	if g.InterceptSecured(0, p, nil) {
		t.Fatal("denied peer admitted")
	}
	now = now.Add(2 * time.Minute)
	if !g.InterceptSecured(0, p, nil) {
		t.Fatal("deny did not expire")
	}
}
