package agent

import (
	"fmt"
	"os"
	"path/filepath"
)

// writeFileAtomic replaces dir/name with data so that a crash at any point
// leaves either the old file or the new one, never a mix: write a
// temporary file, fsync it, rename it over, fsync the directory. Without
// the first fsync the rename can reach the disk before the data (an empty
// journal after a power cut on ext4 and XFS); without the second the
// rename itself can be lost. A leftover temporary file from an interrupted
// write is never read, and the next write truncates it. On macOS, where a
// plain fsync may leave data in the drive's cache, os.File.Sync already
// issues F_FULLFSYNC (Go's internal/poll, falling back to fsync where the
// file system refuses it), so nothing of our own is needed there.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	path := filepath.Join(dir, name)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp) // best effort: a leftover is ignored anyway
		}
	}()
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := replaceFile(tmp, path); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// appendDurable appends one record to an existing file and fsyncs it. The
// file must exist: creating it here would also need a directory fsync, so
// files that are appended to are created with writeFileAtomic first.
func appendDurable(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
