package search

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/dittonode/dittonode/ditto"
)

// sortKey is one sort criterion.
type sortKey struct {
	path ditto.Pointer
	desc bool
	isID bool
}

// options are the parsed option= parameter.
type options struct {
	sort       []sortKey
	sortStr    string // canonical, "" when not given
	size       int    // 0 when not given
	cursor     string
	hasCursor  bool
	limitOff   int
	limitN     int
	limitGiven bool
}

func optionErr(format string, args ...any) error {
	return ditto.ErrSearchOptionInvalid.New(format, args...)
}

// sortRoots are the fields a sort may start with.
var sortRoots = map[string]bool{
	"thingId": true, "policyId": true, "_namespace": true, "_revision": true, "_created": true,
	"_modified": true, "definition": true, "attributes": true, "features": true, "_metadata": true,
}

// parseOptions parses "sort(+thingId,-attributes/x),size(25),cursor(c)" or
// "limit(0,10)".
func parseOptions(s string, maxSize int) (options, error) {
	var o options
	seen := map[string]bool{}
	for _, part := range splitTop(s) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		open := strings.IndexByte(part, '(')
		if open <= 0 || !strings.HasSuffix(part, ")") {
			return o, optionErr("The option '%s' is invalid.", part)
		}
		name, arg := strings.TrimSpace(part[:open]), part[open+1:len(part)-1]
		if seen[name] {
			return o, optionErr("The option '%s' is given twice.", name)
		}
		seen[name] = true
		switch name {
		case "sort":
			keys, canon, err := parseSort(arg)
			if err != nil {
				return o, err
			}
			o.sort, o.sortStr = keys, canon
		case "size":
			n, err := strconv.Atoi(strings.TrimSpace(arg))
			if err != nil || n < 1 || n > maxSize {
				return o, optionErr("The size '%s' is invalid: it must be between 1 and %d.", arg, maxSize)
			}
			o.size = n
		case "cursor":
			o.cursor, o.hasCursor = strings.TrimSpace(arg), true
			if o.cursor == "" {
				return o, optionErr("The cursor must not be empty.")
			}
		case "limit":
			a, b, ok := strings.Cut(arg, ",")
			off, err1 := strconv.Atoi(strings.TrimSpace(a))
			n, err2 := strconv.Atoi(strings.TrimSpace(b))
			if !ok || err1 != nil || err2 != nil || off < 0 || n < 1 || n > maxSize {
				return o, optionErr("The limit '%s' is invalid: use limit(offset,count) with count between 1 and %d.", arg, maxSize)
			}
			o.limitOff, o.limitN, o.limitGiven = off, n, true
		default:
			return o, optionErr("The option '%s' is unknown.", name)
		}
	}
	if o.limitGiven && (o.size > 0 || o.hasCursor) {
		return o, optionErr("The option 'limit' cannot be combined with 'size' or 'cursor'.")
	}
	return o, nil
}

// splitTop splits s at commas outside parentheses.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// parseSort parses the arguments of sort(...). Every field starts with
// '+' or '-', as in Ditto; a space counts as '+' (an unencoded '+' in a
// query string arrives as one).
func parseSort(arg string) ([]sortKey, string, error) {
	var keys []sortKey
	var canon []string
	for _, f := range strings.Split(arg, ",") {
		if f == "" || (f[0] != '+' && f[0] != '-' && f[0] != ' ') {
			return nil, "", optionErr("The sort field '%s' is invalid: it must start with '+' or '-'.", f)
		}
		f = strings.TrimSpace(f)
		desc := false
		switch {
		case strings.HasPrefix(f, "-"):
			desc, f = true, f[1:]
		case strings.HasPrefix(f, "+"):
			f = f[1:]
		}
		p, err := ditto.ParsePointer(f)
		if err != nil || len(p) == 0 || slices.Contains(p, "*") {
			return nil, "", optionErr("The sort field '%s' is invalid.", f)
		}
		if len(p) == 1 && p[0] == "namespace" {
			p[0] = "_namespace"
		}
		if !sortRoots[p[0]] {
			return nil, "", optionErr("The sort field '%s' is invalid: it is not a field of a thing.", f)
		}
		k := sortKey{path: p, desc: desc, isID: len(p) == 1 && p[0] == "thingId"}
		keys = append(keys, k)
		sign := "+"
		if desc {
			sign = "-"
		}
		canon = append(canon, sign+p.String()[1:])
		if k.isID {
			break // thingId is unique: later keys never decide
		}
	}
	return keys, strings.Join(canon, ","), nil
}

// missing is the sort value of an absent field.
type missing struct{}

// rank orders the JSON types as MongoDB (and so Ditto) sorts them.
func rank(v any) int {
	switch v.(type) {
	case missing, nil:
		return 0
	case json.Number:
		return 1
	case string:
		return 2
	case map[string]any:
		return 3
	case []any:
		return 4
	case bool:
		return 5
	}
	return 6
}

func cmpValue(a, b any) int {
	ra, rb := rank(a), rank(b)
	if ra != rb {
		return cmp.Compare(ra, rb)
	}
	switch x := a.(type) {
	case json.Number:
		return cmp.Compare(numKey(string(x)).n, numKey(string(b.(json.Number))).n)
	case string:
		return strings.Compare(x, b.(string))
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case map[string]any, []any:
		return bytes.Compare(ditto.EncodeJSON(a), ditto.EncodeJSON(b))
	}
	return 0
}

// cmpKeys orders two items by their sort values, then by thingId.
func cmpKeys(sort []sortKey, a []any, aID string, b []any, bID string) int {
	for i, k := range sort {
		c := cmpValue(a[i], b[i])
		if k.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return strings.Compare(aID, bID)
}

// cursorData is the content of a cursor: the hash of filter, namespaces and
// sort, the canonical sort, and the sort values and thingId of the last item
// of the page.
type cursorData struct {
	Hash string  `json:"h"`
	Sort string  `json:"s"`
	Keys [][]any `json:"k"`
	ID   string  `json:"i"`
}

func queryHash(filter string, namespaces []string, sortStr string) string {
	h := sha256.New()
	h.Write([]byte(filter))
	h.Write([]byte{0})
	h.Write([]byte(strings.Join(namespaces, ",")))
	h.Write([]byte{0})
	h.Write([]byte(sortStr))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:12])
}

func encodeCursor(hash, sortStr string, keys []any, id string) string {
	cd := cursorData{Hash: hash, Sort: sortStr, ID: id, Keys: make([][]any, len(keys))}
	for i, v := range keys {
		r := rank(v)
		if r == 0 {
			cd.Keys[i] = []any{0}
		} else {
			cd.Keys[i] = []any{r, v}
		}
	}
	return base64.RawURLEncoding.EncodeToString(ditto.EncodeJSON(cd))
}

func cursorErr() error {
	return ditto.ErrSearchCursorInvalid.New("The cursor is invalid or does not belong to this filter, sort and namespaces.")
}

// decodeCursor decodes a cursor into its sort string, values and thingId.
func decodeCursor(c string) (cursorData, []any, error) {
	var cd cursorData
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) > 64<<10 {
		return cd, nil, cursorErr()
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&cd); err != nil || cd.ID == "" {
		return cd, nil, cursorErr()
	}
	keys := make([]any, len(cd.Keys))
	for i, kv := range cd.Keys {
		if len(kv) == 0 {
			return cd, nil, cursorErr()
		}
		r, ok := kv[0].(json.Number)
		if !ok {
			return cd, nil, cursorErr()
		}
		if r == "0" && len(kv) == 1 {
			keys[i] = missing{}
			continue
		}
		if len(kv) != 2 || string(r) != strconv.Itoa(rank(kv[1])) || rank(kv[1]) == 0 {
			return cd, nil, cursorErr()
		}
		keys[i] = kv[1]
	}
	return cd, keys, nil
}
