// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

//! Errors: every failing call returns an [`Error`] with the library's status
//! and message.
use std::ffi::CStr;
use std::fmt;

use diffcoll_sys as sys;

/// The failure statuses of the C API (`diffcoll_status_t` without success).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// A bad argument: null pointer, bad shape, dtype, rank, overlapping tensor.
    InvalidArgument,
    /// A null, unknown or already destroyed handle.
    InvalidHandle,
    /// Valid but not supported here, e.g. a CUDA tensor on a host-only communicator.
    Unsupported,
    /// Ranks passed different shapes, dtypes, strides or ops (check enabled).
    Mismatch,
    /// A blocking call ran past the communicator's timeout.
    Timeout,
    /// A peer failed or went away; the communicator is unusable afterwards.
    Remote,
    /// The operating system, a store or the transport failed.
    System,
    /// Host or device memory could not be allocated.
    OutOfMemory,
    /// A CUDA runtime call failed.
    Cuda,
    /// An NCCL call failed.
    Nccl,
    /// The call needs work that is not allowed inside a CUDA graph capture.
    InCapture,
    /// An unknown API or struct version was requested.
    Version,
    /// A bug in diffcoll.
    Internal,
    /// A status newer than this crate.
    Unknown(u32),
}

impl Status {
    /// The status of a C status code (None for `DIFFCOLL_SUCCESS`).
    pub fn from_code(code: sys::diffcoll_status_t) -> Option<Status> {
        Some(match code {
            sys::DIFFCOLL_SUCCESS => return None,
            sys::DIFFCOLL_ERR_INVALID_ARGUMENT => Status::InvalidArgument,
            sys::DIFFCOLL_ERR_INVALID_HANDLE => Status::InvalidHandle,
            sys::DIFFCOLL_ERR_UNSUPPORTED => Status::Unsupported,
            sys::DIFFCOLL_ERR_MISMATCH => Status::Mismatch,
            sys::DIFFCOLL_ERR_TIMEOUT => Status::Timeout,
            sys::DIFFCOLL_ERR_REMOTE => Status::Remote,
            sys::DIFFCOLL_ERR_SYSTEM => Status::System,
            sys::DIFFCOLL_ERR_OUT_OF_MEMORY => Status::OutOfMemory,
            sys::DIFFCOLL_ERR_CUDA => Status::Cuda,
            sys::DIFFCOLL_ERR_NCCL => Status::Nccl,
            sys::DIFFCOLL_ERR_IN_CAPTURE => Status::InCapture,
            sys::DIFFCOLL_ERR_VERSION => Status::Version,
            sys::DIFFCOLL_ERR_INTERNAL => Status::Internal,
            other => Status::Unknown(other),
        })
    }

    /// The C status code.
    pub fn code(self) -> sys::diffcoll_status_t {
        match self {
            Status::InvalidArgument => sys::DIFFCOLL_ERR_INVALID_ARGUMENT,
            Status::InvalidHandle => sys::DIFFCOLL_ERR_INVALID_HANDLE,
            Status::Unsupported => sys::DIFFCOLL_ERR_UNSUPPORTED,
            Status::Mismatch => sys::DIFFCOLL_ERR_MISMATCH,
            Status::Timeout => sys::DIFFCOLL_ERR_TIMEOUT,
            Status::Remote => sys::DIFFCOLL_ERR_REMOTE,
            Status::System => sys::DIFFCOLL_ERR_SYSTEM,
            Status::OutOfMemory => sys::DIFFCOLL_ERR_OUT_OF_MEMORY,
            Status::Cuda => sys::DIFFCOLL_ERR_CUDA,
            Status::Nccl => sys::DIFFCOLL_ERR_NCCL,
            Status::InCapture => sys::DIFFCOLL_ERR_IN_CAPTURE,
            Status::Version => sys::DIFFCOLL_ERR_VERSION,
            Status::Internal => sys::DIFFCOLL_ERR_INTERNAL,
            Status::Unknown(code) => code,
        }
    }

    /// The library's description of the status.
    pub fn description(self) -> String {
        // SAFETY: diffcoll_status_string returns a static string, never NULL.
        unsafe { CStr::from_ptr(sys::diffcoll_status_string(self.code())) }
            .to_string_lossy()
            .into_owned()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description())
    }
}

/// A failed diffcoll call: the status, the library's message
/// (`diffcoll_last_error()`) and the C function that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: Status,
    message: String,
    op: &'static str,
}

impl Error {
    /// An error found by this crate before calling the library.
    pub(crate) fn new(status: Status, op: &'static str, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
            op,
        }
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The library's message (or this crate's, for errors found before the call).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The function that failed.
    pub fn op(&self) -> &'static str {
        self.op
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.op, self.message, self.status)
    }
}

impl std::error::Error for Error {}

/// `Result<T, diffcoll::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// Turns a C status into a Result, reading the message on the calling thread
/// (the library keeps it per thread; a Rust thread is an OS thread).
pub(crate) fn check(op: &'static str, code: sys::diffcoll_status_t) -> Result<()> {
    match Status::from_code(code) {
        None => Ok(()),
        Some(status) => {
            // SAFETY: diffcoll_last_error never returns NULL; the string is
            // valid until the next diffcoll call on this thread.
            let message = unsafe { CStr::from_ptr(sys::diffcoll_last_error()) }
                .to_string_lossy()
                .into_owned();
            Err(Error {
                status,
                message,
                op,
            })
        }
    }
}
