// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

package diffcoll

import (
	"fmt"
	"runtime"

	"diffcoll.dev/diffcoll/capi"
)

// Status is a diffcoll_status_t. Every non-success Status is also an error
// value, so errors.Is(err, diffcoll.ErrTimeout) tells what kind of failure
// an *Error is.
type Status int32

// The statuses of the C API (values fixed by the header).
const (
	Success            Status = 0
	ErrInvalidArgument Status = 1  // a bad argument: null pointer, bad shape, dtype, rank, overlapping tensor
	ErrInvalidHandle   Status = 2  // a closed, null or unknown communicator
	ErrUnsupported     Status = 3  // valid but not supported here, e.g. a CUDA tensor on a host-only communicator
	ErrMismatch        Status = 4  // ranks passed different shapes, dtypes, strides or ops (check enabled)
	ErrTimeout         Status = 5  // a blocking call ran past the communicator's timeout
	ErrRemote          Status = 6  // a peer failed or went away; the communicator is unusable afterwards
	ErrSystem          Status = 7  // the operating system, a store or the transport failed
	ErrOutOfMemory     Status = 8  // host or device memory could not be allocated
	ErrCUDA            Status = 9  // a CUDA runtime call failed
	ErrNCCL            Status = 10 // an NCCL call failed
	ErrInCapture       Status = 11 // not allowed inside a CUDA graph capture
	ErrVersion         Status = 12 // an unknown API or struct version was requested
	ErrInternal        Status = 13 // a bug in diffcoll; please report it with the message
)

// Error returns the library's description of the status.
func (s Status) Error() string {
	return capi.Diffcoll_status_string(capi.Enum_SS_diffcoll_status_t(s))
}

// String is the same as Error.
func (s Status) String() string { return s.Error() }

// Error is what every failing function of this package returns: the status
// and the library's message (diffcoll_last_error), plus the C function that
// failed.
type Error struct {
	Status  Status
	Message string
	Op      string
}

func (e *Error) Error() string {
	if e.Op == "" {
		return e.Message
	}
	return e.Op + ": " + e.Message
}

// Unwrap makes errors.Is(err, diffcoll.ErrInvalidArgument) (and the other
// statuses) work.
func (e *Error) Unwrap() error { return e.Status }

// call runs one C API call and turns its status into an *Error. The thread is
// locked so that diffcoll_last_error(), which the library keeps per OS
// thread, is read on the thread that failed.
func call(op string, f func() capi.Enum_SS_diffcoll_status_t) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := Status(f())
	if st == Success {
		return nil
	}
	return &Error{Status: st, Message: capi.Diffcoll_last_error(), Op: op}
}

// argError is an error found by these bindings before calling the library.
func argError(op, format string, args ...interface{}) error {
	return &Error{Status: ErrInvalidArgument, Message: fmt.Sprintf(format, args...), Op: op}
}
