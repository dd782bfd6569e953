// Package deploy holds what runs rtb outside one machine: the container image (Dockerfile), a
// compose file with a 3-broker Kafka cluster, Kubernetes manifests (kustomize), Prometheus rules
// and configuration, and the Grafana dashboard. Its tests check those files against the code
// without a network or a container runtime: the image's binary is built from the build context
// .dockerignore lets through, each manifest is decoded strictly into its Kubernetes type, every
// command line names a real subcommand and real flags, and every metric a panel or a rule queries
// is on /metrics of a running `rtb serve`.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	k8syaml "sigs.k8s.io/yaml"

	"rtb/events"
	"rtb/events/eventstest"
)

// expectedElsewhere lists metrics the dashboard or the rules use that another branch adds; each is
// allowed to be missing from /metrics until that branch is merged, then its entry goes.
var expectedElsewhere = map[string]string{}

const repoRoot = ".."

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// rtbBinary builds cmd/rtb as the Dockerfile does (CGO_ENABLED=0, -trimpath) from a copy of the
// repository holding only what .dockerignore lets into the build context, once per test run: a
// file the image needs but the context leaves out fails here as it would fail `docker build`.
func rtbBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rtb-deploy-test-")
		if err != nil {
			binErr = err
			return
		}
		binDir = dir
		ctxDir := filepath.Join(dir, "context")
		if binErr = copyBuildContext(repoRoot, ctxDir); binErr != nil {
			return
		}
		binPath = filepath.Join(dir, "rtb")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, "./cmd/rtb")
		cmd.Dir = ctxDir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=readonly", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/rtb in the build context .dockerignore leaves: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// copyBuildContext copies the files of root that .dockerignore does not exclude into dst.
func copyBuildContext(root, dst string) error {
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		return err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return fmt.Errorf(".dockerignore: %w", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return fmt.Errorf(".dockerignore: %w", err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		excluded, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		if excluded {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

var (
	flagsMu    sync.Mutex
	flagsCache = map[string]map[string]bool{}
)

var helpFlag = regexp.MustCompile(`^  --([a-z0-9][a-z0-9-]*)`)

// flagsOf runs `rtb SUB --help` and returns the flags it lists; an unknown subcommand fails.
func flagsOf(t *testing.T, sub string) map[string]bool {
	t.Helper()
	flagsMu.Lock()
	defer flagsMu.Unlock()
	if f, ok := flagsCache[sub]; ok {
		return f
	}
	out, err := exec.Command(rtbBinary(t), sub, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("rtb %s --help: %v (is %q an rtb subcommand?)\n%s", sub, err, sub, out)
	}
	flags := map[string]bool{"help": true}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := helpFlag.FindStringSubmatch(sc.Text()); m != nil {
			flags[m[1]] = true
		}
	}
	flagsCache[sub] = flags
	return flags
}

// checkCommand checks that args, an rtb command line without the binary, is a subcommand and flags
// it has; it returns the flags given, with their values ("true" for a bare boolean).
func checkCommand(t *testing.T, where string, args []string) map[string]string {
	t.Helper()
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		t.Errorf("%s: command %q does not start with an rtb subcommand", where, args)
		return nil
	}
	known := flagsOf(t, args[0])
	given := map[string]string{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			t.Errorf("%s: rtb %s: argument %q is not a flag (rtb takes no positional arguments)", where, args[0], a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !known[name] {
			t.Errorf("%s: rtb %s has no flag --%s (see rtb %s --help)", where, args[0], name, args[0])
			continue
		}
		if !hasVal {
			val = "true"
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				i++
				val = args[i]
			}
		}
		given[name] = val
	}
	return given
}

// checkEnv checks that each RTB_* variable sets a flag of subcommand sub.
func checkEnv(t *testing.T, where, sub string, names []string) {
	t.Helper()
	known := flagsOf(t, sub)
	for _, n := range names {
		if !strings.HasPrefix(n, "RTB_") {
			continue
		}
		flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(n, "RTB_")), "_", "-")
		if !known[flag] {
			t.Errorf("%s: environment %s sets no flag of rtb %s (there is no --%s)", where, n, sub, flag)
		}
	}
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line       int
	cmd, args  string
	stage      int // index of the FROM it follows
	stageAlias string
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	stage, alias := -1, ""
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // comments inside a continued instruction are dropped, as Docker does
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
			alias = ""
			if f := strings.Fields(args); len(f) == 3 && strings.EqualFold(f[1], "AS") {
				alias = f[2]
			}
		}
		out = append(out, instruction{line: start, cmd: cmd, args: strings.TrimSpace(args), stage: stage, stageAlias: alias})
	}
	if cur.Len() > 0 {
		t.Fatalf("%s ends inside a continued line", path)
	}
	return out
}

func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(in.args), &v); err != nil {
		t.Errorf("Dockerfile:%d: %s %s is not in exec form (JSON array; the image has no shell): %v", in.line, in.cmd, in.args, err)
	}
	return v
}

// TestDockerfile checks deploy/Dockerfile statically: no container engine runs here (docker is
// only a client on this machine), so what can be read is checked and the build step is re-run.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, "Dockerfile")
	known := map[string]bool{"FROM": true, "ARG": true, "WORKDIR": true, "COPY": true, "RUN": true, "USER": true,
		"ENV": true, "VOLUME": true, "EXPOSE": true, "HEALTHCHECK": true, "ENTRYPOINT": true, "CMD": true, "LABEL": true}
	var froms []instruction
	last := 0
	for _, in := range ins {
		if !known[in.cmd] {
			t.Errorf("Dockerfile:%d: unknown instruction %s", in.line, in.cmd)
		}
		if in.cmd == "FROM" {
			froms = append(froms, in)
		}
		last = in.stage
	}
	if len(froms) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final one", len(froms))
	}
	final := func(cmd string) []instruction {
		var r []instruction
		for _, in := range ins {
			if in.stage == last && in.cmd == cmd {
				r = append(r, in)
			}
		}
		return r
	}
	mod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	for _, in := range ins {
		if in.cmd == "ARG" && strings.HasPrefix(in.args, "GO_VERSION=") && (goLine == nil || in.args != "GO_VERSION="+string(goLine[1])) {
			t.Errorf("Dockerfile:%d: %s, but go.mod says go %s", in.line, in.args, goLine[1])
		}
	}
	if img := strings.Fields(froms[len(froms)-1].args)[0]; strings.Contains(img, "golang") {
		t.Errorf("final stage FROM %s: the image should carry the binary, not the toolchain", img)
	}

	// The build: CGO_ENABLED=0, -o OUT ./cmd/rtb, in a named stage the final one copies OUT from.
	var buildStage, out string
	for _, in := range ins {
		if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
			continue
		}
		if !strings.Contains(in.args, "CGO_ENABLED=0") {
			t.Errorf("Dockerfile:%d: go build without CGO_ENABLED=0: %s", in.line, in.args)
		}
		if !strings.Contains(in.args, "./cmd/rtb") {
			t.Errorf("Dockerfile:%d: go build does not build ./cmd/rtb", in.line)
		}
		if m := regexp.MustCompile(`-o\s+(\S+)`).FindStringSubmatch(in.args); m != nil {
			out = m[1]
		}
		buildStage = in.stageAlias
	}
	if buildStage == "" || out == "" {
		t.Fatal("no named stage runs go build -o OUT ./cmd/rtb")
	}
	var binary string
	for _, in := range final("COPY") {
		f := strings.Fields(in.args)
		if slices.Contains(f, "--from="+buildStage) && f[len(f)-2] == out {
			binary = f[len(f)-1]
		}
	}
	if binary == "" {
		t.Fatalf("the final stage does not COPY --from=%s %s", buildStage, out)
	}

	users := final("USER")
	if len(users) == 0 {
		t.Error("final stage has no USER: the container would run as root")
	} else {
		u, _, _ := strings.Cut(users[len(users)-1].args, ":")
		if u == "root" || u == "0" {
			t.Errorf("final stage USER %s: want a non-root user", users[len(users)-1].args)
		}
	}

	env := map[string]string{}
	for _, in := range final("ENV") {
		for _, kv := range strings.Fields(in.args) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
	}
	checkEnv(t, "Dockerfile ENV", "serve", slices.Collect(maps.Keys(env)))
	var volumes []string
	for _, in := range final("VOLUME") {
		volumes = append(volumes, execForm(t, in)...)
	}
	if dataDir := env["RTB_DATA_DIR"]; dataDir == "" || !slices.Contains(volumes, dataDir) {
		t.Errorf("data dir RTB_DATA_DIR=%q is not a VOLUME (%q)", dataDir, volumes)
	}

	eps := final("ENTRYPOINT")
	cmds := final("CMD")
	if len(eps) == 0 || len(cmds) == 0 {
		t.Fatal("final stage needs ENTRYPOINT [binary] and CMD [subcommand…]")
	}
	if ep := execForm(t, eps[len(eps)-1]); !slices.Equal(ep, []string{binary}) {
		t.Errorf("ENTRYPOINT %q, want [%q]", ep, binary)
	}
	cmd := execForm(t, cmds[len(cmds)-1])
	if len(cmd) == 0 || cmd[0] != "serve" {
		t.Errorf("CMD %q, want rtb serve by default", cmd)
	}
	given := checkCommand(t, "Dockerfile CMD", cmd)

	hcs := final("HEALTHCHECK")
	if len(hcs) == 0 {
		t.Fatal("final stage has no HEALTHCHECK")
	}
	_, hc, ok := strings.Cut(hcs[len(hcs)-1].args, "CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %s has no CMD", hcs[len(hcs)-1].args)
	}
	var probe []string
	if err := json.Unmarshal([]byte(hc), &probe); err != nil || len(probe) < 2 || probe[0] != binary {
		t.Fatalf("HEALTHCHECK CMD %s: want [%q, \"healthcheck\", …] in exec form (no shell or curl in the image)", hc, binary)
	}
	checkCommand(t, "Dockerfile HEALTHCHECK", probe[1:])

	var exposed []string
	for _, in := range final("EXPOSE") {
		exposed = append(exposed, strings.Fields(in.args)...)
	}
	for _, addr := range []string{orDefault(given["listen"], ":8080"), given["admin"]} {
		if _, port, ok := strings.Cut(addr, ":"); ok && !slices.Contains(exposed, port) {
			t.Errorf("port %s of CMD is not EXPOSEd (%q)", port, exposed)
		}
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// TestImageBinaryIsStatic: the binary the Dockerfile's build produces needs no dynamic loader,
// so it runs in a final stage without libc, and it answers `rtb version`.
func TestImageBinaryIsStatic(t *testing.T) {
	bin := rtbBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a dynamic loader (PT_INTERP): it is not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary links %q dynamically", libs)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "rtb ") {
		t.Errorf("rtb version: %v\n%s", err, out)
	}
}

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"compose.yaml"},
		cli.WithWorkingDirectory("."), cli.WithEnv(nil), cli.WithInterpolation(true), cli.WithProfiles([]string{"*"}))
	if err != nil {
		t.Fatal(err)
	}
	// The compose-spec schema validation runs here: an unknown key or a wrong type fails.
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return p
}

func envOf(s types.ServiceConfig) []string {
	var names []string
	for k := range s.Environment {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// TestCompose checks deploy/compose.yaml against the code: a Kafka cluster of 3 KRaft brokers with
// replication 3 and min.insync.replicas 2, every topic of events.Topics with its partitions and
// cleanup policy, rtb services whose commands and health checks are real subcommands and flags,
// 2 bidders and 2 pacers of which exactly one trains shading, and Prometheus scraping each of them.
func TestCompose(t *testing.T) {
	p := loadCompose(t)
	svc := map[string]types.ServiceConfig{}
	for name, s := range p.Services {
		svc[name] = s
	}
	for name, s := range p.DisabledServices {
		svc[name] = s
	}

	kafka := map[string]bool{}
	nodeIDs := map[string]bool{}
	for name, s := range svc {
		if !strings.HasPrefix(s.Image, "apache/kafka:") || s.Environment["KAFKA_NODE_ID"] == nil {
			continue
		}
		kafka[name] = true
		env := func(k string) string {
			if v := s.Environment[k]; v != nil {
				return *v
			}
			return ""
		}
		nodeIDs[env("KAFKA_NODE_ID")] = true
		// KRaft formats storage with a cluster id that is a UUID: 16 bytes in URL-safe base64 without
		// padding; anything else stops the broker at its first start.
		if id := env("CLUSTER_ID"); len(id) != 22 || !clusterIDRoundTrips(id) {
			t.Errorf("%s: CLUSTER_ID %q is not 16 bytes in URL-safe base64 (22 characters)", name, id)
		}
		for k, want := range map[string]string{
			"KAFKA_DEFAULT_REPLICATION_FACTOR": "3", "KAFKA_MIN_INSYNC_REPLICAS": "2",
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false", "KAFKA_PROCESS_ROLES": "broker,controller",
		} {
			if got := env(k); got != want {
				t.Errorf("%s: %s=%q, want %q", name, k, got, want)
			}
		}
		if adv := env("KAFKA_ADVERTISED_LISTENERS"); adv != "PLAINTEXT://"+name+":9092" {
			t.Errorf("%s: advertises %q, want PLAINTEXT://%s:9092 (what the rtb services dial)", name, adv, name)
		}
		voters := env("KAFKA_CONTROLLER_QUORUM_VOTERS")
		for other := range svc {
			if strings.HasPrefix(other, "kafka-") && other != "kafka-topics" && !strings.Contains(voters, "@"+other+":") {
				t.Errorf("%s: quorum voters %q leave out %s", name, voters, other)
			}
		}
	}
	if len(kafka) != 3 || len(nodeIDs) != 3 {
		t.Errorf("%d Kafka brokers with %d distinct node ids, want 3 and 3", len(kafka), len(nodeIDs))
	}

	// Topics: the one-shot service's script against events.Topics.
	topics, ok := svc["kafka-topics"]
	if !ok {
		t.Fatal("no kafka-topics service")
	}
	script := strings.Join(append(append([]string{}, topics.Entrypoint...), topics.Command...), " ")
	for _, want := range []string{"--replication-factor 3", "min.insync.replicas=2", "--if-not-exists"} {
		if !strings.Contains(script, want) {
			t.Errorf("kafka-topics does not create topics with %s", want)
		}
	}
	created := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*create (\S+) (\d+) (\S+)\s*$`).FindAllStringSubmatch(script, -1) {
		created[m[1]] = m[2] + " " + m[3]
	}
	for _, spec := range events.Topics(0) {
		policy := "delete"
		if spec.Compact {
			policy = "compact"
		}
		want := fmt.Sprintf("%d %s", spec.Partitions, policy)
		if got := created[spec.Name]; got != want {
			t.Errorf("kafka-topics creates %s as %q, want %q (partitions, cleanup.policy as events.Topics)", spec.Name, got, want)
		}
		delete(created, spec.Name)
	}
	for name := range created {
		t.Errorf("kafka-topics creates %s, which rtb does not use", name)
	}

	roles := map[string][]string{}
	trainers := 0
	var scrapeWant []string
	for name, s := range svc {
		if s.Image != "rtb:local" {
			continue
		}
		if s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("%s: image rtb:local not built from deploy/Dockerfile", name)
		}
		where := "compose " + name
		given := checkCommand(t, where, s.Command)
		sub := s.Command[0]
		roles[sub] = append(roles[sub], name)
		checkEnv(t, where, sub, envOf(s))
		if s.HealthCheck != nil && len(s.HealthCheck.Test) > 0 && s.HealthCheck.Test[0] == "CMD" {
			if s.HealthCheck.Test[1] != "/rtb" {
				t.Errorf("%s: health check runs %q, want /rtb", name, s.HealthCheck.Test[1])
			}
			checkCommand(t, where+" healthcheck", s.HealthCheck.Test[2:])
		}
		if sub == "bidder" || sub == "pacer" {
			for _, b := range strings.Split(given["kafka"], ",") {
				host, port, _ := strings.Cut(b, ":")
				if !kafka[host] || port != "9092" {
					t.Errorf("%s: --kafka names %q, not a broker of this file", name, b)
				}
			}
			if given["admin"] == "" || strings.HasPrefix(given["admin"], "127.") {
				t.Errorf("%s: --admin %q is not reachable from Prometheus", name, given["admin"])
			}
			_, port, _ := strings.Cut(given["admin"], ":")
			scrapeWant = append(scrapeWant, name+":"+port)
		}
		if sub == "pacer" && given["shading-interval"] != "0" {
			trainers++
		}
	}
	if len(roles["bidder"]) != 2 || len(roles["pacer"]) != 2 {
		t.Errorf("bidders %q, pacers %q: want 2 of each", roles["bidder"], roles["pacer"])
	}
	if trainers != 1 {
		t.Errorf("%d pacers run the shading trainer, want exactly 1 (give the others --shading-interval 0)", trainers)
	}

	// Prometheus: scrapes every bidder and pacer, loads the rules; promtool accepts its config.
	prom, ok := svc["prometheus"]
	if !ok {
		t.Fatal("no prometheus service")
	}
	mounted := map[string]string{}
	for _, v := range prom.Volumes {
		if v.Type == types.VolumeTypeBind {
			mounted[v.Target] = v.Source
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("prometheus mounts %s, which does not exist", v.Source)
			}
		}
	}
	cfgPath := mounted["/etc/prometheus/prometheus.yml"]
	if cfgPath == "" {
		t.Fatal("prometheus does not mount a prometheus.yml")
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	var scraped []string
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			scraped = append(scraped, st.Targets...)
		}
	}
	sort.Strings(scraped)
	sort.Strings(scrapeWant)
	if !slices.Equal(scraped, scrapeWant) {
		t.Errorf("prometheus scrapes %q, want every bidder's and pacer's admin port %q", scraped, scrapeWant)
	}
	for _, rf := range cfg.RuleFiles {
		if mounted["/etc/prometheus/"+rf] == "" {
			t.Errorf("prometheus.yml loads %s, which compose does not mount beside it", rf)
		}
	}
	promtool(t, "check", "config", "prometheus/prometheus.yml")

	graf, ok := svc["grafana"]
	if !ok {
		t.Fatal("no grafana service")
	}
	for _, v := range graf.Volumes {
		if _, err := os.Stat(v.Source); v.Type == types.VolumeTypeBind && err != nil {
			t.Errorf("grafana mounts %s, which does not exist", v.Source)
		}
	}
}

func clusterIDRoundTrips(id string) bool {
	b, err := base64.RawURLEncoding.DecodeString(id)
	return err == nil && len(b) == 16 && base64.RawURLEncoding.EncodeToString(b) == id
}

func promtool(t *testing.T, args ...string) {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (.ci/run does)")
	}
	if out, err := exec.Command(p, args...).CombinedOutput(); err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// kustomizeBuild builds deploy/k8s as `kubectl apply -k` would, with a generated notice key in
// place of the notice-key.env an operator writes (it is not committed).
func kustomizeBuild(t *testing.T) []map[string]any {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("k8s")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notice-key.env"), []byte("RTB_NOTICE_KEY="+strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build deploy/k8s: %v", err)
	}
	var objs []map[string]any
	for _, r := range rm.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, m)
	}
	return objs
}

// decodeStrict decodes obj into a T refusing unknown and duplicate fields, as the API server's
// strict field validation does.
func decodeStrict[T any](t *testing.T, obj map[string]any) T {
	t.Helper()
	var out T
	b, err := k8syaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	if err := k8syaml.UnmarshalStrict(b, &out); err != nil {
		t.Errorf("%s %v: %v", obj["kind"], obj["metadata"].(map[string]any)["name"], err)
	}
	return out
}

// TestKubernetes builds deploy/k8s with kustomize and decodes every object strictly into its
// k8s.io/api type (an unknown or misspelt field fails), then checks the objects against each
// other and the binary: commands and environment are real flags, probes hit the ports rtb serves
// them on, Services, PDBs and the HPA select real pods, one pacer trains shading.
func TestKubernetes(t *testing.T) {
	objs := kustomizeBuild(t)
	var deps []appsv1.Deployment
	var svcs []corev1.Service
	var hpas []autoscalingv2.HorizontalPodAutoscaler
	var pdbs []policyv1.PodDisruptionBudget
	cms := map[string]corev1.ConfigMap{}
	secrets := map[string]corev1.Secret{}
	kinds := map[string]int{}
	for _, o := range objs {
		kind, _ := o["kind"].(string)
		api, _ := o["apiVersion"].(string)
		kinds[kind]++
		switch api + " " + kind {
		case "apps/v1 Deployment":
			deps = append(deps, decodeStrict[appsv1.Deployment](t, o))
		case "v1 Service":
			svcs = append(svcs, decodeStrict[corev1.Service](t, o))
		case "autoscaling/v2 HorizontalPodAutoscaler":
			hpas = append(hpas, decodeStrict[autoscalingv2.HorizontalPodAutoscaler](t, o))
		case "policy/v1 PodDisruptionBudget":
			pdbs = append(pdbs, decodeStrict[policyv1.PodDisruptionBudget](t, o))
		case "v1 ConfigMap":
			c := decodeStrict[corev1.ConfigMap](t, o)
			cms[c.Name] = c
		case "v1 Secret":
			sec := decodeStrict[corev1.Secret](t, o)
			secrets[sec.Name] = sec
		case "v1 Namespace":
			decodeStrict[corev1.Namespace](t, o)
		default:
			t.Errorf("%s %s: a kind this test does not decode; add it", api, kind)
		}
	}
	for _, k := range []string{"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap", "Secret"} {
		if kinds[k] == 0 {
			t.Errorf("no %s in deploy/k8s", k)
		}
	}

	samples, err := os.ReadFile(filepath.Join(repoRoot, "bidder", "campaign", "samples.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	podLabels := map[string]map[string]string{}
	trainers := int32(0)
	var bidders int
	for _, d := range deps {
		podLabels[d.Name] = d.Spec.Template.Labels
		if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("Deployment %s: selector %v does not select its own pods %v", d.Name, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
		}
		ps := d.Spec.Template.Spec
		if sc := ps.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("Deployment %s: pods may run as root", d.Name)
		}
		for _, c := range ps.Containers {
			where := "Deployment " + d.Name + " container " + c.Name
			given := checkCommand(t, where, c.Args)
			sub := c.Args[0]
			var env []string
			for _, e := range c.Env {
				env = append(env, e.Name)
				if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil {
					if _, ok := secrets[r.SecretKeyRef.Name].Data[r.SecretKeyRef.Key]; !ok {
						t.Errorf("%s: %s from secret %s key %s, which does not exist", where, e.Name, r.SecretKeyRef.Name, r.SecretKeyRef.Key)
					}
				}
			}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					cm, ok := cms[ef.ConfigMapRef.Name]
					if !ok {
						t.Errorf("%s: envFrom ConfigMap %s does not exist", where, ef.ConfigMapRef.Name)
					}
					for k := range cm.Data {
						env = append(env, k)
					}
				}
			}
			checkEnv(t, where, sub, env)
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: needs a CPU request (the HPA scales on it) and a memory limit", where)
			}
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if _, port, _ := strings.Cut(given["admin"], ":"); port != strconv.Itoa(int(ports["admin"])) {
				t.Errorf("%s: --admin %q, but the port named admin (scraped by Prometheus) is %d", where, given["admin"], ports["admin"])
			}
			if cp := given["campaigns"]; cp != "" {
				if !mountsConfigMap(ps, c, filepath.Dir(cp), "rtb-campaigns") {
					t.Errorf("%s: --campaigns %s is not in a mount of the campaigns ConfigMap", where, cp)
				}
			}
			switch sub {
			case "bidder":
				bidders++
				_, listen, _ := strings.Cut(orDefault(given["listen"], ":8080"), ":")
				checkProbe(t, where+" readiness", c.ReadinessProbe, "/readyz", listen, ports)
				checkProbe(t, where+" liveness", c.LivenessProbe, "/healthz", listen, ports)
			case "pacer":
				if given["shading-interval"] != "0" {
					trainers += *d.Spec.Replicas
					if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
						t.Errorf("Deployment %s runs the shading trainer with a %q rollout (default RollingUpdate): two would run at once; use Recreate", d.Name, d.Spec.Strategy.Type)
					}
				}
			}
		}
	}
	if bidders == 0 {
		t.Error("no bidder Deployment")
	}
	if trainers != 1 {
		t.Errorf("%d pacer replicas run the shading trainer, want exactly 1", trainers)
	}
	var campaignsCM *corev1.ConfigMap
	for name, cm := range cms {
		if strings.HasPrefix(name, "rtb-campaigns") {
			campaignsCM = &cm
		}
	}
	if campaignsCM == nil || campaignsCM.Data["campaigns.yaml"] != string(samples) {
		t.Error("the campaigns ConfigMap is not bidder/campaign/samples.yaml: copy it to deploy/k8s/campaigns.yaml")
	}

	for _, s := range svcs {
		var hit string
		for name, l := range podLabels {
			if selects(s.Spec.Selector, l) {
				hit = name
			}
		}
		if hit == "" {
			t.Errorf("Service %s selects no pods (%v)", s.Name, s.Spec.Selector)
		}
		for _, p := range s.Spec.Ports {
			if !deploymentHasPort(deps, s.Spec.Selector, p.TargetPort.String()) {
				t.Errorf("Service %s targets port %s, which its pods do not name", s.Name, p.TargetPort.String())
			}
		}
	}
	for _, p := range pdbs {
		sel := p.Spec.Selector.MatchLabels
		if !slices.ContainsFunc(slices.Collect(maps.Values(podLabels)), func(l map[string]string) bool { return selects(sel, l) }) {
			t.Errorf("PodDisruptionBudget %s selects no pods (%v)", p.Name, sel)
		}
	}
	for _, h := range hpas {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || podLabels[ref.Name] == nil {
			t.Errorf("HorizontalPodAutoscaler %s scales %s %s, which is not here", h.Name, ref.Kind, ref.Name)
		}
		if len(h.Spec.Metrics) == 0 || h.Spec.Metrics[0].Resource == nil || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
			t.Errorf("HorizontalPodAutoscaler %s does not scale on CPU", h.Name)
		}
	}
	var prom *corev1.ConfigMap
	for name, cm := range cms {
		if strings.HasPrefix(name, "rtb-prometheus") {
			prom = &cm
		}
	}
	if prom == nil || prom.Data["prometheus.yml"] == "" {
		t.Error("no rtb-prometheus ConfigMap with the scrape configuration")
	}
	checkK8sScrapeConfig(t, prom.Data["prometheus.yml"], svcs)
}

// checkK8sScrapeConfig: promtool accepts the scrape configuration with the rules where it looks
// for them, and each DNS name it resolves is a headless Service here, on the pods' admin port.
func checkK8sScrapeConfig(t *testing.T, text string, svcs []corev1.Service) {
	t.Helper()
	dir := t.TempDir()
	rules, err := os.ReadFile(filepath.Join("prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules", "rules.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "config", filepath.Join(dir, "prometheus.yml"))
	var cfg struct {
		ScrapeConfigs []struct {
			DNS []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, sc := range cfg.ScrapeConfigs {
		for _, d := range sc.DNS {
			for _, name := range d.Names {
				n++
				svc, ns, _ := strings.Cut(strings.TrimSuffix(name, ".svc.cluster.local"), ".")
				i := slices.IndexFunc(svcs, func(s corev1.Service) bool { return s.Name == svc && s.Namespace == ns })
				if i < 0 || svcs[i].Spec.ClusterIP != corev1.ClusterIPNone {
					t.Errorf("prometheus.yml resolves %s: no headless Service %s in namespace %s", name, svc, ns)
					continue
				}
				if !slices.ContainsFunc(svcs[i].Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == d.Port && p.TargetPort.String() == "admin" }) {
					t.Errorf("prometheus.yml scrapes %s on port %d, which is not its admin port", name, d.Port)
				}
			}
		}
	}
	if n == 0 {
		t.Error("the k8s prometheus.yml discovers no rtb targets")
	}
}

func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func deploymentHasPort(deps []appsv1.Deployment, sel map[string]string, port string) bool {
	for _, d := range deps {
		if !selects(sel, d.Spec.Template.Labels) {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
					return true
				}
			}
		}
	}
	return false
}

func mountsConfigMap(ps corev1.PodSpec, c corev1.Container, path, cmPrefix string) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath != path {
			continue
		}
		for _, v := range ps.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && strings.HasPrefix(v.ConfigMap.Name, cmPrefix) {
				return true
			}
		}
	}
	return false
}

func checkProbe(t *testing.T, where string, p *corev1.Probe, path, port string, ports map[string]int32) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: no HTTP probe", where)
		return
	}
	got := p.HTTPGet.Port.String()
	if n, ok := ports[got]; ok {
		got = strconv.Itoa(int(n))
	}
	if p.HTTPGet.Path != path || got != port {
		t.Errorf("%s: probes %s on port %s, want %s on %s", where, p.HTTPGet.Path, got, path, port)
	}
}

var metricName = regexp.MustCompile(`\brtb_[a-z0-9_]*[a-z0-9]\b`)

// dashboardQueries returns every PromQL text of the dashboard: panel targets and variable queries.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("grafana", "rtb.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/rtb.json: %v", err)
	}
	var qs []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(x, k)
			}
		case []any:
			for _, x := range v {
				walk(x, key)
			}
		case string:
			if key == "expr" || key == "query" || key == "definition" {
				qs = append(qs, v)
			}
		}
	}
	walk(d, "")
	return qs
}

// TestDashboard: the panels the issue names are there, each query uses only metrics rtb exports
// (checked against /metrics in TestMetricsExist), and every panel has a query.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("grafana", "rtb.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID         int               `json:"id"`
			Type       string            `json:"type"`
			Title      string            `json:"title"`
			Targets    []json.RawMessage `json:"targets"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			GridPos struct{ X, Y, W, H int } `json:"gridPos"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	titles := map[string]bool{}
	ids := map[int]bool{}
	cells := map[[2]int]string{} // grid cells taken, to catch panels drawn over each other
	for _, p := range d.Panels {
		titles[p.Title] = true
		if ids[p.ID] {
			t.Errorf("panel %q reuses id %d", p.Title, p.ID)
		}
		ids[p.ID] = true
	grid:
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if other, taken := cells[[2]int{x, y}]; taken {
					t.Errorf("panel %q overlaps %q", p.Title, other)
					break grid
				}
				cells[[2]int{x, y}] = p.Title
			}
		}
		if p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q is wider than the 24-column grid", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q queries data source %q, not the dashboard's ${datasource} variable", p.Title, p.Datasource.UID)
		}
	}
	for _, want := range []string{"Bid requests by outcome", "Bid latency quantiles", "No-bid reasons", "Shed and timeouts",
		"Events produced", "Events dropped", "Events spilled and replayed", "Consumer lag", "Follower lag",
		"Spend vs target today", "Throttle", "Bid multiplier", "Shading decisions"} {
		if !titles[want] {
			t.Errorf("dashboard has no %q panel", want)
		}
	}
	if d.UID == "" {
		t.Error("dashboard has no uid (links and provisioning need a stable one)")
	}
}

// TestMetricsExist starts `rtb serve` (embedded broker, sample campaigns) and checks that every
// rtb_ metric the Grafana dashboard and the alert rules query is on its /metrics, so that a metric
// renamed in the code, the dashboard or the rules fails here. It also runs the image's health
// check against it.
func TestMetricsExist(t *testing.T) {
	bin := rtbBinary(t)
	listen, admin, broker := eventstest.FreeAddr(t), eventstest.FreeAddr(t), eventstest.FreeAddr(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	cmd := exec.Command(bin, "serve", "--listen", listen, "--admin", admin, "--broker-addr", broker, "--data-dir", t.TempDir())
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) })
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if s, _ := get("http://" + listen + "/readyz"); s == http.StatusOK {
			break
		}
		select {
		case err := <-exited:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("rtb serve exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("rtb serve not ready\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	used := map[string][]string{}
	for _, q := range dashboardQueries(t) {
		for _, n := range metricName.FindAllString(q, -1) {
			used[n] = append(used[n], "grafana/rtb.json")
		}
	}
	rules, err := os.ReadFile(filepath.Join("prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range metricName.FindAllString(string(rules), -1) {
		used[n] = append(used[n], "prometheus/rules.yml")
	}
	if len(used) < 10 {
		t.Fatalf("only %d metric names found in the dashboard and rules", len(used))
	}
	// Some series appear once their source has run: the per-campaign pacing gauges with the first
	// pacing states, follower lag with the follower's first fetch. Scrape until all are there or
	// a generous deadline passes; then the missing ones are reported.
	var exported map[string]bool
	missing := func() []string {
		var m []string
		for n := range used {
			if _, elsewhere := expectedElsewhere[n]; !exported[n] && !elsewhere {
				m = append(m, n)
			}
		}
		return m
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		status, body := get("http://" + admin + "/metrics")
		if status != http.StatusOK {
			t.Fatalf("GET /metrics: %d %s", status, body)
		}
		exported = exposedNames(body)
		if len(missing()) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if !exported["rtb_build_info"] {
		t.Error("rtb_build_info is not on /metrics")
	}
	for n, where := range used {
		why, elsewhere := expectedElsewhere[n]
		switch {
		case exported[n] && elsewhere:
			t.Logf("%s is exported now: remove its expectedElsewhere entry (%s)", n, why)
		case !exported[n] && !elsewhere:
			t.Errorf("%s (used by %s) is not on /metrics of rtb serve", n, strings.Join(slices.Compact(where), ", "))
		}
	}

	// The image's HEALTHCHECK (rtb healthcheck, default URL from RTB_LISTEN) and the compose
	// pacers' (the admin port's index) against this process.
	for _, tc := range []struct {
		args []string
		env  string
	}{
		{[]string{"healthcheck"}, "RTB_LISTEN=" + listen},
		{[]string{"healthcheck", "--url", "http://" + admin + "/"}, ""},
	} {
		hc := exec.Command(bin, tc.args...)
		hc.Env = append(os.Environ(), tc.env)
		if out, err := hc.CombinedOutput(); err != nil {
			t.Errorf("rtb %s with %s: %v\n%s", strings.Join(tc.args, " "), tc.env, err, out)
		}
	}
	hc := exec.Command(bin, "healthcheck", "--url", "http://"+admin+"/no-such-page")
	if out, err := hc.CombinedOutput(); err == nil {
		t.Errorf("rtb healthcheck passed on a 404\n%s", out)
	}
}

// exposedNames are the metric family names and sample names (a histogram's _bucket, _sum and
// _count too) of a text exposition.
func exposedNames(body string) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// get returns the status and body of a GET, or status 0 and the error as the body.
func get(url string) (status int, body string) {
	resp, err := http.Get(url)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		status, body = resp.StatusCode, string(b)
	}
	if err != nil {
		return 0, err.Error()
	}
	return status, body
}
