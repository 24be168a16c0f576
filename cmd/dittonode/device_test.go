package main

import (
	"strings"
	"testing"

	"github.com/dittonode/dittonode/node"
)

func TestDeviceCommand(t *testing.T) {
	n := startInProcess(t, func(c *node.Config) {
		c.HTTP.DeviceAdmins = []string{"nginx:ditto"}
		c.Connectivity.DeviceHashCost = 4
	})
	addr := n.HTTPAddr().String()
	admin := []string{"--http", addr, "--user", "ditto:ditto"}
	if out, err := runCmd(t, append(append([]string{"device", "add"}, admin...), "--password", "pw-1", "--subject", "mqtt:s1", "--subject", "nginx:x", "sensor-1")...); err != nil || !strings.Contains(out, "saved") {
		t.Fatalf("add: %v %s", err, out)
	}
	out, err := runCmd(t, append([]string{"device", "list"}, admin...)...)
	if err != nil || !strings.Contains(out, "sensor-1") || !strings.Contains(out, "mqtt:s1,nginx:x") || strings.Contains(out, "pw-1") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if _, err := runCmd(t, append([]string{"device", "add"}, admin...)...); err == nil {
		t.Error("add without a name and password succeeded")
	}
	if out, err := runCmd(t, append(append([]string{"device", "remove"}, admin...), "sensor-1")...); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("remove: %v %s", err, out)
	}
	if _, err := runCmd(t, append(append([]string{"device", "remove"}, admin...), "sensor-1")...); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("second remove: %v", err)
	}
	if _, err := runCmd(t, "device", "list", "--http", addr); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("list without credentials: %v", err)
	}
}
