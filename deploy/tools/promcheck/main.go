// promcheck validates Prometheus rule files and PromQL expressions with Prometheus' own packages
// (model/rulefmt and promql/parser, the code behind `promtool check rules`), without the discovery
// SDKs that make the full promtool slow to build. No network, no server.
//
//	promcheck rules FILE...   validate rule files; print {"file": [{"name", "expr", "metrics"}]} as JSON
//	promcheck exprs           read a JSON list of PromQL expressions on stdin; print [{"expr", "metrics", "error"}]
//
// Exit 1 when any file or expression is invalid.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

type ruleInfo struct {
	Group   string   `json:"group"`
	Name    string   `json:"name"`
	Expr    string   `json:"expr"`
	Metrics []string `json:"metrics"`
}

type exprInfo struct {
	Expr    string   `json:"expr"`
	Metrics []string `json:"metrics"`
	Error   string   `json:"error,omitempty"`
}

func metrics(p parser.Parser, expr string) ([]string, error) {
	ast, err := p.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	parser.Inspect(ast, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok && vs.Name != "" {
			seen[vs.Name] = true
		}
		return nil
	})
	out := make([]string, 0, len(seen))
	for name := range seen {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: promcheck rules FILE... | promcheck exprs < list.json")
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	failed := false
	switch os.Args[1] {
	case "rules":
		result := map[string][]ruleInfo{}
		for _, file := range os.Args[2:] {
			groups, errs := rulefmt.ParseFile(file, false, model.UTF8Validation, p, logger)
			for _, err := range errs {
				fmt.Fprintln(os.Stderr, err)
				failed = true
			}
			if groups == nil {
				continue
			}
			rules := []ruleInfo{}
			for _, g := range groups.Groups {
				for _, r := range g.Rules {
					name := r.Record
					if name == "" {
						name = r.Alert
					}
					names, err := metrics(p, r.Expr)
					if err != nil {
						fmt.Fprintf(os.Stderr, "%s: %s: %v\n", file, name, err)
						failed = true
					}
					rules = append(rules, ruleInfo{Group: g.Name, Name: name, Expr: r.Expr, Metrics: names})
				}
			}
			result[file] = rules
		}
		json.NewEncoder(os.Stdout).Encode(result)
	case "exprs":
		raw, err := io.ReadAll(os.Stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		var exprs []string
		if err := json.Unmarshal(raw, &exprs); err != nil {
			fmt.Fprintln(os.Stderr, "stdin must be a JSON list of strings:", err)
			os.Exit(2)
		}
		out := []exprInfo{}
		for _, e := range exprs {
			names, err := metrics(p, e)
			info := exprInfo{Expr: e, Metrics: names}
			if err != nil {
				info.Error = err.Error()
				failed = true
			}
			out = append(out, info)
		}
		json.NewEncoder(os.Stdout).Encode(out)
	default:
		fmt.Fprintln(os.Stderr, "unknown command", os.Args[1])
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}
