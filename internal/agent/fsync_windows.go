//go:build windows

package agent

import (
	"os"
	"syscall"
	"unsafe"
)

// syncDir does nothing on Windows: a directory cannot be opened for
// FlushFileBuffers there. The rename is made durable by replaceFile
// instead.
func syncDir(string) error { return nil }

var moveFileExW = syscall.NewLazyDLL("kernel32.dll").NewProc("MoveFileExW")

const (
	movefileReplaceExisting = 0x1
	movefileWriteThrough    = 0x8
)

// replaceFile renames oldpath over newpath with MOVEFILE_WRITE_THROUGH, so
// MoveFileEx returns only once the rename is on disk: Windows' stand-in
// for the directory fsync. os.Rename passes only MOVEFILE_REPLACE_EXISTING,
// which is atomic but may be lost in a power cut, and losing it would lose
// the record of an activation the host is about to load.
func replaceFile(oldpath, newpath string) error {
	from, err := syscall.UTF16PtrFromString(oldpath)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	to, err := syscall.UTF16PtrFromString(newpath)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	r, _, err := moveFileExW.Call(uintptr(unsafe.Pointer(from)), uintptr(unsafe.Pointer(to)), movefileReplaceExisting|movefileWriteThrough)
	if r == 0 {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}
