package campaign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// File formats for Parse.
const (
	FormatYAML = "yaml"
	FormatJSON = "json"
)

// file is the top level of a campaign file, the same in YAML and JSON.
type file struct {
	Campaigns []*Campaign `yaml:"campaigns" json:"campaigns"`
}

// Load reads, parses and validates the campaign file at path. The format follows the extension
// (.yaml, .yml, .json) and is sniffed from the content otherwise. Any problem yields an *Error.
func Load(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("campaign file: %w", err)
	}
	return Parse(data, path, formatOf(path))
}

// formatOf chooses the format by file extension; "" means sniff.
func formatOf(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return FormatYAML
	case ".json":
		return FormatJSON
	}
	return ""
}

var utf8BOM = []byte("\xef\xbb\xbf")

// sniff takes a document that opens with '{' for JSON; anything else is YAML (of which JSON is
// nearly a subset, but JSON gets its own parser for exact JSON semantics and errors).
func sniff(data []byte) string {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return FormatJSON
	}
	return FormatYAML
}

// Parse parses and validates a campaign file's content. name is used in errors and as Set.Source;
// format is FormatYAML, FormatJSON or "" to sniff. Any problem yields an *Error.
//
// Both formats can go through one path (parseChecked): the text becomes a yaml.Node tree with line
// numbers, a schema walk over that tree reports unknown fields and ill-typed values with their field
// paths, the tree is decoded, and the campaigns are validated. This is why JSON errors carry lines and
// paths too, and why JSON keys match exactly (encoding/json would match "Daily" to "daily"). A JSON
// file is first decoded by a one-pass decoder that accepts only what that path accepts (decodeJSON);
// only a file it refuses pays for the node tree, which at 100,000 campaigns is most of a minute.
func Parse(data []byte, name string, format string) (*Set, error) {
	raw := data
	data = bytes.TrimPrefix(data, utf8BOM) // Windows editors write one; neither parser wants it
	if format == "" {
		format = sniff(data)
	}
	if format == FormatJSON {
		if s := parseJSONFast(data, name); s != nil {
			s.Digest = digest(raw)
			return s, nil
		}
	}
	return parseChecked(raw, data, name, format)
}

// parseJSONFast decodes and validates a JSON file that has nothing wrong with it; nil means
// something is, and parseChecked, slower, says what and where.
func parseJSONFast(data []byte, name string) *Set {
	campaigns := decodeJSON(data)
	if campaigns == nil {
		return nil
	}
	s := &Set{Campaigns: campaigns, Source: name}
	ps := &problems{}
	if validateSet(s, ps); len(ps.list) > 0 {
		return nil
	}
	return s
}

// parseChecked is the path that explains: it builds a node tree with lines, walks it against the
// schema, decodes it and validates the campaigns, reporting every problem with its line.
func parseChecked(raw, data []byte, name, format string) (*Set, error) {
	ps := &problems{lines: map[string]int{}}
	var root *yaml.Node
	switch format {
	case FormatYAML:
		root = parseYAML(data, ps)
	case FormatJSON:
		root = parseJSON(data, ps)
	default:
		return nil, fmt.Errorf("%s: unknown campaign file format %q (want %q or %q)", name, format, FormatYAML, FormatJSON)
	}
	if err := ps.err(name); err != nil {
		return nil, err
	}

	ps.campaignID = campaignIDs(root)
	ck := &checker{ps: ps, maxVisits: visitBound(len(data))}
	ck.walk(root, reflect.TypeOf(file{}), "", 0)
	if err := ps.err(name); err != nil {
		return nil, err
	}

	var f file
	if err := root.Decode(&f); err != nil {
		// The schema walk should have caught everything; this keeps yaml.v3's own checks as a net.
		addDecodeError(ps, err)
		return nil, ps.err(name)
	}
	for i, c := range f.Campaigns {
		if c == nil {
			ps.addPath(fmt.Sprintf("campaigns[%d]", i), "empty campaign")
		}
	}
	if err := ps.err(name); err != nil {
		return nil, err
	}

	s := &Set{Campaigns: f.Campaigns, Source: name}
	s.Digest = digest(raw)
	validateSet(s, ps)
	if err := ps.err(name); err != nil {
		return nil, err
	}
	return s, nil
}

// NewSet normalises, validates and indexes campaigns built in code, as Parse does for a file. The
// campaigns are modified in place (defaults, letter case, compiled dayparts and time zones).
func NewSet(source string, campaigns []*Campaign) (*Set, error) {
	ps := &problems{}
	for i, c := range campaigns {
		if c == nil {
			ps.addPath(fmt.Sprintf("campaigns[%d]", i), "nil campaign")
		}
	}
	if err := ps.err(source); err != nil {
		return nil, err
	}
	s := &Set{Campaigns: campaigns, Source: source}
	validateSet(s, ps)
	if err := ps.err(source); err != nil {
		return nil, err
	}
	return s, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func parseYAML(data []byte, ps *problems) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ps.add(Problem{Message: "the file is empty; want a top-level \"campaigns:\" list"})
			return nil
		}
		ps.add(syntaxProblem("YAML", err))
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		ps.add(Problem{Message: "more than one YAML document (---); want one", Line: extra.Line})
		return nil
	case !errors.Is(err, io.EOF):
		ps.add(syntaxProblem("YAML", err))
		return nil
	}
	if len(doc.Content) == 0 {
		ps.add(Problem{Message: "the file is empty; want a top-level \"campaigns:\" list"})
		return nil
	}
	return doc.Content[0]
}

func syntaxProblem(format string, err error) Problem {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Message: format + " syntax error: " + m[2], Line: line}
	}
	return Problem{Message: format + " syntax error: " + strings.TrimPrefix(msg, "yaml: ")}
}

// parseJSON turns strict JSON into a yaml.Node tree, so that JSON gets the same checks and error
// paths as YAML, with the lines of the JSON text.
func parseJSON(data []byte, ps *problems) *yaml.Node {
	lines := newLineIndex(data)
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			ps.add(Problem{Message: "JSON syntax error: " + se.Error(), Line: lines.at(se.Offset)})
		} else {
			ps.add(Problem{Message: fmt.Sprintf("JSON syntax error: %v", err)})
		}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var build func(depth int) (*yaml.Node, error)
	build = func(depth int) (*yaml.Node, error) {
		if depth > maxDepth {
			return nil, errors.New("nested too deeply")
		}
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		n := &yaml.Node{Line: lines.at(dec.InputOffset())}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' {
				n.Kind, n.Tag = yaml.MappingNode, "!!map"
			} else {
				n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
			}
			for dec.More() {
				if n.Kind == yaml.MappingNode {
					k, err := build(depth + 1)
					if err != nil {
						return nil, err
					}
					n.Content = append(n.Content, k)
				}
				c, err := build(depth + 1)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, c)
			}
			if _, err := dec.Token(); err != nil { // the closing delimiter
				return nil, err
			}
		case string:
			n.Kind, n.Tag, n.Style, n.Value = yaml.ScalarNode, "!!str", yaml.DoubleQuotedStyle, v
		case json.Number:
			n.Kind, n.Value = yaml.ScalarNode, v.String()
			if strings.ContainsAny(n.Value, ".eE") {
				n.Tag = "!!float"
			} else {
				n.Tag = "!!int"
			}
		case bool:
			n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!bool", strconv.FormatBool(v)
		case nil:
			n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!null", "null"
		}
		return n, nil
	}
	root, err := build(0)
	if err != nil {
		ps.add(Problem{Message: fmt.Sprintf("JSON: %v", err)})
		return nil
	}
	return root
}

// lineIndex maps byte offsets to 1-based lines.
type lineIndex []int64 // offsets at which lines 2, 3, ... start

func newLineIndex(data []byte) lineIndex {
	var li lineIndex
	for i, b := range data {
		if b == '\n' {
			li = append(li, int64(i+1))
		}
	}
	return li
}

// at returns the line holding the byte just before offset: decoders report offsets after the token.
func (li lineIndex) at(offset int64) int {
	return 1 + sort.Search(len(li), func(i int) bool { return li[i] >= offset })
}

// campaignIDs names each campaign by its id as written, for messages about fields decoded before
// validation.
func campaignIDs(root *yaml.Node) func(int) string {
	seq := mappingValue(root, "campaigns")
	if seq == nil || seq.Kind != yaml.SequenceNode {
		return nil
	}
	return func(i int) string {
		if i >= len(seq.Content) {
			return ""
		}
		if id := mappingValue(seq.Content[i], "id"); id != nil && id.Kind == yaml.ScalarNode && id.Tag != "!!null" {
			return id.Value
		}
		return ""
	}
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// addDecodeError reports an error of yaml.v3's decoder, finding the field path from the line.
func addDecodeError(ps *problems, err error) {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		ps.add(Problem{Message: err.Error()})
		return
	}
	byLine := map[int]string{}
	for path, line := range ps.lines {
		if old, ok := byLine[line]; !ok || len(path) > len(old) {
			byLine[line] = path
		}
	}
	for _, e := range te.Errors {
		m := yamlLine.FindStringSubmatch(e)
		if m == nil {
			ps.add(Problem{Message: e})
			continue
		}
		line, _ := strconv.Atoi(m[1])
		p := Problem{Message: m[2], Line: line}
		p.Campaign, p.Field = ps.split(byLine[line])
		ps.add(p)
	}
}

// maxDepth bounds nesting; campaign files are a few levels deep, and the bound keeps a hostile or
// broken file (alias bombs) from exhausting the stack.
const maxDepth = 32

var (
	timeType     = reflect.TypeOf(time.Time{})
	microsType   = reflect.TypeOf(Micros(0))
	durationType = reflect.TypeOf(Duration(0))
)

// checker walks a node tree against the Go types it will be decoded into, reporting unknown fields
// (with a suggestion) and values of the wrong shape with their field paths, and recording the line of
// every path for later messages.
type checker struct {
	ps        *problems
	visits    int
	maxVisits int
}

// The walk follows aliases, and YAML aliases can make a small file expand exponentially ("billion
// laughs"), so the walk is bounded in proportion to the file's size: without aliases every node
// visited is at least one byte of text (a 100,000-campaign JSON file visits about 0.05 per byte),
// merge keys sharing defaults between campaigns add a few visits per byte, and an alias bomb needs
// thousands per byte. A fixed bound refused large real files; this one keeps a hostile file's walk
// linear in its size. Variables so that a test can prove the bound without spending seconds on it.
var (
	minVisits     = 1_000_000
	visitsPerByte = 4
)

func visitBound(size int) int { return minVisits + visitsPerByte*size }

func (ck *checker) walk(n *yaml.Node, t reflect.Type, path string, depth int) {
	if ck.visits++; ck.visits > ck.maxVisits {
		if ck.visits == ck.maxVisits+1 {
			ck.ps.add(Problem{Message: "the file expands to too many values (YAML aliases nested too much)"})
		}
		return
	}
	if depth > maxDepth {
		ck.ps.addPath(path, "nested too deeply")
		return
	}
	if n.Kind == yaml.AliasNode {
		ck.record(path, n.Line)
		n = n.Alias
	}
	ck.record(path, n.Line)
	isNull := n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
	if t.Kind() == reflect.Pointer {
		if isNull {
			return
		}
		t = t.Elem()
	}
	if isNull {
		return // a zero value; validation decides whether that is allowed
	}
	switch {
	case t == timeType:
		if ck.scalar(n, path, "a time like 2026-01-02T15:04:05Z") {
			if _, err := time.Parse(time.RFC3339, n.Value); err != nil {
				ck.ps.addPath(path, fmt.Sprintf("%q is not an RFC 3339 time like 2026-01-02T15:04:05Z (with a zone)", n.Value))
			}
		}
		return
	case t == microsType:
		if ck.scalar(n, path, "an amount like 2.50") {
			if _, err := ParseMicros(n.Value); err != nil {
				ck.ps.addPath(path, err.Error())
			}
		}
		return
	case t == durationType:
		if ck.scalar(n, path, "a duration like 24h") {
			if _, err := parseDuration(n.Value); err != nil {
				ck.ps.addPath(path, err.Error())
			}
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		ck.mapping(n, t, path, depth)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			ck.ps.addPath(path, "want a list, got "+describe(n))
			return
		}
		for i, item := range n.Content {
			ck.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), depth+1)
		}
	case reflect.String:
		ck.scalar(n, path, "text")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if ck.number(n, path, "a whole number") {
			if _, err := strconv.ParseInt(n.Value, 10, 64); err != nil {
				ck.ps.addPath(path, "want a whole number, got "+describe(n))
			}
		}
	case reflect.Float32, reflect.Float64:
		if ck.number(n, path, "a number") {
			if f, err := strconv.ParseFloat(n.Value, 64); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				ck.ps.addPath(path, "want a number, got "+describe(n))
			}
		}
	}
}

func (ck *checker) record(path string, line int) {
	if _, ok := ck.ps.lines[path]; !ok && line > 0 {
		ck.ps.lines[path] = line
	}
}

func (ck *checker) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind != yaml.ScalarNode {
		ck.ps.addPath(path, "want "+want+", got "+describe(n))
		return false
	}
	return true
}

// number also refuses quoted numbers: in JSON "300" is text, and YAML should read the same.
func (ck *checker) number(n *yaml.Node, path, want string) bool {
	if !ck.scalar(n, path, want) {
		return false
	}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 || n.ShortTag() == "!!str" {
		ck.ps.addPath(path, "want "+want+", got text "+strconv.Quote(n.Value))
		return false
	}
	return true
}

func (ck *checker) mapping(n *yaml.Node, t reflect.Type, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		if path == "" {
			ck.ps.add(Problem{Message: "want a top-level mapping with a \"campaigns:\" list, got " + describe(n), Line: n.Line})
			return
		}
		ck.ps.addPath(path, "want a mapping of fields, got "+describe(n))
		return
	}
	fields := yamlFields(t)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			// "<<: *defaults" merges another mapping, or a list of them, into this one.
			if v.Kind == yaml.AliasNode {
				v = v.Alias
			}
			if v.Kind == yaml.SequenceNode {
				for _, m := range v.Content {
					ck.walk(m, t, path, depth+1)
				}
			} else {
				ck.walk(v, t, path, depth+1)
			}
			continue
		}
		sub := join(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			ck.ps.addPath(path, "want field names as keys, got "+describe(k))
			continue
		}
		f, ok := fields[k.Value]
		if !ok && path == "" && strings.HasPrefix(k.Value, "x-") {
			// Top-level "x-" keys are scratch space for YAML anchors, as in Compose files.
			continue
		}
		if !ok {
			ck.record(sub, k.Line)
			ck.ps.addPath(sub, unknownField(k.Value, fields))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			ck.ps.addPath(sub, fmt.Sprintf("given twice (first at line %d)", line))
			continue
		}
		seen[k.Value] = k.Line
		ck.record(sub, k.Line)
		ck.walk(v, f, sub, depth+1)
	}
	if path == "" {
		if v := mappingValue(n, "campaigns"); v == nil || v.ShortTag() == "!!null" || (v.Kind == yaml.SequenceNode && len(v.Content) == 0) {
			// A bidder without campaigns never bids: far more likely a mistake than the intent, which
			// "status: paused" expresses explicitly.
			ck.ps.add(Problem{Field: "campaigns", Message: "no campaigns; want a top-level \"campaigns:\" list with at least one", Line: n.Line})
		}
	}
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" {
			return "text " + strconv.Quote(n.Value)
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// yamlFields lists the file fields of a struct type by their names in the file.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		if name, ok := fileName(t.Field(i)); ok {
			fields[name] = t.Field(i).Type
		}
	}
	return fields
}

// fileName is a struct field's name in the file, as yaml.v3 reads it; false for fields not in files.
func fileName(f reflect.StructField) (string, bool) {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if !f.IsExported() || name == "-" {
		return "", false
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name, true
}

// unknownField explains an unknown key, suggesting the field the user probably meant.
func unknownField(key string, fields map[string]reflect.Type) string {
	best, bestDist := "", 3
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
		if d := editDistance(strings.ToLower(key), name); d < bestDist {
			best, bestDist = name, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown field %q; did you mean %q?", key, best)
	}
	sort.Strings(names)
	return fmt.Sprintf("unknown field %q; known fields: %s", key, strings.Join(names, ", "))
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
