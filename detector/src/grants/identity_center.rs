//! IAM Identity Center as a grant source, read straight from CloudTrail.
//!
//! - `CreateAccountAssignment` (`sso.amazonaws.com`, no error) starts a grant
//!   for `principalId` (`principalType` `USER` or `GROUP`) on
//!   `permissionSetArn` in account `targetId`; `DeleteAccountAssignment`
//!   ends it. The caller of the create is the approver.
//! - The permission-set calls (`CreatePermissionSet`, `DescribePermissionSet`,
//!   `UpdatePermissionSet`, `ProvisionPermissionSet`) and Identity Store's
//!   `CreateUser` and `DescribeUser` fill the directory that turns a
//!   permission-set ARN into its name (the role in each account is
//!   `AWSReservedSSO_<name>_<hash>`) and a user id into the user name (the
//!   role session name of that user's sessions). The settings file can
//!   give both, and group members, up front (`grants.identity_center`).
//!
//! A user the directory cannot name is matched leniently: the grant covers
//! whoever uses the permission set in that account (no false alarm for an
//! assignment whose user is unknown). So is a group without configured
//! members.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::record::Assignment;

/// The event source of Identity Center's admin API.
pub const SSO: &str = "sso.amazonaws.com";
/// The event source of the Identity Store.
pub const IDENTITY_STORE: &str = "identitystore.amazonaws.com";

/// What one CloudTrail record says about grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// An assignment was created: a grant starts.
    Assigned(Assignment),
    /// An assignment was deleted: its grant ends.
    Unassigned(Assignment),
    /// A permission set's name.
    PermissionSet {
        /// The ARN.
        arn: String,
        /// The name.
        name: String,
    },
    /// A user's name.
    User {
        /// The Identity Store id.
        id: String,
        /// The user name.
        name: String,
    },
}

/// Names learnt from records (and given by the settings file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Permission-set ARN -> name.
    pub permission_sets: BTreeMap<String, String>,
    /// Identity Store user id -> user name.
    pub users: BTreeMap<String, String>,
}

impl Directory {
    /// Learns a fact; true when something new was learnt.
    pub fn learn(&mut self, fact: &Fact) -> bool {
        let (map, key, value) = match fact {
            Fact::PermissionSet { arn, name } => (&mut self.permission_sets, arn, name),
            Fact::User { id, name } => (&mut self.users, id, name),
            _ => return false,
        };
        if map.get(key) == Some(value) {
            return false;
        }
        map.insert(key.clone(), value.clone());
        true
    }
}

/// Whether a record of this source and name can say anything about grants
/// (cheap: no JSON is read).
pub fn is_relevant(event_source: &str, event_name: &str) -> bool {
    match event_source {
        SSO => matches!(
            event_name,
            "CreateAccountAssignment"
                | "DeleteAccountAssignment"
                | "CreatePermissionSet"
                | "DescribePermissionSet"
                | "UpdatePermissionSet"
                | "ProvisionPermissionSet"
        ),
        IDENTITY_STORE => matches!(event_name, "CreateUser" | "DescribeUser"),
        _ => false,
    }
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut at = v;
    for key in path {
        at = at.get(key)?;
    }
    at.as_str().filter(|s| !s.is_empty())
}

/// Reads a successful record's `requestParameters` and `responseElements`
/// (JSON text). Records that say nothing usable give `None`.
pub fn read(
    event_source: &str,
    event_name: &str,
    request: Option<&str>,
    response: Option<&str>,
) -> Option<Fact> {
    let parse = |t: Option<&str>| t.and_then(|t| serde_json::from_str::<Value>(t).ok());
    let request = parse(request).unwrap_or(Value::Null);
    let response = parse(response).unwrap_or(Value::Null);
    match (event_source, event_name) {
        (SSO, "CreateAccountAssignment" | "DeleteAccountAssignment") => {
            let target_type = text(&request, &["targetType"]).unwrap_or("AWS_ACCOUNT");
            if target_type != "AWS_ACCOUNT" {
                return None;
            }
            let assignment = Assignment {
                account: text(&request, &["targetId"])?.to_string(),
                permission_set_arn: text(&request, &["permissionSetArn"])?.to_string(),
                principal_type: text(&request, &["principalType"])
                    .unwrap_or("USER")
                    .to_ascii_uppercase(),
                principal_id: text(&request, &["principalId"])?.to_string(),
            };
            Some(if event_name == "CreateAccountAssignment" {
                Fact::Assigned(assignment)
            } else {
                Fact::Unassigned(assignment)
            })
        }
        (SSO, _) => {
            let set = response.get("permissionSet")?;
            Some(Fact::PermissionSet {
                arn: text(set, &["permissionSetArn"])?.to_string(),
                name: text(set, &["name"])?.to_string(),
            })
        }
        (IDENTITY_STORE, "CreateUser") => Some(Fact::User {
            id: text(&response, &["userId"])?.to_string(),
            name: text(&request, &["userName"])
                .or_else(|| text(&response, &["userName"]))?
                .to_string(),
        }),
        (IDENTITY_STORE, "DescribeUser") => Some(Fact::User {
            id: text(&response, &["userId"])?.to_string(),
            name: text(&response, &["userName"])?.to_string(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS: &str = "arn:aws:sso:::permissionSet/ssoins-1111222233334444/ps-aaaabbbbccccdddd";

    #[test]
    fn assignments_and_names_are_read_from_the_records() {
        let req = format!(
            r#"{{"instanceArn":"arn:aws:sso:::instance/ssoins-1111222233334444","targetId":"111122223333","targetType":"AWS_ACCOUNT","permissionSetArn":"{PS}","principalType":"USER","principalId":"u-1"}}"#
        );
        let Some(Fact::Assigned(a)) = read(SSO, "CreateAccountAssignment", Some(&req), None) else {
            panic!("not an assignment")
        };
        assert_eq!(a.account, "111122223333");
        assert_eq!(a.principal_id, "u-1");
        assert!(matches!(
            read(SSO, "DeleteAccountAssignment", Some(&req), None),
            Some(Fact::Unassigned(_))
        ));
        let resp =
            format!(r#"{{"permissionSet":{{"name":"AdminAccess","permissionSetArn":"{PS}"}}}}"#);
        assert_eq!(
            read(SSO, "CreatePermissionSet", None, Some(&resp)),
            Some(Fact::PermissionSet {
                arn: PS.into(),
                name: "AdminAccess".into()
            })
        );
        assert_eq!(
            read(
                IDENTITY_STORE,
                "CreateUser",
                Some(r#"{"identityStoreId":"d-1","userName":"alice"}"#),
                Some(r#"{"userId":"u-1","identityStoreId":"d-1"}"#)
            ),
            Some(Fact::User {
                id: "u-1".into(),
                name: "alice".into()
            })
        );
        assert_eq!(read(SSO, "CreateAccountAssignment", Some("{}"), None), None);
        assert_eq!(
            read(SSO, "CreateAccountAssignment", Some("not json"), None),
            None
        );
    }
}
