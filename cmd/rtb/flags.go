package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// envName is the environment variable that sets a flag: --notice-key -> RTB_NOTICE_KEY.
func envName(flagName string) string {
	return "RTB_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags parses args into fs; a flag not given on the command line takes its RTB_* environment
// variable when that is set. A bad environment value is an error naming the variable.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("environment %s=%q: %w", envName(f.Name), v, e)
			}
		}
	})
	return err
}

// usage prints a command's synopsis and its flags, each with the environment variable that sets it.
func usage(fs *flag.FlagSet, synopsis string) func() {
	return func() {
		w := fs.Output()
		fmt.Fprintf(w, "%s\n\nFlags (each also read from the environment variable shown):\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			name, help := flag.UnquoteUsage(f)
			fmt.Fprintf(w, "  --%s", f.Name)
			if name != "" {
				fmt.Fprintf(w, " %s", name)
			}
			fmt.Fprintf(w, "    [%s]\n      %s", envName(f.Name), strings.ReplaceAll(help, "\n", "\n      "))
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "false" {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
	}
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// logFormatAuto, the default of --log-format, picks text for a person at a terminal and JSON
// everywhere else: in a container, under systemd or in CI stderr is a pipe read by a log collector,
// which wants one parseable object a line.
const (
	logFormatAuto  = "auto"
	logFormatUsage = "text, json, or auto: text when stderr is a terminal, json otherwise (containers,\nlog collectors)"
)

// resolveLogFormat turns --log-format auto into text or json for where stderr goes.
func resolveLogFormat(format string) string {
	fi, err := os.Stderr.Stat()
	return logFormatFor(format, err == nil && fi.Mode()&os.ModeCharDevice != 0)
}

func logFormatFor(format string, terminal bool) string {
	switch {
	case format != logFormatAuto:
		return format
	case terminal:
		return "text"
	}
	return "json"
}
