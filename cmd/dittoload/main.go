package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: dittoload <command> [flags]

commands:
  put-property  PUT brewed-coffees of random things (add -prepare to create them first)
  get-thing     GET random things
  search        GET /api/2/search/things with -filter ({i} = a random thing number)
  get           GET one URL
  etcd-put      put random keys through etcd's v3 JSON gateway (same value size as put-property)
  etcd-get      range (get) random keys through etcd's v3 JSON gateway
  hello         serve a hello-world JSON handler as a baseline
-urls a,b,c spreads the clients round-robin over several targets and
-header name:value (repeatable) adds a header to every request.
run "dittoload <command> -h" for its flags; targets must be loopback.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dittoload:", err)
		os.Exit(1)
	}
}

// run executes one dittoload command; tests call it directly.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("missing command\n" + usage)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		_, err := io.WriteString(stdout, usage)
		return err
	}
	cfg, err := parseConfig(args[0], args[1:], stdout)
	if errors.Is(err, errHelpShown) {
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.mode == "hello" {
		return serveHello(ctx, cfg, stdout)
	}
	return load(ctx, cfg, stdout)
}
