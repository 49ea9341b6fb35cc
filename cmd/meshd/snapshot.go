package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func runSnapshot(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "save" && args[0] != "restore") {
		fmt.Fprintln(stderr, "Usage: meshd snapshot save|restore [-http-addr addr] <file>")
		return 1
	}
	sub := args[0]
	fs := flag.NewFlagSet("snapshot "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := addHTTPFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return 1
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "meshd snapshot %s: want one file name\n", sub)
		return 1
	}
	file := fs.Arg(0)
	c := client()
	if sub == "save" {
		if err := snapshotSave(c, file); err != nil {
			return fail(stderr, "snapshot save", err)
		}
		fmt.Fprintf(stdout, "Saved snapshot to %s\n", file)
		return 0
	}
	f, err := os.Open(file)
	if err != nil {
		return fail(stderr, "snapshot restore", err)
	}
	defer f.Close()
	if err := c.put("/v1/snapshot", f); err != nil {
		return fail(stderr, "snapshot restore", err)
	}
	fmt.Fprintf(stdout, "Restored snapshot from %s\n", file)
	return 0
}

// snapshotSave writes the snapshot to a temporary file beside file and
// renames it into place, so a failed save leaves no half file.
func snapshotSave(c *apiClient, file string) (err error) {
	body, err := c.do("GET", "/v1/snapshot", nil)
	if err != nil {
		return err
	}
	defer body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	_, cerr := io.Copy(tmp, body)
	serr := tmp.Sync()
	if err := errors.Join(cerr, serr, tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
