package ditto

import (
	"regexp"
	"strings"
)

// MergePatch applies the JSON merge patch (RFC 7396) patch to target and
// returns the result, with Ditto's extension for deleting by regex.
//
//   - Objects merge recursively; scalars and arrays replace; null deletes.
//     Nulls inside objects that the patch adds are dropped, so the result
//     never holds a null that came from the patch.
//   - A key "{{ ~<regex>~ }}" (or "{{ /<regex>/ }}") with value null first
//     removes every existing sibling key that the regex matches in full,
//     then the rest of that patch object applies. Keys the same patch object
//     names explicitly are exempt from the regex: they are merged as usual,
//     so keys set explicitly survive.
//   - Ditto's regexes are Java regexes; they are compiled as Go (RE2)
//     regexes. A regex RE2 cannot compile (look-arounds, back-references,
//     possessive quantifiers) makes the key an ordinary, literal key.
//     A regex key whose value is not null is an ordinary key too.
//
// patch is never modified and nothing of it is shared with the result.
// target is modified in place where it is an object and the result must be
// used; pass DeepCopy(target) to keep the original.
func MergePatch(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return DeepCopy(patch)
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = make(map[string]any, len(pm))
	}
	var regexKeys map[string]bool
	for k, v := range pm {
		if v != nil {
			continue
		}
		if re := mergeRegex(k); re != nil {
			if regexKeys == nil {
				regexKeys = map[string]bool{}
			}
			regexKeys[k] = true
			for tk := range tm {
				if _, named := pm[tk]; !named && re.MatchString(tk) {
					delete(tm, tk)
				}
			}
		}
	}
	for k, v := range pm {
		switch {
		case v == nil:
			if !regexKeys[k] {
				delete(tm, k)
			}
		default:
			tm[k] = MergePatch(tm[k], v)
		}
	}
	return tm
}

// mergeRegex returns the compiled regex of a regex-delete key, or nil when k
// is an ordinary key. The regex must match the whole key.
func mergeRegex(k string) *regexp.Regexp {
	if !strings.HasPrefix(k, "{{") || !strings.HasSuffix(k, "}}") {
		return nil
	}
	inner := strings.TrimSpace(k[2 : len(k)-2])
	if len(inner) < 2 {
		return nil
	}
	first, last := inner[0], inner[len(inner)-1]
	if first != last || (first != '~' && first != '/') {
		return nil
	}
	re, err := regexp.Compile(`^(?:` + inner[1:len(inner)-1] + `)$`)
	if err != nil {
		return nil
	}
	return re
}

// IsMergeRegexKey reports whether k is a regex-delete key that MergePatch
// honours ("{{ ~<regex>~ }}" with a regex Go can compile).
func IsMergeRegexKey(k string) bool { return mergeRegex(k) != nil }

// MergeMinimize returns the part of patch that changes target, for
// if-equal=skip-minimizing-merge: keys whose merge would leave target
// unchanged are dropped, recursively. It returns nil when the patch changes
// nothing. Neither argument is modified; the result shares nothing with
// them. MergePatch(target, MergeMinimize(target, patch)) equals
// MergePatch(target, patch) whenever the result is not nil. A top-level
// null patch (delete the whole value) cannot be told from "no change" and
// also yields nil: callers treat a null patch as a delete before
// minimizing.
func MergeMinimize(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		if JSONEqual(target, patch) {
			return nil
		}
		return DeepCopy(patch)
	}
	tm, ok := target.(map[string]any)
	if !ok {
		return DeepCopy(patch)
	}
	out, changed := minimizeObject(tm, pm)
	if !changed {
		return nil
	}
	return out
}

// minimizeObject minimizes the object patch pm against the object tm.
func minimizeObject(tm, pm map[string]any) (map[string]any, bool) {
	out := map[string]any{}
	for k, v := range pm {
		old, exists := tm[k]
		if v == nil {
			if re := mergeRegex(k); re != nil {
				for tk := range tm {
					if _, named := pm[tk]; !named && re.MatchString(tk) {
						out[k] = nil
						break
					}
				}
				continue
			}
			if exists {
				out[k] = nil
			}
			continue
		}
		vm, isObj := v.(map[string]any)
		om, oldObj := old.(map[string]any)
		switch {
		case isObj && exists && oldObj:
			if sub, changed := minimizeObject(om, vm); changed {
				out[k] = sub
			}
		case !isObj && exists && JSONEqual(old, v):
		default:
			out[k] = DeepCopy(v)
		}
	}
	return out, len(out) > 0
}
