package consensus

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
	"github.com/meshd/meshd/catalog"
)

// A snapshot archive, as GET /v1/snapshot writes it and PUT reads it: a
// gzipped tar holding meta.json (the Raft index and term, and the SHA-256
// of the state) and state.bin (the catalog snapshot stream).
const (
	archiveMeta  = "meta.json"
	archiveState = "state.bin"
	// maxSnapshotSize bounds what a restore reads into memory.
	maxSnapshotSize = 4 << 30
)

// ErrBadSnapshot marks a snapshot archive that is damaged or not one.
var ErrBadSnapshot = errors.New("bad snapshot archive")

// archiveMetaV1 is meta.json.
type archiveMetaV1 struct {
	Version int
	ID      string
	Index   uint64
	Term    uint64
	Size    int64
	SHA256  string
	Taken   time.Time
}

// SaveSnapshot takes a snapshot now and writes it to w as an archive.
func (s *Server) SaveSnapshot(w io.Writer) (uint64, error) {
	r := s.raftOrNil()
	if r == nil {
		return 0, ErrShutdown
	}
	f := r.Snapshot()
	if err := f.Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	var meta *raft.SnapshotMeta
	var rc io.ReadCloser
	var err error
	if f.Error() == nil {
		meta, rc, err = f.Open()
	} else {
		meta, rc, err = s.openLatest()
	}
	if err != nil {
		return 0, fmt.Errorf("open snapshot: %w", err)
	}
	defer rc.Close()
	state, err := io.ReadAll(rc)
	if err != nil {
		return 0, fmt.Errorf("read snapshot: %w", err)
	}
	sum := sha256.Sum256(state)
	m, err := json.Marshal(archiveMetaV1{Version: 1, ID: meta.ID, Index: meta.Index, Term: meta.Term,
		Size: int64(len(state)), SHA256: hex.EncodeToString(sum[:]), Taken: time.Now().UTC()})
	if err != nil {
		return 0, err
	}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, file := range []struct {
		name string
		data []byte
	}{{archiveMeta, m}, {archiveState, state}} {
		if err := tw.WriteHeader(&tar.Header{Name: file.name, Mode: 0o600, Size: int64(len(file.data)), ModTime: time.Now()}); err != nil {
			return 0, err
		}
		if _, err := tw.Write(file.data); err != nil {
			return 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	return meta.Index, gz.Close()
}

// openLatest opens the newest snapshot in the store, for when nothing was
// written since it was taken.
func (s *Server) openLatest() (*raft.SnapshotMeta, io.ReadCloser, error) {
	s.mu.Lock()
	snaps := s.snaps
	s.mu.Unlock()
	list, err := snaps.List()
	if err != nil {
		return nil, nil, err
	}
	if len(list) == 0 {
		return nil, nil, errors.New("no snapshot")
	}
	return snaps.Open(list[0].ID)
}

// RestoreSnapshot replaces the whole catalog, on every server, with the
// archive read from r. The archive is checked (checksum, and a trial
// restore into a scratch catalog) before Raft sees it: Raft stops a
// server whose state fails to restore, so a bad archive must never get
// that far. It runs on the leader.
func (s *Server) RestoreSnapshot(r io.Reader) error {
	rf := s.raftOrNil()
	if rf == nil {
		return ErrShutdown
	}
	meta, state, err := readArchive(r)
	if err != nil {
		return err
	}
	if err := NewFSM(catalog.NewStore(), s.logger).Restore(io.NopCloser(bytes.NewReader(state))); err != nil {
		return fmt.Errorf("%w: state: %v", ErrBadSnapshot, err)
	}
	rmeta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: meta.Index, Term: meta.Term, Size: int64(len(state))}
	if err := rf.Restore(rmeta, bytes.NewReader(state), time.Minute); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

func readArchive(r io.Reader) (*archiveMetaV1, []byte, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	tr := tar.NewReader(gz)
	var meta *archiveMetaV1
	var state []byte
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
		if h.Size > maxSnapshotSize {
			return nil, nil, fmt.Errorf("%w: %s is %d bytes", ErrBadSnapshot, h.Name, h.Size)
		}
		b, err := io.ReadAll(io.LimitReader(tr, maxSnapshotSize))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
		switch h.Name {
		case archiveMeta:
			meta = &archiveMetaV1{}
			if err := json.Unmarshal(b, meta); err != nil {
				return nil, nil, fmt.Errorf("%w: %s: %v", ErrBadSnapshot, archiveMeta, err)
			}
		case archiveState:
			state = b
		}
	}
	if meta == nil || state == nil {
		return nil, nil, fmt.Errorf("%w: want %s and %s", ErrBadSnapshot, archiveMeta, archiveState)
	}
	if meta.Version != 1 {
		return nil, nil, fmt.Errorf("%w: version %d", ErrBadSnapshot, meta.Version)
	}
	sum := sha256.Sum256(state)
	if hex.EncodeToString(sum[:]) != meta.SHA256 {
		return nil, nil, fmt.Errorf("%w: %s does not match its checksum", ErrBadSnapshot, archiveState)
	}
	return meta, state, nil
}
