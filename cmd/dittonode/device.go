package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

// runDevice manages the MQTT device identities of a node over
// /api/2/devices: add (create or replace), list, remove.
func runDevice(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: dittonode device add|list|remove --http ADDR --user NAME:PASSWORD [...]")
	}
	op := args[0]
	fs := flag.NewFlagSet("dittonode device "+op, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a adminFlags
	var subjects multiFlag
	fs.StringVar(&a.http, "http", "127.0.0.1:8080", "HTTP address of a node")
	fs.StringVar(&a.user, "user", "", "basic auth NAME:PASSWORD of a device administrator")
	password := ""
	if op == "add" {
		fs.StringVar(&password, "password", "", "the device's password")
		fs.Var(&subjects, "subject", "Ditto subject the device acts as (repeatable; default mqtt:USERNAME)")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	rest := fs.Args()
	switch op {
	case "list":
		if len(rest) != 0 {
			return fmt.Errorf("unexpected arguments: %v", rest)
		}
		body, err := deviceRequest(ctx, a, http.MethodGet, "", nil)
		if err != nil {
			return err
		}
		var list []struct {
			Username string   `json:"username"`
			Subjects []string `json:"subjects"`
			Modified string   `json:"_modified"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			return fmt.Errorf("decode devices: %w", err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tSUBJECTS\tMODIFIED")
		for _, d := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Username, strings.Join(d.Subjects, ","), d.Modified)
		}
		return tw.Flush()
	case "add":
		if len(rest) != 1 {
			return errors.New("usage: dittonode device add --password PW [--subject S]... USERNAME")
		}
		if password == "" {
			return errors.New("--password is required")
		}
		def := map[string]any{"password": password}
		if len(subjects) > 0 {
			def["subjects"] = []string(subjects)
		}
		b, _ := json.Marshal(def)
		if _, err := deviceRequest(ctx, a, http.MethodPut, rest[0], b); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "device %s saved\n", rest[0])
		return nil
	case "remove":
		if len(rest) != 1 {
			return errors.New("usage: dittonode device remove USERNAME")
		}
		if _, err := deviceRequest(ctx, a, http.MethodDelete, rest[0], nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "device %s removed\n", rest[0])
		return nil
	}
	return fmt.Errorf("unknown device command %q (add, list, remove)", op)
}

func deviceRequest(ctx context.Context, a adminFlags, method, username string, body []byte) ([]byte, error) {
	base := a.http
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	path := "/api/2/devices"
	if username != "" {
		path += "/" + url.PathEscape(username)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.user != "" {
		u, p, ok := strings.Cut(a.user, ":")
		if !ok {
			return nil, errors.New("--user: want NAME:PASSWORD")
		}
		req.SetBasicAuth(u, p)
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(out)))
	}
	return out, nil
}
