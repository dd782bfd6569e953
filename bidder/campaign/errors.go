package campaign

import (
	"fmt"
	"strings"
)

// maxProblems is how many problems one Error reports: enough to fix a file in one go, few enough to
// read in a terminal.
const maxProblems = 10

// Error is why a campaign file was refused: one or more problems, each naming the campaign and field.
type Error struct {
	File     string    // path as given, or "built-in samples"
	Problems []Problem // at most 10, in file order as far as known
	More     int       // problems found beyond Problems
}

// Problem is one thing wrong in a campaign file.
type Problem struct {
	Campaign string // `campaign "c-42"`, or `campaigns[3]` when it has no id; "" for the file as a whole
	Field    string // path inside the campaign, e.g. "creatives[1].w"; for the file as a whole, from its top
	Message  string
	Line     int // 1-based line in the file; 0 when unknown (sets built in code, missing fields)
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Campaign != "" {
		b.WriteString(p.Campaign)
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	if p.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", p.Line)
	}
	return b.String()
}

// Error renders one problem a line, each prefixed with the file so that every line stands alone in a
// log.
func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.File)
		b.WriteString(": ")
		b.WriteString(p.String())
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n%s: and %d more problem(s)", e.File, e.More)
	}
	return b.String()
}

// problems collects what is wrong with one file.
type problems struct {
	list  []Problem
	more  int
	lines map[string]int // full field path -> line, when parsed from a file
	// campaignID is the id of campaign i as far as known ("" if none), for messages; set as soon as
	// ids are known. A function, so that a file of 100,000 good campaigns formats no label.
	campaignID func(i int) string
}

// addPath records a problem at a full path from the top of the file ("campaigns[2].bid.cpm").
func (ps *problems) addPath(path string, msg string) {
	p := Problem{Message: msg, Line: ps.lineOf(path)}
	p.Campaign, p.Field = ps.split(path)
	ps.add(p)
}

func (ps *problems) add(p Problem) {
	if len(ps.list) >= maxProblems {
		ps.more++
		return
	}
	ps.list = append(ps.list, p)
}

// split turns a full path into the campaign label and the path inside the campaign.
func (ps *problems) split(path string) (campaign, field string) {
	rest, ok := strings.CutPrefix(path, "campaigns[")
	if !ok {
		return "", path
	}
	end := strings.IndexByte(rest, ']')
	if end < 0 {
		return "", path
	}
	i := 0
	for _, c := range rest[:end] {
		if c < '0' || c > '9' {
			return "", path
		}
		i = i*10 + int(c-'0')
	}
	field = strings.TrimPrefix(rest[end+1:], ".")
	return ps.label(i), field
}

func (ps *problems) label(i int) string {
	if ps.campaignID != nil {
		if id := ps.campaignID(i); id != "" {
			return fmt.Sprintf("campaign %q", id)
		}
	}
	return fmt.Sprintf("campaigns[%d]", i)
}

// lineOf finds the line of path, or of its nearest ancestor present in the file: a missing field is
// reported at the object that lacks it.
func (ps *problems) lineOf(path string) int {
	if ps.lines == nil {
		return 0
	}
	for path != "" {
		if l, ok := ps.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func (ps *problems) err(file string) error {
	if len(ps.list) == 0 {
		return nil
	}
	return &Error{File: file, Problems: ps.list, More: ps.more}
}
