//! The one error of this crate: an AWS call that failed, after the SDK's retries.

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata};

/// An AWS call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct AwsError {
    /// The call, as `service:Operation`.
    pub operation: &'static str,
    /// AWS's error code, when it gave one (`AccessDenied`, `ThrottlingException`, ...).
    pub code: Option<String>,
    /// What went wrong, with the SDK's context.
    pub message: String,
}

impl AwsError {
    /// From an SDK error.
    pub fn from_sdk<E>(operation: &'static str, e: E) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        Self {
            operation,
            code: e.code().map(str::to_string),
            message: DisplayErrorContext(&e).to_string(),
        }
    }
}
