package local

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/meshd/meshd/node/config"
)

// Local state on disk: one JSON file per service and per check, named by a
// hash of the ID (IDs may hold any character), written atomically, so a
// crash mid-write leaves the old file or the new one.
const (
	servicesDir   = "services"
	checksDir     = "checks"
	checkStateDir = "check-state"
)

// persister writes the local state under dir; a nil persister (in-memory
// agents) writes nothing.
type persister struct {
	dir    string
	logger *slog.Logger
}

func fileName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:]) + ".json"
}

func (p *persister) saveService(def *config.ServiceDefinition) error {
	if p == nil {
		return nil
	}
	return writeJSONAtomic(filepath.Join(p.dir, servicesDir, fileName(def.ID)), def)
}

func (p *persister) removeService(id string) error {
	if p == nil {
		return nil
	}
	return removeIfExists(filepath.Join(p.dir, servicesDir, fileName(id)))
}

func (p *persister) saveCheck(def *config.CheckDefinition) error {
	if p == nil {
		return nil
	}
	return writeJSONAtomic(filepath.Join(p.dir, checksDir, fileName(def.ID)), def)
}

// removeCheck forgets a check's definition (or maintenance record). Its
// saved status goes through the state saver, in order with its saves.
func (p *persister) removeCheck(id string) error {
	if p == nil {
		return nil
	}
	if err := removeIfExists(filepath.Join(p.dir, checksDir, fileName(id))); err != nil {
		return err
	}
	return p.removeMaintenance(id)
}

// decodeStrictJSON decodes a file this agent wrote itself.
func decodeStrictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// checkState is a check's last status, kept across restarts.
type checkState struct {
	CheckID string
	Status  string
	Output  string
}

func (p *persister) saveCheckState(id, status, output string) error {
	if p == nil {
		return nil
	}
	return writeJSONAtomic(filepath.Join(p.dir, checkStateDir, fileName(id)),
		&checkState{CheckID: id, Status: status, Output: output})
}

func (p *persister) removeCheckState(id string) error {
	if p == nil {
		return nil
	}
	return removeIfExists(filepath.Join(p.dir, checkStateDir, fileName(id)))
}

// loadCheckState returns a check's saved state, or nil when there is none.
func (p *persister) loadCheckState(id string) (*checkState, error) {
	if p == nil {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(p.dir, checkStateDir, fileName(id)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read check state: %w", err)
	}
	st := &checkState{}
	if err := json.Unmarshal(b, st); err != nil || st.CheckID != id {
		return nil, fmt.Errorf("check state of %q is corrupt", id)
	}
	return st, nil
}

// loadServices reads every persisted service definition.
func (p *persister) loadServices() ([]*config.ServiceDefinition, error) {
	var out []*config.ServiceDefinition
	err := p.load(servicesDir, func(path string, b []byte) error {
		def := &config.ServiceDefinition{}
		if err := config.DecodeJSON(b, def, config.DecodeOptions{}); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, def)
		return nil
	})
	return out, err
}

// loadChecks reads every persisted check definition.
func (p *persister) loadChecks() ([]*config.CheckDefinition, error) {
	var out []*config.CheckDefinition
	err := p.load(checksDir, func(path string, b []byte) error {
		def := &config.CheckDefinition{}
		if err := config.DecodeJSON(b, def, config.DecodeOptions{}); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, def)
		return nil
	})
	return out, err
}

// load calls fn for every file of sub. A file fn cannot decode is skipped
// with a warning, as Consul does: one damaged file must not keep the agent
// from starting. Errors reading the directory are returned.
func (p *persister) load(sub string, fn func(path string, b []byte) error) error {
	if p == nil {
		return nil
	}
	dir := filepath.Join(p.dir, sub)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue // leftovers of an interrupted write end in .tmp
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if err := fn(path, b); err != nil {
			p.logger.Warn("skipping a damaged local state file", "path", path, "error", err)
		}
	}
	return nil
}

// writeJSONAtomic writes v to path through a synced temporary file of its
// own, a rename, and a sync of the directory, so the file is the old one or
// the new one, whole, even across a power loss.
func writeJSONAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}
