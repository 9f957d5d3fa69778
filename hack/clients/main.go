// studio-clients: how the clients GitOps users run read live studios.dev objects.
//
//   - kstatus from sigs.k8s.io/cli-utils (Flux `wait: true`, kpt, cli-utils appliers);
//   - an Argo CD resource health check (Lua), run by gopher-lua with the libraries and the `obj`
//     global that Argo CD gives it (util/lua: package, base, table; no string library unless
//     resource.customizations.useOpenLibs is set);
//   - Flux health check expressions (kustomize-controller spec.healthCheckExprs), evaluated by
//     cel-go with the environment and the order of fluxcd/pkg/runtime/cel (RFC 0009).
//
// Reads a JSON request on stdin and writes one JSON result per object on stdout; the tests in
// tests/integration/test_gitops_clients.py feed it objects read from the API server.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/google/cel-go/cel"
	celtypes "github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type healthCheckExprs struct {
	InProgress string `json:"inProgress"`
	Failed     string `json:"failed"`
	Current    string `json:"current"`
}

type request struct {
	Items []json.RawMessage           `json:"items"`
	Lua   map[string]string           `json:"lua"` // kind -> script
	CEL   map[string]healthCheckExprs `json:"cel"` // kind -> expressions
}

type verdict struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

type result struct {
	Kind    string   `json:"kind"`
	Name    string   `json:"name"`
	KStatus verdict  `json:"kstatus"`
	Argo    *verdict `json:"argo,omitempty"`
	CEL     *verdict `json:"cel,omitempty"`
}

func main() {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, "studio-clients: reading the request:", err)
		os.Exit(2)
	}
	out := []result{}
	for _, raw := range req.Items {
		// Decoded as client-go decodes API server answers (integers as int64).
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			fmt.Fprintln(os.Stderr, "studio-clients: decoding an object:", err)
			os.Exit(2)
		}
		r := result{Kind: u.GetKind(), Name: u.GetName(), KStatus: kstatus(u)}
		if script, ok := req.Lua[u.GetKind()]; ok {
			v := argoHealth(u, script)
			r.Argo = &v
		}
		if exprs, ok := req.CEL[u.GetKind()]; ok {
			v := fluxCEL(u, exprs)
			r.CEL = &v
		}
		out = append(out, r)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "studio-clients:", err)
		os.Exit(2)
	}
}

func kstatus(u *unstructured.Unstructured) verdict {
	res, err := status.Compute(u)
	if err != nil {
		return verdict{Error: err.Error()}
	}
	return verdict{Status: res.Status.String(), Message: res.Message}
}

// ---------------------------------------------------------------------------------- Argo CD

var argoHealthStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Suspended": true, "Degraded": true, "Missing": true, "Unknown": true,
}

func argoHealth(u *unstructured.Unstructured, script string) verdict {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return verdict{Error: err.Error()}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, u.Object))
	if err := l.DoString(script); err != nil {
		return verdict{Error: err.Error()}
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return verdict{Error: fmt.Sprintf("the script returned %s, not a table", l.Get(-1).Type())}
	}
	st := lua.LVAsString(table.RawGetString("status"))
	if !argoHealthStatuses[st] {
		return verdict{Error: fmt.Sprintf("%q is not an Argo CD health status", st)}
	}
	return verdict{Status: st, Message: lua.LVAsString(table.RawGetString("message"))}
}

// toLua converts a decoded JSON value the way Argo CD's util/lua decodeValue does: objects and
// arrays become tables (arrays 1-based), numbers Lua numbers.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case json.Number:
		f, _ := v.Float64()
		return lua.LNumber(f)
	case map[string]any:
		t := l.NewTable()
		for key, item := range v {
			t.RawSetString(key, toLua(l, item))
		}
		return t
	case []any:
		t := l.NewTable()
		for i, item := range v {
			t.RawSetInt(i+1, toLua(l, item))
		}
		return t
	default:
		return lua.LString(fmt.Sprint(v))
	}
}

// ---------------------------------------------------------------------------------- Flux CEL

func newExpression(expr string) (cel.Program, error) {
	env, err := cel.NewEnv(
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Sets(),
		ext.Encoders(),
	)
	if err != nil {
		return nil, err
	}
	// Parsed, not compiled: the object's top-level fields are the variables (as in Flux).
	ast, issues := env.Parse(expr)
	if issues != nil && issues.Err() != nil {
		return nil, fmt.Errorf("parsing %q: %w", expr, issues.Err())
	}
	return env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100))
}

// fluxCEL evaluates like fluxcd/pkg/runtime/cel StatusEvaluator: observedGeneration first, then
// inProgress, failed, current (the first that is true wins), else InProgress; an evaluation error
// is an error (Flux reports it and waits until the health check times out).
func fluxCEL(u *unstructured.Unstructured, exprs healthCheckExprs) verdict {
	obj := u.UnstructuredContent()
	if observed, ok, err := unstructured.NestedInt64(obj, "status", "observedGeneration"); err != nil {
		return verdict{Error: err.Error()}
	} else if ok {
		if generation, ok, _ := unstructured.NestedInt64(obj, "metadata", "generation"); ok && observed != generation {
			return verdict{Status: status.InProgressStatus.String()}
		}
	}
	for _, e := range []struct {
		expr string
		st   status.Status
	}{
		{exprs.InProgress, status.InProgressStatus},
		{exprs.Failed, status.FailedStatus},
		{exprs.Current, status.CurrentStatus},
	} {
		if e.expr == "" {
			continue
		}
		prog, err := newExpression(e.expr)
		if err != nil {
			return verdict{Error: err.Error()}
		}
		val, _, err := prog.Eval(obj)
		if err != nil {
			return verdict{Error: fmt.Sprintf("evaluating %q: %v", e.expr, err)}
		}
		b, ok := val.(celtypes.Bool)
		if !ok {
			return verdict{Error: fmt.Sprintf("%q is not a boolean expression", e.expr)}
		}
		if b {
			return verdict{Status: e.st.String()}
		}
	}
	return verdict{Status: status.InProgressStatus.String()}
}
