package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// clusterStatus is the part of GET /cluster the status command prints.
type clusterStatus struct {
	Node struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"node"`
	Members []struct {
		ID        string            `json:"id"`
		Name      string            `json:"name"`
		Addrs     []string          `json:"addrs"`
		Self      bool              `json:"self"`
		Reachable bool              `json:"reachable"`
		Suffrage  map[string]string `json:"suffrage"`
	} `json:"members"`
	Pending []string `json:"pending"`
	Groups  map[string]struct {
		Leader       string `json:"leader"`
		State        string `json:"state"`
		Term         uint64 `json:"term"`
		CommitIndex  uint64 `json:"commitIndex"`
		AppliedIndex uint64 `json:"appliedIndex"`
	} `json:"groups"`
}

// adminFlags are the flags shared by status and remove.
type adminFlags struct {
	http, user string
}

func parseAdmin(name string, args []string, stderr io.Writer) (adminFlags, []string, error) {
	fs := flag.NewFlagSet("dittonode "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a adminFlags
	fs.StringVar(&a.http, "http", "127.0.0.1:8080", "HTTP address of a node")
	fs.StringVar(&a.user, "user", "", "basic auth NAME:PASSWORD")
	if err := fs.Parse(args); err != nil {
		return a, nil, err
	}
	return a, fs.Args(), nil
}

// clusterRequest sends one request to the node's cluster endpoint.
func clusterRequest(ctx context.Context, a adminFlags, method, path string) ([]byte, error) {
	base := a.http
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	if a.user != "" {
		u, p, ok := strings.Cut(a.user, ":")
		if !ok {
			return nil, errors.New("--user: want NAME:PASSWORD")
		}
		req.SetBasicAuth(u, p)
	}
	client := &http.Client{}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// runStatus prints GET /cluster for a person.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a, rest, err := parseAdmin("status", args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected arguments: %v", rest)
	}
	body, err := clusterRequest(ctx, a, http.MethodGet, "/cluster")
	if err != nil {
		return err
	}
	var st clusterStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("decode /cluster: %w", err)
	}
	printStatus(stdout, st)
	return nil
}

func printStatus(w io.Writer, st clusterStatus) {
	names := map[string]string{}
	for _, m := range st.Members {
		names[m.ID] = m.Name
	}
	label := func(id string) string {
		if id == "" {
			return "(none)"
		}
		if n := names[id]; n != "" {
			return n + " (" + id + ")"
		}
		return id
	}
	fmt.Fprintf(w, "node %s\n\nmembers:\n", label(st.Node.ID))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tNAME\tREACHABLE\tSUFFRAGE\tADDRESSES")
	for _, m := range st.Members {
		reach := "yes"
		if !m.Reachable {
			reach = "NO"
		}
		if m.Self {
			reach = "self"
		}
		var suff []string
		for g, s := range m.Suffrage {
			suff = append(suff, g+"="+s)
		}
		slices.Sort(suff)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", m.ID, m.Name, reach, strings.Join(suff, ","), strings.Join(m.Addrs, " "))
	}
	_ = tw.Flush()
	if len(st.Pending) > 0 {
		fmt.Fprintf(w, "\nadmitted, not yet members: %s\n", strings.Join(st.Pending, ", "))
	}
	fmt.Fprintln(w, "\ngroups:")
	groups := make([]string, 0, len(st.Groups))
	for g := range st.Groups {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  GROUP\tLEADER\tSTATE\tTERM\tCOMMIT\tAPPLIED")
	for _, g := range groups {
		s := st.Groups[g]
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%d\n", g, label(s.Leader), s.State, s.Term, s.CommitIndex, s.AppliedIndex)
	}
	_ = tw.Flush()
}

// runRemove removes a member: dittonode remove [--http A --user u:p] PEER-ID.
func runRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a, rest, err := parseAdmin("remove", args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if len(rest) != 1 {
		return errors.New("usage: dittonode remove [--http ADDR] [--user NAME:PASSWORD] PEER-ID")
	}
	if _, err := clusterRequest(ctx, a, http.MethodDelete, "/cluster/members/"+url.PathEscape(rest[0])); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed %s\n", rest[0])
	return nil
}
