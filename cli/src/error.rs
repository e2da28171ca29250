//! The errors a command ends with. Each knows its exit code; `main` alone turns them into one.

use faas_spec::Report;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The user asked for something that cannot be: a bad flag value, a missing answer. Exit 2.
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    /// app.toml has problems; the report says each. Exit 2.
    #[error("{0}")]
    Manifest(Box<Report>),
    /// The manifest problems were already printed (as JSON on stdout). Exit 2.
    #[error("app.toml is invalid")]
    ManifestReported,
    /// Something failed that the user can act on. Exit 1.
    #[error("{message}")]
    Failed {
        message: String,
        hint: Option<String>,
    },
    /// The platform refused, with its problem document. Exit 1.
    #[error("{message}")]
    Platform {
        message: String,
        hint: Option<String>,
        code: String,
        status: u16,
        deployment: Option<String>,
        /// A task definition's problems, each with its place.
        errors: Vec<faas_spec::api::tasks::DefinitionError>,
    },
    /// Ctrl-C. Exit 130.
    #[error("interrupted")]
    Interrupted,
    /// Anything else. Exit 1.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
    pub fn failed(message: impl Into<String>, hint: Option<String>) -> Self {
        Self::Failed {
            message: message.into(),
            hint,
        }
    }
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage { .. } | Self::Manifest(_) | Self::ManifestReported => 2,
            Self::Failed { .. } | Self::Other(_) | Self::Platform { .. } => 1,
            Self::Interrupted => 130,
        }
    }
}

impl From<faas_spec::LoadError> for CliError {
    fn from(e: faas_spec::LoadError) -> Self {
        match e {
            faas_spec::LoadError::Invalid(report) => Self::Manifest(report),
            faas_spec::LoadError::Read { path, source } => Self::failed(
                format!("cannot read {path}: {source}"),
                Some("check the path, or pass --manifest".into()),
            ),
        }
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;
