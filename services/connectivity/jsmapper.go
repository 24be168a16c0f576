package connectivity

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime/metrics"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"

	"github.com/dittonode/dittonode/ditto"
)

// The JavaScript mapper runs Ditto's mapping contract in goja, a pure-Go
// interpreter with no I/O bindings: a script sees only its arguments and
// the Ditto helper object (no require, no timers, no network or files).
//
// Every call is bounded: a watchdog interrupts it after CallTimeout or when
// the Go heap grew by more than CallHeapBytes while it ran (sampled every
// few milliseconds), and the built-ins that allocate in one step
// (String.prototype.repeat/padStart/padEnd, Array(n), ArrayBuffer and typed
// array constructors) refuse sizes above MaxAllocBytes. A runaway script
// yields a mapping error; the runtime it ran in is discarded.

// MappingConfig bounds payload mapping.
type MappingConfig struct {
	// CallTimeout bounds one JavaScript mapping call.
	CallTimeout time.Duration `json:"callTimeout" yaml:"call-timeout"`
	// CallHeapBytes bounds the heap growth during one JavaScript call.
	CallHeapBytes uint64 `json:"callHeapBytes" yaml:"call-heap-bytes"`
	// MaxAllocBytes bounds single allocations of a script (strings, arrays,
	// buffers) and the size of a mapping result.
	MaxAllocBytes int `json:"maxAllocBytes" yaml:"max-alloc-bytes"`
	// MaxScriptBytes bounds a script's source.
	MaxScriptBytes int `json:"maxScriptBytes" yaml:"max-script-bytes"`
}

func defaultMappingConfig() MappingConfig {
	return MappingConfig{CallTimeout: 500 * time.Millisecond, CallHeapBytes: 64 << 20, MaxAllocBytes: 4 << 20, MaxScriptBytes: 64 << 10}
}

// dittoScope is the helper object scripts use (Ditto's JavaScript API).
const dittoScope = `
var Ditto = (function() {
  function buildTopic(namespace, name, group, channel, criterion, action) {
    var ch = (channel === 'none') ? '' : '/' + channel;
    return namespace + '/' + name + '/' + group + ch + '/' + criterion + '/' + action;
  }
  return {
    buildTopic: buildTopic,
    buildDittoProtocolMsg: function(namespace, name, group, channel, criterion, action, path, dittoHeaders, value, status, extra) {
      var m = { topic: buildTopic(namespace, name, group, channel, criterion, action), path: path, headers: dittoHeaders, value: value };
      if (status !== undefined && status !== null) { m.status = status; }
      if (extra !== undefined && extra !== null) { m.extra = extra; }
      return m;
    },
    buildExternalMsg: function(headers, textPayload, bytePayload, contentType) {
      return { headers: headers, textPayload: textPayload, bytePayload: bytePayload, contentType: contentType };
    },
    arrayBufferToString: function(ab) { return __bytesToString(ab); },
    stringToArrayBuffer: function(s) { return __stringToBytes(s); },
    asByteBuffer: function(ab) { return ab; }
  };
})();
`

// guardScript wraps the built-ins that allocate in one step.
const guardScript = `
(function(max) {
  function check(n) { if (n > max) { throw new RangeError('allocation of ' + n + ' exceeds the mapping limit of ' + max); } }
  var rep = String.prototype.repeat;
  String.prototype.repeat = function(c) { check(this.length * c); return rep.call(this, c); };
  var ps = String.prototype.padStart, pe = String.prototype.padEnd;
  String.prototype.padStart = function(n, f) { check(n); return ps.call(this, n, f); };
  String.prototype.padEnd = function(n, f) { check(n); return pe.call(this, n, f); };
  var join = Array.prototype.join;
  Array.prototype.join = function(sep) { check(this.length * ((sep === undefined ? 1 : String(sep).length) + 1)); return join.call(this, sep); };
  var fill = Array.prototype.fill;
  Array.prototype.fill = function() { check(this.length * 8); return fill.apply(this, arguments); };
  var A = Array;
  Array = new Proxy(A, {
    apply: function(t, self, args) { if (args.length === 1 && typeof args[0] === 'number') { check(args[0] * 8); } return Reflect.apply(t, self, args); },
    construct: function(t, args) { if (args.length === 1 && typeof args[0] === 'number') { check(args[0] * 8); } return Reflect.construct(t, args); }
  });
  ['ArrayBuffer','Uint8Array','Int8Array','Uint16Array','Int16Array','Uint32Array','Int32Array','Float32Array','Float64Array','Uint8ClampedArray'].forEach(function(name) {
    var C = globalThis[name];
    globalThis[name] = new Proxy(C, { construct: function(t, args) { if (typeof args[0] === 'number') { check(args[0] * 8); } return Reflect.construct(t, args); } });
  });
})(__maxAlloc);
`

var (
	dittoScopeProgram = goja.MustCompile("ditto-scope.js", dittoScope, false)
	guardProgram      = goja.MustCompile("guard.js", guardScript, false)
)

type jsMapper struct {
	id       string
	cfg      MappingConfig
	program  *goja.Program
	incoming bool
	outgoing bool

	mu   sync.Mutex
	pool []*goja.Runtime // idle runtimes; a runtime runs one call at a time
}

func newJSMapper(id string, opts map[string]any, cfg MappingConfig) (*jsMapper, error) {
	in, _ := opts["incomingScript"].(string)
	out, _ := opts["outgoingScript"].(string)
	if in == "" && out == "" {
		return nil, invalid("The JavaScript mapping '%s' needs an incomingScript or an outgoingScript.", clip(id))
	}
	if len(in)+len(out) > cfg.MaxScriptBytes {
		return nil, invalid("The scripts of the JavaScript mapping '%s' are longer than %d bytes.", clip(id), cfg.MaxScriptBytes)
	}
	prog, err := goja.Compile(id+".js", in+"\n;\n"+out, false)
	if err != nil {
		return nil, invalid("The scripts of the JavaScript mapping '%s' do not compile: %s", clip(id), clip(err.Error()))
	}
	m := &jsMapper{id: id, cfg: cfg, program: prog,
		incoming: strings.Contains(in, "mapToDittoProtocolMsg"), outgoing: strings.Contains(out, "mapFromDittoProtocolMsg")}
	// Load once now: a script that throws or loops at load time is a
	// configuration error, not a mapping error.
	vm, err := m.newRuntime()
	if err != nil {
		return nil, invalid("The scripts of the JavaScript mapping '%s' fail to load: %s", clip(id), clip(err.Error()))
	}
	m.put(vm)
	return m, nil
}

func (m *jsMapper) newRuntime() (*goja.Runtime, error) {
	vm := goja.New()
	vm.SetMaxCallStackSize(256)
	_ = vm.Set("__maxAlloc", m.cfg.MaxAllocBytes)
	_ = vm.Set("__bytesToString", func(v goja.Value) string {
		if ab, ok := v.Export().(goja.ArrayBuffer); ok {
			return string(ab.Bytes())
		}
		return ""
	})
	_ = vm.Set("__stringToBytes", func(s string) goja.ArrayBuffer { return vm.NewArrayBuffer([]byte(s)) })
	// The guard and the helpers are trusted and finite; the user's script
	// loads under the watchdog with a load budget (compiling its functions
	// and running its top level), generous enough for a loaded machine.
	for _, p := range []*goja.Program{guardProgram, dittoScopeProgram} {
		if _, err := vm.RunProgram(p); err != nil {
			return nil, err
		}
	}
	if _, err := m.guarded(vm, m.loadTimeout(), func() (goja.Value, error) { return vm.RunProgram(m.program) }); err != nil {
		return nil, err
	}
	// The guard and the helpers are in place; the script's own globals
	// stay writable for the script.
	return vm, nil
}

// loadTimeout bounds loading a script: ten calls' worth, at least 2 s.
func (m *jsMapper) loadTimeout() time.Duration { return max(10*m.cfg.CallTimeout, 2*time.Second) }

func (m *jsMapper) get() (*goja.Runtime, error) {
	m.mu.Lock()
	if n := len(m.pool); n > 0 {
		vm := m.pool[n-1]
		m.pool = m.pool[:n-1]
		m.mu.Unlock()
		return vm, nil
	}
	m.mu.Unlock()
	return m.newRuntime()
}

func (m *jsMapper) put(vm *goja.Runtime) {
	m.mu.Lock()
	if len(m.pool) < 8 {
		m.pool = append(m.pool, vm)
	}
	m.mu.Unlock()
}

var errHeapLimit = errors.New("the script allocated more memory than allowed")

// heapBytes reads the live heap object bytes.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// guarded runs fn on vm under the time and heap watchdog. A Go panic inside
// the interpreter (e.g. an allocation the runtime refuses) is an error too.
func (m *jsMapper) guarded(vm *goja.Runtime, timeout time.Duration, fn func() (goja.Value, error)) (v goja.Value, err error) {
	done := make(chan struct{})
	start := heapBytes()
	go func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		deadline := time.NewTimer(timeout)
		defer deadline.Stop()
		for {
			select {
			case <-done:
				return
			case <-deadline.C:
				vm.Interrupt(fmt.Errorf("the script ran longer than %s", timeout))
				return
			case <-t.C:
				if h := heapBytes(); h > start && h-start > m.cfg.CallHeapBytes {
					vm.Interrupt(errHeapLimit)
					return
				}
			}
		}
	}()
	defer func() {
		close(done)
		if r := recover(); r != nil {
			err = fmt.Errorf("the script failed: %v", r)
		}
	}()
	return fn()
}

// call runs the named function with args in a pooled runtime.
func (m *jsMapper) call(name string, args ...any) (goja.Value, error) {
	vm, err := m.get()
	if err != nil {
		return nil, mappingFailed("The JavaScript mapping '%s' could not be loaded: %s", m.id, clip(err.Error()))
	}
	fn, ok := goja.AssertFunction(vm.Get(name))
	if !ok {
		m.put(vm)
		return nil, mappingFailed("The JavaScript mapping '%s' has no function %s.", m.id, name)
	}
	vals := make([]goja.Value, len(args))
	for i, a := range args {
		if b, ok := a.([]byte); ok {
			vals[i] = vm.ToValue(vm.NewArrayBuffer(b))
			continue
		}
		vals[i] = vm.ToValue(a)
	}
	res, err := m.guarded(vm, m.cfg.CallTimeout, func() (goja.Value, error) { return fn(goja.Undefined(), vals...) })
	if err != nil {
		// An interrupted or failed runtime may hold half-built state:
		// discard it.
		return nil, mappingFailed("The JavaScript mapping '%s' failed: %s", m.id, clip(jsError(err)))
	}
	m.put(vm)
	return res, nil
}

func jsError(err error) string {
	var ie *goja.InterruptedError
	if errors.As(err, &ie) {
		return fmt.Sprint(ie.Value())
	}
	var ex *goja.Exception
	if errors.As(err, &ex) {
		return ex.Value().String()
	}
	return err.Error()
}

// Inbound calls mapToDittoProtocolMsg(headers, textPayload, bytePayload,
// contentType).
func (m *jsMapper) Inbound(msg External) ([]ditto.Envelope, error) {
	if !m.incoming {
		return dittoMapper{}.Inbound(msg)
	}
	headers := make(map[string]any, len(msg.Headers))
	for k, v := range msg.Headers {
		headers[k] = v
	}
	var text any
	if msg.Text || utf8.Valid(msg.Payload) {
		text = string(msg.Payload)
	}
	res, err := m.call("mapToDittoProtocolMsg", headers, text, msg.Payload, msg.ContentType)
	if err != nil {
		return nil, err
	}
	var items []any
	switch x := exportValue(res).(type) {
	case nil:
		return nil, nil
	case []any:
		items = x
	default:
		items = []any{x}
	}
	out := make([]ditto.Envelope, 0, len(items))
	for _, it := range items {
		if it == nil {
			continue
		}
		b, err := json.Marshal(it)
		if err != nil {
			return nil, mappingFailed("The JavaScript mapping '%s' returned a value that is not JSON: %v", m.id, err)
		}
		if len(b) > m.cfg.MaxAllocBytes {
			return nil, mappingFailed("The JavaScript mapping '%s' returned more than %d bytes.", m.id, m.cfg.MaxAllocBytes)
		}
		env, err := ditto.DecodeEnvelope(b)
		if err != nil {
			return nil, mappingFailed("The JavaScript mapping '%s' returned no valid Ditto Protocol message: %v", m.id, err)
		}
		out = append(out, env)
	}
	return out, nil
}

// Outbound calls mapFromDittoProtocolMsg(namespace, name, group, channel,
// criterion, action, path, dittoHeaders, value, status, extra).
func (m *jsMapper) Outbound(env ditto.Envelope) ([]External, error) {
	if !m.outgoing {
		return dittoMapper{}.Outbound(env)
	}
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil {
		return nil, mappingFailed("The signal's topic is invalid: %v", err)
	}
	action := t.Action
	headers := make(map[string]any, len(env.Headers))
	for k, v := range env.Headers {
		headers[k] = v
	}
	var value, extra any
	if len(env.Value) > 0 {
		value, _ = ditto.DecodeJSON(env.Value)
	}
	if len(env.Extra) > 0 {
		extra, _ = ditto.DecodeJSON(env.Extra)
	}
	var status any
	if env.Status != 0 {
		status = env.Status
	}
	channel := t.Channel
	if channel == "" {
		channel = "none"
	}
	res, err := m.call("mapFromDittoProtocolMsg", t.Namespace, t.Name, t.Group, channel, t.Criterion, action, env.Path,
		headers, jsonForJS(value), status, jsonForJS(extra))
	if err != nil {
		return nil, err
	}
	var items []any
	switch x := res.Export().(type) {
	case nil:
		return nil, nil
	case []any:
		items = x
	default:
		items = []any{x}
	}
	out := make([]External, 0, len(items))
	for _, it := range items {
		obj, ok := it.(map[string]any)
		if !ok {
			continue
		}
		ext := External{Headers: map[string]string{}}
		if h, ok := obj["headers"].(map[string]any); ok {
			for k, v := range h {
				ext.Headers[strings.ToLower(k)] = fmt.Sprint(v)
			}
		}
		if ct, ok := obj["contentType"].(string); ok {
			ext.ContentType = ct
		}
		switch p := obj["bytePayload"].(type) {
		case goja.ArrayBuffer:
			ext.Payload = p.Bytes()
		case []byte:
			ext.Payload = p
		}
		if s, ok := obj["textPayload"].(string); ok && ext.Payload == nil {
			ext.Payload, ext.Text = []byte(s), true
		}
		if len(ext.Payload) > m.cfg.MaxAllocBytes {
			return nil, mappingFailed("The JavaScript mapping '%s' returned more than %d bytes.", m.id, m.cfg.MaxAllocBytes)
		}
		out = append(out, ext)
	}
	return out, nil
}

// exportValue exports a JS value for JSON encoding.
func exportValue(v goja.Value) any {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return nil
	}
	return sanitize(v.Export())
}

// sanitize replaces values JSON cannot encode (NaN, infinities, functions).
func sanitize(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	case map[string]any:
		for k, e := range x {
			x[k] = sanitize(e)
		}
	case []any:
		for i, e := range x {
			x[i] = sanitize(e)
		}
	case func(goja.FunctionCall) goja.Value:
		return nil
	}
	return v
}

// jsonForJS turns json.Number leaves into float64 for the script.
func jsonForJS(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonForJS(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonForJS(e)
		}
		return out
	}
	return v
}
