package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dittonode/dittonode/node"
	"github.com/dittonode/dittonode/services/gateway"
)

// fileConfig is the shape of the --config file (YAML). Every field is
// optional; flags given on the command line win over the file, the file
// wins over the environment's defaults.
type fileConfig struct {
	Data              string     `yaml:"data"`
	HTTP              string     `yaml:"http"`
	Users             []string   `yaml:"users"`
	Dev               bool       `yaml:"dev"`
	PreAuthentication bool       `yaml:"pre-authentication"`
	NodeName          string     `yaml:"node-name"`
	LogLevel          string     `yaml:"log-level"`
	DefaultNamespace  string     `yaml:"default-namespace"`
	OIDC              []fileOIDC `yaml:"oidc"`
	P2P               []string   `yaml:"p2p"`
	Join              []string   `yaml:"join"`
	BootstrapExpect   int        `yaml:"bootstrap-expect"`
	ClusterSecret     string     `yaml:"cluster-secret"`
	MDNS              *bool      `yaml:"mdns"`
	RemoveAfter       string     `yaml:"remove-after"`
	ConnectionAdmins  []string   `yaml:"connection-admins"`
}

// fileOIDC is one trusted OpenID Connect issuer of the config file
// (gateway.OIDCIssuer).
type fileOIDC struct {
	Prefix                 string   `yaml:"prefix"`
	Issuer                 string   `yaml:"issuer"`
	JWKSFile               string   `yaml:"jwks-file"`
	JWKSURL                string   `yaml:"jwks-url"`
	Audience               string   `yaml:"audience"`
	AuthSubjects           []string `yaml:"auth-subjects"`
	PrerequisiteConditions []string `yaml:"prerequisite-conditions"`
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runNode(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, logLevel, err := parseRun(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	if addr := getenv("DITTONODE_PPROF"); addr != "" {
		stop, err := servePprof(addr, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	n, err := node.New(cfg, node.Deps{Logger: logger})
	if err != nil {
		return err
	}
	if err := n.Run(ctx); err != nil {
		return err
	}
	logger.Info("node stopped")
	return nil
}

// parseRun builds the node configuration: defaults, then the config file,
// then DITTONODE_USERS, then flags.
func parseRun(args []string, getenv func(string) string, stderr io.Writer) (node.Config, slog.Level, error) {
	cfg := node.DefaultConfig()
	fs := flag.NewFlagSet("dittonode run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configFile = fs.String("config", "", "YAML config file with the same settings as the flags")
		data       = fs.String("data", "", "data directory (default ./data)")
		httpAddr   = fs.String("http", "", "HTTP listen address (default 127.0.0.1:8080)")
		dev        = fs.Bool("dev", false, "development mode: adds the user ditto:ditto")
		preAuth    = fs.Bool("pre-authentication", false, "trust the x-ditto-pre-authenticated header (only behind a proxy that sets it)")
		nodeName   = fs.String("node-name", "", "human-readable node name for logs and status")
		logLevel   = fs.String("log-level", "", "debug, info, warn or error (default info)")
		users      multiFlag
		p2p        multiFlag
		join       multiFlag
		admins     multiFlag
		expect     = fs.Int("bootstrap-expect", 1, "members a new cluster waits for before the lowest peer ID bootstraps it")
		secret     = fs.String("cluster-secret", "", "shared secret that admits members (env DITTONODE_CLUSTER_SECRET); needed for more than one node")
		mdns       = fs.Bool("mdns", true, "find members on the LAN with mDNS")
		noMDNS     = fs.Bool("no-mdns", false, "turn mDNS discovery off")
		removeAft  = fs.Duration("remove-after", 0, "remove a member unreachable this long (0: never)")
	)
	fs.Var(&users, "user", "HTTP basic auth user NAME:PASSWORD (repeatable; subject nginx:NAME); env DITTONODE_USERS=a:pw,b:pw")
	fs.Var(&p2p, "p2p", "libp2p listen multiaddr (repeatable; default QUIC and TCP on port 4001 on all interfaces)")
	fs.Var(&admins, "connection-admin", "authorization subject that may manage /api/2/connections, e.g. nginx:alice (repeatable; --dev adds nginx:ditto)")
	fs.Var(&join, "join", "multiaddr of a member to join, ending in /p2p/<peer ID> (repeatable)")
	if err := fs.Parse(args); err != nil {
		return cfg, 0, err
	}
	if fs.NArg() > 0 {
		return cfg, 0, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}

	var fc fileConfig
	if *configFile != "" {
		b, err := os.ReadFile(*configFile)
		if err != nil {
			return cfg, 0, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
			return cfg, 0, fmt.Errorf("config %s: %w", *configFile, err)
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	pick := func(flagName, flagVal, fileVal string) string {
		if set[flagName] {
			return flagVal
		}
		return fileVal
	}

	if v := pick("data", *data, fc.Data); v != "" {
		cfg.DataDir = v
	}
	if v := pick("http", *httpAddr, fc.HTTP); v != "" {
		cfg.HTTP.Addr = v
	}
	cfg.NodeName = pick("node-name", *nodeName, fc.NodeName)
	if err := meshFlags(&cfg.Mesh, set, fc, getenv, meshArgs{p2p: p2p, join: join, expect: *expect, secret: *secret,
		mdns: *mdns && !*noMDNS, removeAfter: *removeAft}); err != nil {
		return cfg, 0, err
	}
	if fc.DefaultNamespace != "" {
		cfg.HTTP.DefaultNamespace = fc.DefaultNamespace
	}
	cfg.HTTP.PreAuthentication = fc.PreAuthentication || *preAuth
	for _, o := range fc.OIDC {
		cfg.HTTP.OIDC = append(cfg.HTTP.OIDC, gateway.OIDCIssuer{
			Prefix: o.Prefix, Issuer: o.Issuer, JWKSFile: o.JWKSFile, JWKSURL: o.JWKSURL, Audience: o.Audience,
			AuthSubjects: o.AuthSubjects, PrerequisiteConditions: o.PrerequisiteConditions,
		})
	}

	userList := append([]string{}, fc.Users...)
	if env := getenv("DITTONODE_USERS"); env != "" {
		userList = append(userList, strings.Split(env, ",")...)
	}
	userList = append(userList, users...)
	cfg.Connectivity.Admins = append(append([]string{}, fc.ConnectionAdmins...), admins...)
	if fc.Dev || *dev {
		userList = append(userList, "ditto:ditto")
		cfg.Connectivity.Admins = append(cfg.Connectivity.Admins, "nginx:ditto")
	}
	cfg.HTTP.Users = map[string]string{}
	for _, u := range userList {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		name, pw, ok := strings.Cut(u, ":")
		if !ok || name == "" || pw == "" {
			return cfg, 0, fmt.Errorf("user %q: want NAME:PASSWORD", u)
		}
		cfg.HTTP.Users[name] = pw
	}
	if len(cfg.HTTP.Users) == 0 && !cfg.HTTP.PreAuthentication && len(cfg.HTTP.OIDC) == 0 {
		return cfg, 0, errors.New("no users configured: give --user NAME:PASSWORD, DITTONODE_USERS, --dev for ditto:ditto, or oidc issuers in the config file")
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(orDefault(pick("log-level", *logLevel, fc.LogLevel), "info"))); err != nil {
		return cfg, 0, fmt.Errorf("log level: %w", err)
	}
	return cfg, level, cfg.Validate()
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// meshArgs are the mesh flags as parsed.
type meshArgs struct {
	p2p, join   []string
	expect      int
	secret      string
	mdns        bool
	removeAfter time.Duration
}

// meshFlags applies the mesh settings: flags win over the file, the file
// over the environment and defaults.
func meshFlags(m *node.MeshConfig, set map[string]bool, fc fileConfig, getenv func(string) string, a meshArgs) error {
	switch {
	case set["p2p"]:
		m.Listen = a.p2p
	case len(fc.P2P) > 0:
		m.Listen = fc.P2P
	}
	m.Join = append(append([]string{}, fc.Join...), a.join...)
	switch {
	case set["bootstrap-expect"]:
		m.BootstrapExpect = a.expect
	case fc.BootstrapExpect != 0:
		m.BootstrapExpect = fc.BootstrapExpect
	}
	m.ClusterSecret = getenv("DITTONODE_CLUSTER_SECRET")
	if fc.ClusterSecret != "" {
		m.ClusterSecret = fc.ClusterSecret
	}
	if set["cluster-secret"] {
		m.ClusterSecret = a.secret
	}
	switch {
	case set["mdns"] || set["no-mdns"]:
		m.MDNS = a.mdns
	case fc.MDNS != nil:
		m.MDNS = *fc.MDNS
	}
	switch {
	case set["remove-after"]:
		m.RemoveAfter = a.removeAfter
	case fc.RemoveAfter != "":
		d, err := time.ParseDuration(fc.RemoveAfter)
		if err != nil {
			return fmt.Errorf("remove-after: %w", err)
		}
		m.RemoveAfter = d
	}
	return nil
}
