// composecheck loads a compose file with compose-go, the library `docker compose config` is built
// on: JSON-schema validation against the compose spec, interpolation, merge of YAML anchors and
// semantic checks (unknown services in depends_on, networks, volumes, ...). It needs no Docker
// engine and no network. Exit 0 and the normalised model on stdout when valid; 1 and the error.
//
//	composecheck [-q] docker-compose.yml [override.yml ...]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	quiet := flag.Bool("q", false, "only validate, print nothing")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: composecheck [-q] FILE [FILE...]")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions(flag.Args(), cli.WithOsEnv, cli.WithDotEnv, cli.WithConsistency(true))
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	if *quiet {
		return
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	fmt.Println(string(out))
}
