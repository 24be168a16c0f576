package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds dittonode once per test binary run.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dittonode-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "dittonode")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

var (
	httpAddrRE = regexp.MustCompile(`http=(127\.0\.0\.1:\d+)`)
	mqttAddrRE = regexp.MustCompile(`mqtt: listening.* listener=tcp addr=(127\.0\.0\.1:\d+)`)
)

// process is a dittonode running as a real OS process.
type process struct {
	cmd      *exec.Cmd
	addr     string
	mqttAddr string // "" unless the args turn the MQTT TCP listener on
}

// startProcess runs the binary on dataDir with HTTP on a free port, the
// user ditto/ditto, the MQTT broker off unless args say otherwise, and
// args.
func startProcess(t *testing.T, dataDir string, args ...string) *process {
	t.Helper()
	all := append([]string{"run", "--data", dataDir, "--http", "127.0.0.1:0", "--user", "ditto:ditto", "--mqtt", "off"}, args...)
	cmd := exec.Command(buildBinary(t), all...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addrCh := make(chan string, 1)
	mqttCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := mqttAddrRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case mqttCh <- m[1]:
				default:
				}
			}
			if m := httpAddrRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addrCh <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case addr := <-addrCh:
		p := &process{cmd: cmd, addr: addr}
		select {
		case p.mqttAddr = <-mqttCh: // logged before the HTTP address
		default:
		}
		return p
	case <-time.After(30 * time.Second):
		t.Fatal("node did not report its HTTP address")
		return nil
	}
}

func put(ctx context.Context, c *http.Client, url, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("ditto", "ditto")
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("ETag"), nil
}

// TestKill9LosesNoAcknowledgedWrite writes concurrently to a real node
// process, kills it with SIGKILL mid-load, restarts it on the same data and
// checks that every acknowledged write is there with its revision.
func TestKill9LosesNoAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	p := startProcess(t, dir)
	client := &http.Client{Timeout: 10 * time.Second}
	base := "http://" + p.addr + "/api/2/things/"

	const writers = 8
	for w := 0; w < writers; w++ {
		code, _, err := put(context.Background(), client, fmt.Sprintf("%sdurable:t%d", base, w), `{"attributes":{"n":0}}`)
		if err != nil || code != 201 {
			t.Fatalf("create thing %d: %d %v", w, code, err)
		}
	}

	// Each writer updates its own thing sequentially and remembers the
	// last acknowledged value and revision.
	type acked struct{ n int }
	last := make([]acked, writers)
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg       sync.WaitGroup
		acks     atomic.Int64
		enough   = make(chan struct{})
		announce sync.Once
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 1; ctx.Err() == nil; i++ {
				code, _, err := put(ctx, client, fmt.Sprintf("%sdurable:t%d/attributes/n", base, w), strconv.Itoa(i))
				if err != nil || code != 204 {
					return
				}
				last[w] = acked{n: i}
				if acks.Add(1) == 400 {
					announce.Do(func() { close(enough) })
				}
			}
		}(w)
	}
	// Let the load run, then kill the process without warning.
	select {
	case <-enough:
	case <-time.After(60 * time.Second):
		t.Fatalf("only %d writes acknowledged", acks.Load())
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	cancel()
	wg.Wait()

	p2 := startProcess(t, dir)
	base = "http://" + p2.addr + "/api/2/things/"
	total := 0
	for w := 0; w < writers; w++ {
		total += last[w].n
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%sdurable:t%d?fields=_revision,attributes", base, w), nil)
		req.SetBasicAuth("ditto", "ditto")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var got struct {
			Revision   int            `json:"_revision"`
			Attributes map[string]int `json:"attributes"`
		}
		if err := jsonUnmarshal(body, &got); err != nil {
			t.Fatalf("thing %d: %s", w, body)
		}
		// A write that was in flight at the kill may have committed too,
		// so the state may be one step ahead of the last acknowledgement,
		// never behind it. The thing was created at revision 1 with n=0
		// and every write adds one, so the revision must be n+1.
		if n := got.Attributes["n"]; n < last[w].n || n > last[w].n+1 {
			t.Errorf("thing %d: acknowledged n=%d, found %s", w, last[w].n, body)
		}
		if got.Revision != got.Attributes["n"]+1 {
			t.Errorf("thing %d: revision does not match the writes: %s", w, body)
		}
	}
	if total == 0 {
		t.Fatal("no write was acknowledged before the kill")
	}
	t.Logf("%d acknowledged writes survived kill -9", total)
}
