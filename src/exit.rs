//! Exit statuses shared by every subcommand, and the mapping from errors to them.
//!
//! The numbers are part of goprobe's interface (CI jobs gate on them) and are
//! documented in `goprobe --help` and the man pages:
//!
//! * 0: success;
//! * 1: the command ran, but a check it was asked to make failed (for example
//!   a required probe is not instrumentable, or an offset is unknown);
//! * 2: an error: bad usage, unreadable or malformed input, no privileges.

/// Everything worked and every check passed.
pub const SUCCESS: u8 = 0;
/// The command ran to the end, but a check it was asked for did not pass.
pub const CHECK_FAILED: u8 = 1;
/// An error stopped the command, or some of its inputs could not be processed.
pub const ERROR: u8 = 2;

/// Text appended to `--help` so the exit statuses are documented where users look.
pub const EXIT_STATUS_HELP: &str = "Exit status:\n  0  success\n  1  a requested check failed (e.g. a probe is not instrumentable, an offset is unknown)\n  2  error: bad usage, unreadable, truncated or non-Go input, dead pid, no privileges";

/// How a subcommand ended when it did not return an error outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exit 0.
    Success,
    /// Exit 1: the command ran, a check failed; the reason was already printed.
    CheckFailed,
    /// Exit 2: some inputs failed and were reported on stderr; the others were processed.
    PartialError,
}

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::Success => SUCCESS,
            Status::CheckFailed => CHECK_FAILED,
            Status::PartialError => ERROR,
        }
    }

    /// The worse of two statuses (error beats a failed check beats success).
    pub fn worst(self, other: Status) -> Status {
        if self.code() >= other.code() {
            self
        } else {
            other
        }
    }
}

/// True when the error (or anything in its chain) is a broken pipe: the reader
/// of our stdout went away (`goprobe ... | head -1`), which is not a failure.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error as one line: each cause in its chain once. Many errors name
/// their cause in their own message as well as in their source chain;
/// printed as is (`{:#}`), the cause would appear twice.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_says_each_cause_once() {
        let io = std::io::Error::from_raw_os_error(libc::EACCES);
        #[derive(Debug, thiserror::Error)]
        #[error("/proc/1/exe: {0}")]
        struct Wrap(#[source] std::io::Error);
        let err = anyhow::Error::new(Wrap(io)).context("opening the target");
        assert_eq!(
            one_line(&err),
            "opening the target: /proc/1/exe: Permission denied (os error 13)"
        );
    }

    #[test]
    fn worst_prefers_errors() {
        assert_eq!(
            Status::Success.worst(Status::CheckFailed),
            Status::CheckFailed
        );
        assert_eq!(
            Status::PartialError.worst(Status::CheckFailed),
            Status::PartialError
        );
        assert_eq!(Status::Success.worst(Status::Success), Status::Success);
    }

    #[test]
    fn broken_pipe_is_found_through_context() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe");
        let err = anyhow::Error::new(io).context("writing output");
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
