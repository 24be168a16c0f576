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
	MemoryLimit       string     `yaml:"memory-limit"`
	IdleRelease       string     `yaml:"idle-release"`
	MQTT              *string    `yaml:"mqtt"`
	MQTTWS            string     `yaml:"mqtt-ws"`
	MQTTTLS           string     `yaml:"mqtt-tls"`
	MQTTQUIC          string     `yaml:"mqtt-quic"`
	MQTTTLSCert       string     `yaml:"mqtt-tls-cert"`
	MQTTTLSKey        string     `yaml:"mqtt-tls-key"`
	MQTTClientCA      string     `yaml:"mqtt-tls-client-ca"`
	DeviceAdmins      []string   `yaml:"device-admins"`
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
	applyMemoryLimit(cfg.MemoryLimit, getenv, logger)
	applyProcs(getenv, logger)
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
	stopIdle := startIdleRelease(ctx, cfg.IdleRelease, logger)
	defer stopIdle()
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
		connAdmins multiFlag
		expect     = fs.Int("bootstrap-expect", 1, "members a new cluster waits for before the lowest peer ID bootstraps it")
		secret     = fs.String("cluster-secret", "", "shared secret that admits members (env DITTONODE_CLUSTER_SECRET); needed for more than one node")
		mdns       = fs.Bool("mdns", true, "find members on the LAN with mDNS")
		noMDNS     = fs.Bool("no-mdns", false, "turn mDNS discovery off")
		removeAft  = fs.Duration("remove-after", 0, "remove a member unreachable this long (0: never)")
		memLimit   = fs.String("memory-limit", "", "soft memory limit of the Go runtime, e.g. 250MiB or 1GiB; 0 turns it off (default 0: none; GOMEMLIMIT wins)")
		idleRel    = fs.Duration("idle-release", 0, "check this often whether the node went quiet, and then give the heap a load left behind back to the OS, once per quiet spell; 0s turns it off (default 5s)")
		mqttAddr   = fs.String("mqtt", "127.0.0.1:1883", `embedded MQTT broker TCP listener ("" or off: no TCP listener)`)
		mqttWS     = fs.String("mqtt-ws", "", "MQTT over WebSocket listener HOST:PORT (off by default)")
		mqttTLS    = fs.String("mqtt-tls", "", "MQTT over TLS listener HOST:PORT (needs --mqtt-tls-cert and --mqtt-tls-key)")
		mqttQUIC   = fs.String("mqtt-quic", "", "MQTT over QUIC listener UDP HOST:PORT (ALPN mqtt; TLS certificate or a self-signed one)")
		mqttCert   = fs.String("mqtt-tls-cert", "", "PEM certificate of the MQTT TLS and QUIC listeners")
		mqttKey    = fs.String("mqtt-tls-key", "", "PEM private key of the MQTT TLS and QUIC listeners")
		mqttCA     = fs.String("mqtt-tls-client-ca", "", "PEM CA bundle: client certificates signed by it log in as the device named by their CN")
		admins     multiFlag
	)
	fs.Var(&admins, "device-admin", "subject allowed to manage MQTT devices on /api/2/devices, e.g. nginx:admin (repeatable)")
	fs.Var(&users, "user", "HTTP basic auth user NAME:PASSWORD (repeatable; subject nginx:NAME); env DITTONODE_USERS=a:pw,b:pw")
	fs.Var(&p2p, "p2p", "libp2p listen multiaddr (repeatable; default QUIC and TCP on port 4001 on all interfaces)")
	fs.Var(&connAdmins, "connection-admin", "authorization subject that may manage /api/2/connections, e.g. nginx:alice (repeatable; --dev adds nginx:ditto)")
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
	if v := pick("memory-limit", *memLimit, fc.MemoryLimit); v != "" {
		n, err := parseSize(v)
		if err != nil {
			return cfg, 0, fmt.Errorf("memory-limit: %w", err)
		}
		cfg.MemoryLimit = n
	}
	switch {
	case set["idle-release"]:
		cfg.IdleRelease = *idleRel
	case fc.IdleRelease != "":
		d, err := time.ParseDuration(fc.IdleRelease)
		if err != nil {
			return cfg, 0, fmt.Errorf("idle-release: %w", err)
		}
		cfg.IdleRelease = d
	}
	if cfg.IdleRelease < 0 {
		return cfg, 0, fmt.Errorf("idle-release: %v is negative", cfg.IdleRelease)
	}
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

	if err := mqttFlags(&cfg, set, fc, mqttArgs{addr: *mqttAddr, ws: *mqttWS, tls: *mqttTLS, quic: *mqttQUIC,
		cert: *mqttCert, key: *mqttKey, ca: *mqttCA}); err != nil {
		return cfg, 0, err
	}
	cfg.HTTP.DeviceAdmins = append(append([]string{}, fc.DeviceAdmins...), admins...)

	userList := append([]string{}, fc.Users...)
	if env := getenv("DITTONODE_USERS"); env != "" {
		userList = append(userList, strings.Split(env, ",")...)
	}
	userList = append(userList, users...)
	cfg.Connectivity.Admins = append(append([]string{}, fc.ConnectionAdmins...), connAdmins...)
	if fc.Dev || *dev {
		userList = append(userList, "ditto:ditto")
		cfg.Connectivity.Admins = append(cfg.Connectivity.Admins, "nginx:ditto")
		// The dev user may manage devices, and the device ditto/ditto acts
		// as the dev user, so it may change the things the dev user made.
		cfg.HTTP.DeviceAdmins = append(cfg.HTTP.DeviceAdmins, "nginx:ditto")
		cfg.Devices = append(cfg.Devices, node.DeviceSeed{Username: "ditto", Password: "ditto", Subjects: []string{"nginx:ditto"}})
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

// mqttArgs are the broker flags as parsed.
type mqttArgs struct{ addr, ws, tls, quic, cert, key, ca string }

// mqttFlags applies the broker settings: flags win over the file.
func mqttFlags(cfg *node.Config, set map[string]bool, fc fileConfig, a mqttArgs) error {
	m := &cfg.MQTT
	pickStr := func(name, flagVal, fileVal string) string {
		if set[name] {
			return flagVal
		}
		return fileVal
	}
	addr := a.addr
	if !set["mqtt"] && fc.MQTT != nil {
		addr = *fc.MQTT
	}
	if addr == "off" {
		addr = ""
	}
	m.Addr = addr
	m.WSAddr = pickStr("mqtt-ws", a.ws, fc.MQTTWS)
	m.TLSAddr = pickStr("mqtt-tls", a.tls, fc.MQTTTLS)
	m.QUICAddr = pickStr("mqtt-quic", a.quic, fc.MQTTQUIC)
	m.TLSCertFile = pickStr("mqtt-tls-cert", a.cert, fc.MQTTTLSCert)
	m.TLSKeyFile = pickStr("mqtt-tls-key", a.key, fc.MQTTTLSKey)
	m.TLSClientCAFile = pickStr("mqtt-tls-client-ca", a.ca, fc.MQTTClientCA)
	return nil
}
