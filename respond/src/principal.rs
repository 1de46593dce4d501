//! What an alert's principal is, as far as a responder cares: an IAM user
//! or role it may act on, or something it must never touch (the account
//! root, an AWS service) or cannot (a gateway login for IAM).

use std::fmt;

/// The target of an action, read from the event model's `principal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An IAM user: `arn:aws:iam::ACCOUNT:user/PATH/NAME`.
    User {
        /// The account.
        account: String,
        /// The user name (the last part of the ARN).
        name: String,
    },
    /// An IAM role: `arn:aws:iam::ACCOUNT:role/PATH/NAME` (assumed-role
    /// session ARNs map to their role).
    Role {
        /// The account.
        account: String,
        /// The role name.
        name: String,
    },
    /// The account's root user: alerted, never acted on.
    Root,
    /// An AWS service acting for the account: alerted, never acted on.
    Service,
    /// A gateway login (`gateway:<login>`).
    Gateway {
        /// The login.
        login: String,
    },
    /// Anything else (federated users, anonymous callers, unknown shapes).
    Other,
}

impl Target {
    /// Reads a principal.
    pub fn parse(principal: &str) -> Target {
        if let Some(login) = principal.strip_prefix("gateway:") {
            return Target::Gateway {
                login: login.to_string(),
            };
        }
        if !principal.starts_with("arn:") {
            if principal.ends_with(".amazonaws.com") || principal.starts_with("AWS Internal") {
                return Target::Service;
            }
            return Target::Other;
        }
        // arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE
        let mut parts = principal.splitn(6, ':');
        let (_, _, service, _, account, resource) = (
            parts.next(),
            parts.next(),
            parts.next().unwrap_or_default(),
            parts.next(),
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default(),
        );
        let last = |r: &str| r.rsplit('/').next().unwrap_or_default().to_string();
        match (service, resource) {
            (_, "root") => Target::Root,
            ("iam", r) if r.starts_with("user/") && r.len() > 5 => Target::User {
                account,
                name: last(r),
            },
            ("iam", r) if r.starts_with("role/") && r.len() > 5 => Target::Role {
                account,
                name: last(r),
            },
            ("sts", r) if r.starts_with("assumed-role/") => {
                match r.split('/').nth(1).filter(|n| !n.is_empty()) {
                    Some(role) => Target::Role {
                        account,
                        name: role.to_string(),
                    },
                    None => Target::Other,
                }
            }
            _ => Target::Other,
        }
    }

    /// What it is, in words, for reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::User { .. } => "IAM user",
            Target::Role { .. } => "IAM role",
            Target::Root => "the account root user",
            Target::Service => "an AWS service",
            Target::Gateway { .. } => "a gateway login",
            Target::Other => "not an IAM user or role",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::User { account, name } => write!(f, "user {name} in {account}"),
            Target::Role { account, name } => write!(f, "role {name} in {account}"),
            Target::Gateway { login } => write!(f, "gateway login {login}"),
            other => f.write_str(other.kind()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_roles_sessions_root_and_services_are_told_apart() {
        assert_eq!(
            Target::parse("arn:aws:iam::111122223333:user/ops/alice"),
            Target::User {
                account: "111122223333".into(),
                name: "alice".into()
            }
        );
        assert_eq!(
            Target::parse("arn:aws:iam::111122223333:role/service-role/deployer"),
            Target::Role {
                account: "111122223333".into(),
                name: "deployer".into()
            }
        );
        assert_eq!(
            Target::parse("arn:aws:sts::111122223333:assumed-role/deployer/i-0abc"),
            Target::Role {
                account: "111122223333".into(),
                name: "deployer".into()
            }
        );
        assert_eq!(
            Target::parse("arn:aws:iam::111122223333:root"),
            Target::Root
        );
        assert_eq!(Target::parse("cloudtrail.amazonaws.com"), Target::Service);
        assert_eq!(
            Target::parse("gateway:bob"),
            Target::Gateway {
                login: "bob".into()
            }
        );
        assert_eq!(Target::parse("arn:aws:iam::1:user/"), Target::Other);
        assert_eq!(Target::parse("anonymous"), Target::Other);
        assert_eq!(Target::parse(""), Target::Other);
    }
}
