//! Writing one CloudTrail record as compact JSON straight into a byte
//! buffer, in the key order CloudTrail itself uses.

use super::util::{push_kv, push_str, push_time};

/// Who made a call, as CloudTrail's `userIdentity` describes it.
pub(crate) enum Ident<'a> {
    /// An IAM user, with a long-term key (CLI) or a console session.
    User {
        /// Account id.
        account: &'a str,
        /// User name.
        name: &'a str,
        /// User ARN.
        arn: &'a str,
        /// `AIDA...`.
        principal_id: &'a str,
        /// Access key (none for `ConsoleLogin`).
        key: &'a str,
        /// Console session: (creation time, MFA used).
        console: Option<(i64, bool)>,
    },
    /// An assumed-role session.
    Role {
        /// Account id.
        account: &'a str,
        /// Role name.
        role_name: &'a str,
        /// Role ARN (with path).
        role_arn: &'a str,
        /// `AROA...`.
        role_id: &'a str,
        /// Session name.
        session: &'a str,
        /// `ASIA...` key.
        key: &'a str,
        /// When the session's credentials were issued.
        creation: i64,
        /// Whether the credentials came from an EC2 instance profile.
        ec2: bool,
        /// `sessionContext.sourceIdentity`, set when the role was assumed
        /// (an access gateway puts the user's login there).
        source_identity: Option<&'a str>,
    },
    /// An AWS service.
    Service {
        /// e.g. `lambda.amazonaws.com`.
        invoked_by: &'a str,
    },
    /// The account root user.
    Root {
        /// Account id.
        account: &'a str,
        /// Access key (empty for `ConsoleLogin`).
        key: &'a str,
        /// Console session: (creation time, MFA used).
        console: Option<(i64, bool)>,
    },
}

/// One CloudTrail record. Raw JSON fragments are written as they are; an
/// empty fragment means `null` (request, response) or absent (the others).
pub(crate) struct Rec<'a> {
    /// `eventVersion`.
    pub version: &'a str,
    /// `userIdentity`.
    pub ident: Ident<'a>,
    /// `eventTime`, microseconds.
    pub time: i64,
    /// `eventSource`.
    pub source: &'a str,
    /// `eventName`.
    pub name: &'a str,
    /// `awsRegion`.
    pub region: &'a str,
    /// `sourceIPAddress`.
    pub ip: &'a str,
    /// `userAgent`.
    pub ua: &'a [u8],
    /// `errorCode` and `errorMessage`.
    pub error: Option<(&'a str, &'a [u8])>,
    /// `requestParameters` as JSON (empty: null).
    pub request: &'a [u8],
    /// `responseElements` as JSON (empty: null).
    pub response: &'a [u8],
    /// `additionalEventData` as JSON (empty: absent).
    pub additional: &'a [u8],
    /// `requestID` (empty: absent).
    pub request_id: &'a [u8],
    /// `eventID`.
    pub event_id: &'a [u8],
    /// `readOnly`.
    pub read_only: bool,
    /// `resources` as a JSON array (empty: absent).
    pub resources: &'a [u8],
    /// `eventType`.
    pub event_type: &'a str,
    /// `managementEvent`.
    pub management: bool,
    /// `recipientAccountId`.
    pub recipient: &'a str,
    /// `sharedEventID` (empty: absent).
    pub shared_event_id: &'a [u8],
    /// `vpcEndpointId` and `vpcEndpointAccountId`.
    pub vpce: Option<(&'a str, &'a str)>,
    /// `eventCategory`.
    pub category: &'a str,
    /// `tlsDetails.clientProvidedHostHeader` (empty: no `tlsDetails`).
    pub tls_host: &'a [u8],
    /// TLS 1.3 rather than 1.2.
    pub tls13: bool,
    /// `sessionCredentialFromConsole`.
    pub from_console: bool,
}

fn push_session_context(buf: &mut Vec<u8>, creation: i64, mfa: bool) {
    buf.extend_from_slice(
        b",\"sessionContext\":{\"sessionIssuer\":{},\"webIdFederationData\":{},\"attributes\":{\"creationDate\":\"",
    );
    push_time(buf, creation, 0);
    buf.extend_from_slice(b"\",\"mfaAuthenticated\":\"");
    buf.extend_from_slice(if mfa { b"true" } else { b"false" });
    buf.extend_from_slice(b"\"}}");
}

/// Appends the `userIdentity` object.
pub(crate) fn push_ident(buf: &mut Vec<u8>, ident: &Ident<'_>) {
    match ident {
        Ident::User {
            account,
            name,
            arn,
            principal_id,
            key,
            console,
        } => {
            buf.extend_from_slice(b"{\"type\":\"IAMUser\",");
            push_kv(buf, "principalId", principal_id);
            buf.push(b',');
            push_kv(buf, "arn", arn);
            buf.push(b',');
            push_kv(buf, "accountId", account);
            if !key.is_empty() {
                buf.push(b',');
                push_kv(buf, "accessKeyId", key);
            }
            buf.push(b',');
            push_kv(buf, "userName", name);
            if let Some((creation, mfa)) = console {
                push_session_context(buf, *creation, *mfa);
            }
            buf.push(b'}');
        }
        Ident::Role {
            account,
            role_name,
            role_arn,
            role_id,
            session,
            key,
            creation,
            ec2,
            source_identity,
        } => {
            buf.extend_from_slice(b"{\"type\":\"AssumedRole\",\"principalId\":\"");
            buf.extend_from_slice(role_id.as_bytes());
            buf.push(b':');
            buf.extend_from_slice(session.as_bytes());
            buf.extend_from_slice(b"\",\"arn\":\"arn:aws:sts::");
            buf.extend_from_slice(account.as_bytes());
            buf.extend_from_slice(b":assumed-role/");
            buf.extend_from_slice(role_name.as_bytes());
            buf.push(b'/');
            buf.extend_from_slice(session.as_bytes());
            buf.extend_from_slice(b"\",");
            push_kv(buf, "accountId", account);
            buf.push(b',');
            push_kv(buf, "accessKeyId", key);
            buf.extend_from_slice(b",\"sessionContext\":{\"sessionIssuer\":{\"type\":\"Role\",");
            push_kv(buf, "principalId", role_id);
            buf.push(b',');
            push_kv(buf, "arn", role_arn);
            buf.push(b',');
            push_kv(buf, "accountId", account);
            buf.push(b',');
            push_kv(buf, "userName", role_name);
            buf.extend_from_slice(
                b"},\"webIdFederationData\":{},\"attributes\":{\"creationDate\":\"",
            );
            push_time(buf, *creation, 0);
            buf.extend_from_slice(b"\",\"mfaAuthenticated\":\"false\"}");
            if *ec2 {
                buf.extend_from_slice(b",\"ec2RoleDelivery\":\"2.0\"");
            }
            if let Some(identity) = source_identity {
                buf.push(b',');
                push_kv(buf, "sourceIdentity", identity);
            }
            buf.extend_from_slice(b"}}");
        }
        Ident::Service { invoked_by } => {
            buf.extend_from_slice(b"{\"type\":\"AWSService\",");
            push_kv(buf, "invokedBy", invoked_by);
            buf.push(b'}');
        }
        Ident::Root {
            account,
            key,
            console,
        } => {
            buf.extend_from_slice(b"{\"type\":\"Root\",");
            push_kv(buf, "principalId", account);
            buf.extend_from_slice(b",\"arn\":\"arn:aws:iam::");
            buf.extend_from_slice(account.as_bytes());
            buf.extend_from_slice(b":root\",");
            push_kv(buf, "accountId", account);
            buf.push(b',');
            push_kv(buf, "accessKeyId", key);
            if let Some((creation, mfa)) = console {
                push_session_context(buf, *creation, *mfa);
            }
            buf.push(b'}');
        }
    }
}

fn push_raw_or_null(buf: &mut Vec<u8>, raw: &[u8]) {
    if raw.is_empty() {
        buf.extend_from_slice(b"null");
    } else {
        buf.extend_from_slice(raw);
    }
}

/// Appends one record as a compact JSON object.
pub(crate) fn push_record(buf: &mut Vec<u8>, r: &Rec<'_>) {
    buf.extend_from_slice(b"{\"eventVersion\":\"");
    buf.extend_from_slice(r.version.as_bytes());
    buf.extend_from_slice(b"\",\"userIdentity\":");
    push_ident(buf, &r.ident);
    buf.extend_from_slice(b",\"eventTime\":\"");
    push_time(buf, r.time, 0);
    buf.extend_from_slice(b"\",");
    push_kv(buf, "eventSource", r.source);
    buf.push(b',');
    push_kv(buf, "eventName", r.name);
    buf.push(b',');
    push_kv(buf, "awsRegion", r.region);
    buf.push(b',');
    push_kv(buf, "sourceIPAddress", r.ip);
    buf.extend_from_slice(b",\"userAgent\":\"");
    buf.extend_from_slice(r.ua);
    buf.push(b'"');
    if let Some((code, message)) = r.error {
        buf.push(b',');
        push_kv(buf, "errorCode", code);
        buf.extend_from_slice(b",\"errorMessage\":\"");
        buf.extend_from_slice(message);
        buf.push(b'"');
    }
    buf.extend_from_slice(b",\"requestParameters\":");
    push_raw_or_null(buf, r.request);
    buf.extend_from_slice(b",\"responseElements\":");
    push_raw_or_null(buf, r.response);
    if !r.additional.is_empty() {
        buf.extend_from_slice(b",\"additionalEventData\":");
        buf.extend_from_slice(r.additional);
    }
    if !r.request_id.is_empty() {
        buf.extend_from_slice(b",\"requestID\":\"");
        buf.extend_from_slice(r.request_id);
        buf.push(b'"');
    }
    buf.extend_from_slice(b",\"eventID\":\"");
    buf.extend_from_slice(r.event_id);
    buf.extend_from_slice(b"\",\"readOnly\":");
    buf.extend_from_slice(if r.read_only { b"true" } else { b"false" });
    if !r.resources.is_empty() {
        buf.extend_from_slice(b",\"resources\":");
        buf.extend_from_slice(r.resources);
    }
    buf.push(b',');
    push_kv(buf, "eventType", r.event_type);
    buf.extend_from_slice(b",\"managementEvent\":");
    buf.extend_from_slice(if r.management { b"true" } else { b"false" });
    buf.push(b',');
    push_kv(buf, "recipientAccountId", r.recipient);
    if !r.shared_event_id.is_empty() {
        buf.extend_from_slice(b",\"sharedEventID\":\"");
        buf.extend_from_slice(r.shared_event_id);
        buf.push(b'"');
    }
    if let Some((id, account)) = r.vpce {
        buf.push(b',');
        push_kv(buf, "vpcEndpointId", id);
        buf.push(b',');
        push_kv(buf, "vpcEndpointAccountId", account);
    }
    buf.push(b',');
    push_kv(buf, "eventCategory", r.category);
    if !r.tls_host.is_empty() {
        buf.extend_from_slice(if r.tls13 {
            b",\"tlsDetails\":{\"tlsVersion\":\"TLSv1.3\",\"cipherSuite\":\"TLS_AES_128_GCM_SHA256\",\"clientProvidedHostHeader\":\""
                as &[u8]
        } else {
            b",\"tlsDetails\":{\"tlsVersion\":\"TLSv1.2\",\"cipherSuite\":\"ECDHE-RSA-AES128-GCM-SHA256\",\"clientProvidedHostHeader\":\""
        });
        buf.extend_from_slice(r.tls_host);
        buf.extend_from_slice(b"\"}");
    }
    if r.from_console {
        buf.extend_from_slice(b",\"sessionCredentialFromConsole\":\"true\"");
    }
    buf.push(b'}');
}

/// Appends one entry of a `resources` array; `first` says whether a comma is needed.
pub(crate) fn push_resource(buf: &mut Vec<u8>, first: bool, account: &str, kind: &str, arn: &[u8]) {
    buf.push(if first { b'[' } else { b',' });
    buf.push(b'{');
    if !account.is_empty() {
        push_kv(buf, "accountId", account);
        buf.push(b',');
    }
    push_kv(buf, "type", kind);
    buf.extend_from_slice(b",\"ARN\":");
    buf.push(b'"');
    buf.extend_from_slice(arn);
    buf.extend_from_slice(b"\"}");
}

/// Appends a JSON string (re-exported for callers that build fragments).
pub(crate) fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    push_str(buf, s);
}
