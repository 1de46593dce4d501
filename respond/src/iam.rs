//! The IAM calls the responders make, behind [`Iam`] so that the guardrails
//! can be tested without AWS; [`AwsIam`] makes them through the AWS SDK for
//! Rust, with the SDK's standard retry mode (exponential backoff with
//! jitter on throttling and transient errors).

use std::time::Duration;

use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_iam::types::StatusType;

use crate::config::AwsSettings;

/// An IAM call that failed, after the SDK's retries.
#[derive(Debug, Clone, thiserror::Error)]
#[error("IAM {operation} failed: {message}")]
pub struct IamError {
    /// The operation (`PutUserPolicy`).
    pub operation: &'static str,
    /// AWS's error code, when it gave one (`AccessDenied`, `Throttling`).
    pub code: Option<String>,
    /// The whole message.
    pub message: String,
}

impl IamError {
    /// Whether the entity (user, role, policy, key) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code.as_deref() == Some("NoSuchEntity")
    }
}

/// Who an inline policy is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder<'a> {
    /// An IAM user, by name.
    User(&'a str),
    /// An IAM role, by name.
    Role(&'a str),
}

/// The state of an access key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Usable.
    Active,
    /// Deactivated.
    Inactive,
}

/// The IAM operations responders need.
pub trait Iam: Send {
    /// Adds (or replaces) an inline policy.
    fn put_inline_policy(&mut self, on: Holder<'_>, name: &str, doc: &str) -> Result<(), IamError>;
    /// Removes an inline policy; `Ok(false)` when it was not there.
    fn delete_inline_policy(&mut self, on: Holder<'_>, name: &str) -> Result<bool, IamError>;
    /// The names of the inline policies.
    fn inline_policies(&mut self, on: Holder<'_>) -> Result<Vec<String>, IamError>;
    /// A user's access key's status; `None` when the user has no such key.
    fn access_key_status(&mut self, user: &str, key: &str) -> Result<Option<KeyStatus>, IamError>;
    /// Sets a user's access key's status.
    fn set_access_key_status(
        &mut self,
        user: &str,
        key: &str,
        status: KeyStatus,
    ) -> Result<(), IamError>;
}

/// [`Iam`] through aws-sdk-iam, on a runtime of its own (one thread).
pub struct AwsIam {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_iam::Client,
}

impl AwsIam {
    /// A client from the standard configuration chain and `settings`
    /// (region, profile, endpoint), with `attempts` tries per call.
    pub fn from_settings(settings: &AwsSettings, attempts: u32) -> Result<Self, IamError> {
        let runtime = runtime()?;
        let shared = trailhound_aws::AwsSettings {
            region: settings.region.clone(),
            profile: settings.profile.clone(),
            endpoint_url: settings.endpoint_url.clone(),
            attempts: Some(attempts),
            ..trailhound_aws::AwsSettings::default()
        };
        let sdk = runtime.block_on(trailhound_aws::config::load_with(
            &shared,
            Duration::from_secs(20),
        ));
        Ok(Self {
            client: aws_sdk_iam::Client::new(&sdk),
            runtime,
        })
    }

    /// A client from a ready SDK configuration (tests, embedders).
    pub fn from_conf(conf: aws_sdk_iam::Config) -> Result<Self, IamError> {
        Ok(Self {
            runtime: runtime()?,
            client: aws_sdk_iam::Client::from_conf(conf),
        })
    }

    /// The SDK client, for checks beside the responders.
    pub fn client(&self) -> &aws_sdk_iam::Client {
        &self.client
    }

    /// Runs a future of the SDK on the client's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, IamError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| IamError {
            operation: "runtime",
            code: None,
            message: e.to_string(),
        })
}

fn fail<E>(operation: &'static str, e: E) -> IamError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    IamError {
        operation,
        code: e.code().map(str::to_string),
        message: DisplayErrorContext(&e).to_string(),
    }
}

impl Iam for AwsIam {
    fn put_inline_policy(&mut self, on: Holder<'_>, name: &str, doc: &str) -> Result<(), IamError> {
        match on {
            Holder::User(user) => self
                .runtime
                .block_on(
                    self.client
                        .put_user_policy()
                        .user_name(user)
                        .policy_name(name)
                        .policy_document(doc)
                        .send(),
                )
                .map(|_| ())
                .map_err(|e| fail("PutUserPolicy", e)),
            Holder::Role(role) => self
                .runtime
                .block_on(
                    self.client
                        .put_role_policy()
                        .role_name(role)
                        .policy_name(name)
                        .policy_document(doc)
                        .send(),
                )
                .map(|_| ())
                .map_err(|e| fail("PutRolePolicy", e)),
        }
    }

    fn delete_inline_policy(&mut self, on: Holder<'_>, name: &str) -> Result<bool, IamError> {
        let result = match on {
            Holder::User(user) => self
                .runtime
                .block_on(
                    self.client
                        .delete_user_policy()
                        .user_name(user)
                        .policy_name(name)
                        .send(),
                )
                .map(|_| ())
                .map_err(|e| fail("DeleteUserPolicy", e)),
            Holder::Role(role) => self
                .runtime
                .block_on(
                    self.client
                        .delete_role_policy()
                        .role_name(role)
                        .policy_name(name)
                        .send(),
                )
                .map(|_| ())
                .map_err(|e| fail("DeleteRolePolicy", e)),
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn inline_policies(&mut self, on: Holder<'_>) -> Result<Vec<String>, IamError> {
        let mut names = Vec::new();
        let mut marker: Option<String> = None;
        // Bounded: IAM allows far fewer inline policies than this many pages.
        for _ in 0..100 {
            let (page, next) = match on {
                Holder::User(user) => {
                    let out = self
                        .runtime
                        .block_on(
                            self.client
                                .list_user_policies()
                                .user_name(user)
                                .set_marker(marker.clone())
                                .send(),
                        )
                        .map_err(|e| fail("ListUserPolicies", e))?;
                    let next = out.is_truncated().then(|| out.marker().map(str::to_string));
                    (out.policy_names, next.flatten())
                }
                Holder::Role(role) => {
                    let out = self
                        .runtime
                        .block_on(
                            self.client
                                .list_role_policies()
                                .role_name(role)
                                .set_marker(marker.clone())
                                .send(),
                        )
                        .map_err(|e| fail("ListRolePolicies", e))?;
                    let next = out.is_truncated().then(|| out.marker().map(str::to_string));
                    (out.policy_names, next.flatten())
                }
            };
            names.extend(page);
            match next {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        Ok(names)
    }

    fn access_key_status(&mut self, user: &str, key: &str) -> Result<Option<KeyStatus>, IamError> {
        let out = self
            .runtime
            .block_on(self.client.list_access_keys().user_name(user).send())
            .map_err(|e| fail("ListAccessKeys", e))?;
        Ok(out
            .access_key_metadata()
            .iter()
            .find(|k| k.access_key_id() == Some(key))
            .map(|k| match k.status() {
                Some(StatusType::Active) => KeyStatus::Active,
                _ => KeyStatus::Inactive,
            }))
    }

    fn set_access_key_status(
        &mut self,
        user: &str,
        key: &str,
        status: KeyStatus,
    ) -> Result<(), IamError> {
        let s = match status {
            KeyStatus::Active => StatusType::Active,
            KeyStatus::Inactive => StatusType::Inactive,
        };
        self.runtime
            .block_on(
                self.client
                    .update_access_key()
                    .user_name(user)
                    .access_key_id(key)
                    .status(s)
                    .send(),
            )
            .map(|_| ())
            .map_err(|e| fail("UpdateAccessKey", e))
    }
}
