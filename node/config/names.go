package config

import "strings"

// validLabel reports whether s is a DNS label: 1 to 63 letters, digits and
// dashes, not starting or ending with a dash.
func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !isAlnum(r) && r != '-' {
			return false
		}
	}
	return true
}

// validNodeName reports whether s can be a node name that DNS can find:
// dot-separated DNS labels, at most 253 bytes in all.
func validNodeName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if !validLabel(label) {
			return false
		}
	}
	return true
}

// validDomain reports whether s (without its trailing dot) is a DNS domain.
func validDomain(s string) bool {
	return validNodeName(strings.TrimSuffix(s, "."))
}

// validUUID reports whether s is a UUID in its canonical 8-4-4-4-12 hex form.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// ValidDatacenter reports whether s can name a datacenter: a DNS label
// (it is one in web.service.<dc>.consul).
func ValidDatacenter(s string) bool { return validLabel(s) }
