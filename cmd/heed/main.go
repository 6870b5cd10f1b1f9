// Command heed is the compliance ledger for outbound customer contact and
// the flash-SMS notifier that obeys it.
//
// Each subcommand lives in its own file and registers itself with
// register; main only dispatches.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// command is one subcommand. Run gets the arguments after the command's
// name; it returns errUsage for bad flags, which exits 2.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

// errUsage marks a command-line mistake (exit 2) as opposed to a failure.
var errUsage = errors.New("usage")

func register(name, summary string, run func(ctx context.Context, args []string) error) {
	if _, dup := commands[name]; dup {
		panic("heed: command registered twice: " + name)
	}
	commands[name] = command{name: name, summary: summary, run: run}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: heed COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-16s %s\n", n, commands[n].summary)
	}
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		return 2
	}
	name, rest := args[0], args[1:]
	// Two-word commands such as "bench append" are registered under both words.
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		if _, ok := commands[name+" "+rest[0]]; ok {
			name, rest = name+" "+rest[0], rest[1:]
		}
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "heed: unknown command %q\n", name)
		usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := c.run(ctx, rest)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 2
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "heed %s: %v\n", name, err)
		return 2
	case errors.As(err, new(exitCoder)):
		fmt.Fprintf(os.Stderr, "heed %s: %v\n", name, err)
		var ec exitCoder
		errors.As(err, &ec)
		return ec.ExitCode()
	default:
		fmt.Fprintf(os.Stderr, "heed %s: %v\n", name, err)
		return 1
	}
}

// exitCoder is an error that chooses its command's exit code.
type exitCoder interface{ ExitCode() int }

// newFlags returns a flag set for a subcommand that reports errors instead
// of exiting, so commands are testable in-process.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("heed "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

// parseFlags parses args and turns a flag error into errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}
