package campaign

// ParseChecked parses JSON the slow way, as Parse does when the one-pass decoder refuses a file.
func ParseChecked(data []byte, name string) (*Set, error) {
	return parseChecked(data, data, name, FormatJSON)
}

// SetMinVisits lowers the fixed part of the alias-expansion bound, so that a test sees the part that
// grows with the file; the returned function restores it.
func SetMinVisits(n int) (restore func()) {
	old := minVisits
	minVisits = n
	return func() { minVisits = old }
}
