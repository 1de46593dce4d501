//! Rule errors. Each names the rule and, where there is one, its file.

use std::path::PathBuf;

fn show(file: &Option<PathBuf>) -> String {
    file.as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "built-in pack".to_string())
}

/// What can go wrong loading, compiling or running rules. None of these is
/// helped by retrying: the rule or its file must change.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// A rule file could not be read.
    #[error("cannot read rule file {file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A rule file is not valid YAML or does not have the rule shape.
    #[error("rule file {file} is not a valid rule: {reason}")]
    Yaml {
        /// The file (or `built-in pack`).
        file: String,
        /// The YAML error, with line and column.
        reason: String,
    },
    /// The rule's `where` does not compile against the event model.
    #[error("rule {id} ({}) does not compile: {reason}", show(file))]
    Compile {
        /// Rule id.
        id: String,
        /// Its file.
        file: Option<PathBuf>,
        /// DataFusion's message.
        reason: String,
    },
    /// Something else about the rule is wrong (dedup key, period, template).
    #[error("rule {id} ({}) is invalid: {reason}", show(file))]
    Invalid {
        /// Rule id.
        id: String,
        /// Its file.
        file: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },
    /// Two rules share an id.
    #[error("rule id {id} is defined twice: in {first} and in {second}")]
    Duplicate {
        /// The id.
        id: String,
        /// Where it was first seen.
        first: String,
        /// Where it was seen again.
        second: String,
    },
    /// A compiled rule failed on a batch (a bug or an engine limit, not bad input).
    #[error("rule {id} failed on a batch: {reason}")]
    Evaluate {
        /// Rule id.
        id: String,
        /// Why.
        reason: String,
    },
    /// The query engine could not be set up.
    #[error("rule engine set-up failed: {reason}")]
    Engine {
        /// Why.
        reason: String,
    },
}
