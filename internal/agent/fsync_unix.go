//go:build !windows

package agent

import "os"

// syncDir makes a rename in dir durable: on POSIX systems the directory
// entry is data of the directory, and only an fsync of the directory
// itself guarantees it survives a power cut.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// replaceFile renames oldpath over newpath; syncDir makes it durable.
func replaceFile(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
