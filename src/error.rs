//! The crate's error type. An `Error` means the run could not finish as asked; a policy violation is never
//! an error but a [`crate::report::Finding`]. Each variant maps onto one documented exit code.

use std::path::PathBuf;

/// Everything that can stop a run. `exit_code()` maps it onto contract.md's codes.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// Bad flag, bad value, unknown preset (exit 2).
    #[error("{0}")]
    #[diagnostic(code(x1::usage))]
    Usage(String),

    /// A rule or preset file that does not parse or validate (exit 2), with the offending span.
    #[error("{message}")]
    #[diagnostic(code(x1::rule_file))]
    RuleFile {
        message: String,
        #[source_code]
        src: miette::NamedSource<String>,
        #[label("{label}")]
        span: Option<miette::SourceSpan>,
        label: String,
    },

    /// The image cannot be trusted or read (exit 3). `what` names the blob or file, `detail` what differed.
    #[error("image is unreadable or corrupt: {what}: {detail}")]
    #[diagnostic(code(x1::corrupt_image))]
    Corrupt { what: String, detail: String },

    /// The healthcheck had to run and could not (exit 4).
    #[error("healthcheck could not be executed: {0}")]
    #[diagnostic(code(x1::not_run))]
    NotRun(String),

    /// Reading or writing a local path failed (exit 3 for inputs, 2 for outputs; see `exit_code`).
    #[error("{}: {source}", path.display())]
    #[diagnostic(code(x1::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
        /// true when the path is an output the user asked us to write
        output: bool,
    },
}

/// Crate-wide result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The exit code contract.md assigns to this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::RuleFile { .. } | Error::Io { output: true, .. } => 2,
            Error::Corrupt { .. } | Error::Io { output: false, .. } => 3,
            Error::NotRun(_) => 4,
        }
    }

    /// Shorthand for a corrupt-input error.
    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// Shorthand for an input I/O error.
    pub fn input(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
            output: false,
        }
    }

    /// Shorthand for an output I/O error.
    pub fn output(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
            output: true,
        }
    }
}
