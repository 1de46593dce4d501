//! The standard AWS configuration for every client of this crate: the
//! credential chain (environment, profiles, SSO, web identity, container
//! and instance roles), a named profile, the region, an optional role to
//! assume on top, and another endpoint for emulators and private endpoints.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use serde::Deserialize;

/// Where and as whom to reach AWS (`aws:` in the config file, or flags).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// The region; default: the chain's (`AWS_REGION`, the profile), else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// A named profile of `~/.aws/config`.
    #[serde(default)]
    pub profile: Option<String>,
    /// Another endpoint: an emulator or a private (VPC) endpoint.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// A role to assume with the chain's credentials (cross-account reads).
    #[serde(default)]
    pub assume_role: Option<String>,
    /// The external id the role's trust policy asks for.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Tries per call (the SDK's standard retry mode: exponential backoff
    /// with jitter on throttling and transient errors). Default 5.
    #[serde(default)]
    pub attempts: Option<u32>,
}

/// The SDK's standard retry mode with `attempts` tries.
pub fn retry(attempts: u32) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(attempts.max(1))
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(20))
}

/// Loads the SDK configuration `settings` describe, for the sources
/// (long polls wait 20 s; object reads stream for longer: 300 s a try).
pub async fn load(settings: &AwsSettings) -> aws_config::SdkConfig {
    load_with(settings, Duration::from_secs(300)).await
}

/// [`load`] with another limit on each try of a call (the responders' IAM
/// calls are short: 20 s).
pub async fn load_with(settings: &AwsSettings, attempt_timeout: Duration) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry(settings.attempts.unwrap_or(5)))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        );
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    let region =
        RegionProviderChain::first_try(settings.region.clone().map(aws_config::Region::new))
            .or_default_provider()
            .or_else("us-east-1");
    loader = loader.region(region);
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let base = loader.load().await;
    let Some(role) = &settings.assume_role else {
        return base;
    };
    let mut provider = AssumeRoleProvider::builder(role.clone())
        .session_name(format!("trailhound-{}", std::process::id()))
        .configure(&base);
    if let Some(id) = &settings.external_id {
        provider = provider.external_id(id.clone());
    }
    let provider = provider.build().await;
    base.into_builder()
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
            provider,
        ))
        .build()
}
