package campaign

import (
	_ "embed"
	"fmt"
)

// SamplesSource is the Source of the built-in sample set.
const SamplesSource = "built-in samples"

//go:embed samples.yaml
var samplesYAML []byte

// Samples returns the built-in sample campaigns, freshly parsed so that callers share nothing. It
// panics only if the embedded file is broken, which a test rules out.
func Samples() *Set {
	s, err := Parse(samplesYAML, SamplesSource, FormatYAML)
	if err != nil {
		panic(fmt.Sprintf("campaign: embedded samples.yaml is invalid: %v", err))
	}
	return s
}

// SamplesFile returns the text of the built-in samples, a commented starting point for a campaign
// file.
func SamplesFile() []byte {
	return append([]byte(nil), samplesYAML...)
}
