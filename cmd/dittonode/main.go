package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dittonode:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return fmt.Errorf("missing command")
	}
	switch args[0] {
	case "run":
		return runNode(ctx, args[1:], getenv, stderr)
	case "status":
		return runStatus(ctx, args[1:], stdout, stderr)
	case "remove":
		return runRemove(ctx, args[1:], stdout, stderr)
	case "device":
		return runDevice(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "dittonode", version)
		return nil
	case "help", "-h", "--help":
		usage(stdout)
		return nil
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprint(w, `dittonode: an edge digital-twin node speaking the Eclipse Ditto API

Commands:
  run       run a node (dittonode run --help for its flags)
  status    print the cluster as a node sees it (--http ADDR --user NAME:PASSWORD)
  remove    remove a member from the cluster (--http ADDR --user NAME:PASSWORD PEER-ID)
  device    manage MQTT devices: add --password PW [--subject S] NAME | list | remove NAME
            (--http ADDR --user NAME:PASSWORD of a device administrator)
  version   print the version
`)
}
