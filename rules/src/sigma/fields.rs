//! Where a Sigma field name of the AWS CloudTrail log source lives in the
//! event model.
//!
//! CloudTrail's top-level fields are either lifted into columns by the ingest
//! (`ingest/src/cloudtrail/record.rs`) or kept as JSON text: `requestParameters`
//! in `request`, `responseElements` in `response`, and every other top-level
//! field (`userIdentity` whole, `additionalEventData`, `eventType`,
//! `tlsDetails`, ...) in `extra`. A dotted Sigma name (`requestParameters.a.b`)
//! becomes a JSON path into one of those columns, read with `json_as_text`,
//! which gives strings unquoted and numbers, booleans, objects and arrays as
//! their JSON text.

use super::to_sql::quote;

/// How a column's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text (plain or dictionary-encoded).
    Text,
    /// A boolean column.
    Bool,
}

/// Where one Sigma field is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An event-model column.
    Column {
        /// The column name.
        name: &'static str,
        /// Its type.
        kind: Kind,
        /// How to test that the original field was absent, when that is not
        /// simply `name IS NULL` (a column the ingest fills with a default).
        absent: Option<String>,
    },
    /// A value inside one of the JSON text columns.
    Json {
        /// `request`, `response` or `extra`.
        column: &'static str,
        /// The keys below the column (empty: the whole JSON text).
        path: Vec<String>,
    },
    /// Keyword search (a value without a field): any of [`KEYWORD_COLUMNS`].
    Keywords,
}

/// The text columns a keyword (a Sigma value without a field) is searched
/// in: the lifted text fields of a CloudTrail record and the three JSON
/// columns, which together hold the whole original record except its time.
pub const KEYWORD_COLUMNS: &[&str] = &[
    "event_source",
    "event_name",
    "error_code",
    "error_message",
    "principal_arn",
    "source_ip",
    "user_agent",
    "request",
    "response",
    "extra",
];

fn column(name: &'static str) -> Target {
    Target::Column {
        name,
        kind: Kind::Text,
        absent: None,
    }
}

fn json(column: &'static str, path: &[&str]) -> Target {
    Target::Json {
        column,
        path: path.iter().map(|s| s.to_string()).collect(),
    }
}

/// Maps a Sigma field name (CloudTrail's own spelling) onto the event model.
/// `Err` says why a field cannot be matched.
pub fn map_field(field: &str) -> Result<Target, String> {
    if field.is_empty() {
        return Ok(Target::Keywords);
    }
    let parts: Vec<&str> = field.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("field {field:?} has an empty part between dots"));
    }
    let Some((&head, rest)) = parts.split_first() else {
        return Err(format!("field {field:?} has no name"));
    };
    let scalar_only = |t: Target| {
        if rest.is_empty() {
            Ok(t)
        } else {
            Err(format!(
                "field {field:?}: {head} is a plain value in CloudTrail and has no sub-fields"
            ))
        }
    };
    match head {
        "eventSource" => scalar_only(Target::Column {
            name: "event_source",
            kind: Kind::Text,
            absent: Some("event_source = ''".into()),
        }),
        "eventName" => scalar_only(column("event_name")),
        "eventCategory" => scalar_only(column("event_category")),
        "errorCode" => scalar_only(column("error_code")),
        "errorMessage" => scalar_only(column("error_message")),
        "awsRegion" => scalar_only(column("region")),
        "sourceIPAddress" => scalar_only(column("source_ip")),
        "userAgent" => scalar_only(column("user_agent")),
        "recipientAccountId" => scalar_only(column("account_id")),
        "eventID" => scalar_only(column("event_id")),
        "readOnly" => scalar_only(Target::Column {
            name: "read_only",
            kind: Kind::Bool,
            absent: None,
        }),
        "sessionCredentialFromConsole" => scalar_only(Target::Column {
            name: "console_session",
            kind: Kind::Bool,
            absent: None,
        }),
        "eventTime" | "@timestamp" => Err(format!(
            "field {field:?}: the event time is a timestamp column, and matching it with Sigma values is not supported"
        )),
        "requestParameters" => Ok(json("request", rest)),
        "responseElements" => Ok(json("response", rest)),
        "userIdentity" => Ok(match rest {
            ["type"] => Target::Column {
                name: "principal_type",
                kind: Kind::Text,
                absent: Some(format!(
                    "json_as_text(extra, {}, {}) IS NULL",
                    quote("userIdentity"),
                    quote("type")
                )),
            },
            ["arn"] => column("principal_arn"),
            ["accessKeyId"] => column("access_key_id"),
            // `user_name` holds the role name for assumed roles and `root`
            // for the root user, so CloudTrail's own `userName` is read from
            // the JSON.
            _ => {
                let mut path = vec!["userIdentity"];
                path.extend_from_slice(rest);
                json("extra", &path)
            }
        }),
        _ => Ok(json("extra", &parts)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_columns_and_json_paths() {
        assert_eq!(map_field("eventName"), Ok(column("event_name")));
        assert_eq!(
            map_field("requestParameters.a.b"),
            Ok(json("request", &["a", "b"]))
        );
        assert_eq!(
            map_field("userIdentity.sessionContext.sessionIssuer.type"),
            Ok(json(
                "extra",
                &["userIdentity", "sessionContext", "sessionIssuer", "type"]
            ))
        );
        assert_eq!(map_field("eventType"), Ok(json("extra", &["eventType"])));
        assert_eq!(
            map_field("sessionCredentialFromConsole"),
            Ok(Target::Column {
                name: "console_session",
                kind: Kind::Bool,
                absent: None,
            })
        );
        assert!(map_field("eventName.x").is_err());
        assert!(map_field("a..b").is_err());
        assert!(map_field("eventTime").is_err());
    }
}
