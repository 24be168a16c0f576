package main

import (
	"encoding/base64"
	"strconv"
)

// etcd-put and etcd-get drive etcd's v3 JSON gateway (grpc-gateway over
// HTTP/1.1 keep-alive, served on every member's client URL), so the same
// clients, connections and histogram measure etcd and dittonode alike. Keys
// are load/thing-<i> for i in [0, -things), the key space of the things.
const (
	etcdPutPath   = "/v3/kv/put"
	etcdRangePath = "/v3/kv/range"
	etcdKeyPrefix = "load/thing-"
)

func isEtcd(mode string) bool { return mode == "etcd-put" || mode == "etcd-get" }

// etcdPutBody is a PutRequest for key i whose value is the decimal v, the
// same bytes put-property sends as the property value.
func etcdPutBody(i, v uint64) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"key":"`...)
	b = base64.StdEncoding.AppendEncode(b, etcdKey(i))
	b = append(b, `","value":"`...)
	b = base64.StdEncoding.AppendEncode(b, strconv.AppendUint(nil, v, 10))
	return append(b, `"}`...)
}

// etcdRangeBody is a RangeRequest for key i; serializable ranges are served
// from the member's local state, like dittonode's consistency=local.
func etcdRangeBody(i uint64, serializable bool) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"key":"`...)
	b = base64.StdEncoding.AppendEncode(b, etcdKey(i))
	if serializable {
		return append(b, `","serializable":true}`...)
	}
	return append(b, `"}`...)
}

func etcdKey(i uint64) []byte {
	return strconv.AppendUint([]byte(etcdKeyPrefix), i, 10)
}
