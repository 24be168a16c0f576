package rql

import (
	"unicode"
	"unicode/utf8"
)

// like reports whether s matches the like pattern pat: '*' matches any run
// of characters, '?' exactly one, and everything else, a backslash too,
// matches itself (as in Ditto, which has no escape for the wildcards);
// fold compares case-insensitively (ilike).
//
// It scans greedily and on a mismatch retries from the last '*' one
// character further, so it runs in O(len(pat)*len(s)) steps without
// allocating, whatever the pattern.
func like(pat, s string, fold bool) bool {
	p, t := 0, 0
	starP, starT := -1, 0
	for t < len(s) {
		if p < len(pat) {
			switch c := pat[p]; c {
			case '*':
				p++
				starP, starT = p, t
				continue
			case '?':
				_, n := utf8.DecodeRuneInString(s[t:])
				p++
				t += n
				continue
			default:
				pn := runeLen(pat, p)
				sn := runeLen(s, t)
				if sameRune(pat[p:p+pn], s[t:t+sn], fold) {
					p += pn
					t += sn
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starT += runeLen(s, starT)
		p, t = starP, starT
	}
	for p < len(pat) && pat[p] == '*' {
		p++
	}
	return p == len(pat)
}

func runeLen(s string, i int) int {
	if s[i] < utf8.RuneSelf {
		return 1
	}
	_, n := utf8.DecodeRuneInString(s[i:])
	return n
}

// sameRune compares two encoded characters; with fold, valid runes compare
// under Unicode simple case folding.
func sameRune(a, b string, fold bool) bool {
	if a == b {
		return true
	}
	if !fold {
		return false
	}
	ra, na := utf8.DecodeRuneInString(a)
	rb, nb := utf8.DecodeRuneInString(b)
	if (ra == utf8.RuneError && na <= 1) || (rb == utf8.RuneError && nb <= 1) {
		return false
	}
	if ra < utf8.RuneSelf && rb < utf8.RuneSelf {
		return lowerASCII(byte(ra)) == lowerASCII(byte(rb))
	}
	for r := unicode.SimpleFold(ra); r != ra; r = unicode.SimpleFold(r) {
		if r == rb {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
