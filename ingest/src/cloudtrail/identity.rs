//! `userIdentity`: who made the call, mapped onto the principal columns.
//!
//! `principal` is the stable key baselines and partitioning use, so it names
//! the long-lived identity rather than the session:
//!
//! | `type` | `principal` | `user_name` |
//! |---|---|---|
//! | `IAMUser` | the user ARN | `userName` |
//! | `AssumedRole` | the role ARN: `sessionIssuer.arn` (keeps the role path), else derived from `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION` | `sessionIssuer.userName`, else the role name |
//! | `Root` | `arn`, else `arn:aws:iam::ACCT:root` | `root` |
//! | `FederatedUser` | `arn` | the federated user name from the ARN, else `userName` |
//! | `AWSService` | `invokedBy` (`lambda.amazonaws.com`) | `userName` if any |
//! | `AWSAccount` | `account:` + `accountId` (else `principalId`) | `userName` if any |
//! | `IdentityCenterUser` | `identitycenter:` + `onBehalfOf.userId` (else `principalId`) | `userName` if any |
//! | `SAMLUser`, `WebIdentityUser`, anything else or absent | `arn`, else `userName`, else `principalId`, else `unknown` | `userName` |
//!
//! Whenever the specific rule finds nothing, the last row's chain applies.
//! `principal_type` is `type` verbatim (`Unknown` when absent).

use serde::Deserialize;

use super::json::{Lenient, Text, parse_bool, parse_lenient};

/// The parts of `userIdentity` the event model reads; everything else stays
/// in `extra` through the raw `userIdentity` text.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UserIdentity<'a> {
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
    #[serde(rename = "principalId", borrow)]
    principal_id: Text<'a>,
    #[serde(borrow)]
    arn: Text<'a>,
    #[serde(rename = "accountId", borrow)]
    account_id: Text<'a>,
    #[serde(rename = "accessKeyId", borrow)]
    access_key_id: Text<'a>,
    #[serde(rename = "userName", borrow)]
    user_name: Text<'a>,
    #[serde(rename = "invokedBy", borrow)]
    invoked_by: Text<'a>,
    #[serde(rename = "sessionContext", borrow)]
    session_context: Lenient<SessionContext<'a>>,
    #[serde(rename = "onBehalfOf", borrow)]
    on_behalf_of: Lenient<OnBehalfOf<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SessionContext<'a> {
    #[serde(rename = "sessionIssuer", borrow)]
    session_issuer: Lenient<SessionIssuer<'a>>,
    #[serde(borrow)]
    attributes: Lenient<Attributes<'a>>,
    #[serde(rename = "sourceIdentity", borrow)]
    source_identity: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SessionIssuer<'a> {
    #[serde(borrow)]
    arn: Text<'a>,
    #[serde(rename = "userName", borrow)]
    user_name: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Attributes<'a> {
    #[serde(rename = "mfaAuthenticated", borrow)]
    mfa_authenticated: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OnBehalfOf<'a> {
    #[serde(rename = "userId", borrow)]
    user_id: Text<'a>,
}

/// The principal columns of one event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Who {
    /// The stable key of the actor.
    pub principal: String,
    /// `userIdentity.type` verbatim, `Unknown` when absent.
    pub principal_type: String,
    /// `userIdentity.arn` as given.
    pub principal_arn: Option<String>,
    /// The short name: user name, role name, `root`.
    pub user_name: Option<String>,
    /// The role session name, for assumed roles.
    pub session_name: Option<String>,
    /// `accessKeyId`, unless empty.
    pub access_key_id: Option<String>,
    /// `sessionContext.sourceIdentity`.
    pub source_identity: Option<String>,
    /// `sessionContext.attributes.mfaAuthenticated`.
    pub mfa: Option<bool>,
    /// The identity's own account (`accountId`).
    pub account_id: Option<String>,
}

/// Maps a raw `userIdentity` value (absent, null or malformed included)
/// onto the principal columns, from [`RECENT`] when the same text was
/// mapped lately on this thread.
pub fn who(raw: Option<&str>) -> Who {
    with_who(raw, Who::clone)
}

/// [`who`], lent to `read` rather than copied: a reader writing the columns
/// into an event it reuses copies each text once, from the remembered
/// mapping. `read` runs while this thread's memory of mappings is held, so
/// it must not map an identity itself.
pub fn with_who<R>(raw: Option<&str>, read: impl FnOnce(&Who) -> R) -> R {
    match raw {
        Some(text) if text.len() <= RECENT_MAX_TEXT => RECENT.with(|recent| {
            let mut recent = recent.borrow_mut();
            match recent.get_mut(slot_of(text)) {
                Some(Some((seen, who))) if **seen == *text => read(who),
                Some(slot) => {
                    let who = map_identity(raw);
                    let answer = read(&who);
                    *slot = Some((text.into(), who));
                    answer
                }
                None => read(&map_identity(raw)),
            }
        }),
        _ => read(&map_identity(raw)),
    }
}

/// How many `userIdentity` texts each reading thread remembers.
///
/// A session's calls all carry the same `userIdentity` text (the session's
/// ARN, key and creation date), and a busy session makes its calls close
/// together: of the first 20,000 records of a generated organisation (1,994
/// distinct texts), 87 % found their text here (79 % with 256 slots).
/// Mapping a text costs about 9,000 instructions (serde reading up to four
/// nested objects, then the principal rules, then the strings); finding it
/// here about 1,400 (a hash, a comparison and a copy of the answer). Slots
/// are chosen by a hash of the text and overwritten on a collision: texts
/// an attacker chooses can at worst make every lookup miss, which costs
/// what mapping costs anyway.
const RECENT_SLOTS: usize = 1024;

/// Longer texts are mapped every time rather than kept (a bound on the
/// memory the slots hold: 1,024 times this at most, per thread).
const RECENT_MAX_TEXT: usize = 2048;

type Recent = Vec<Option<(Box<str>, Who)>>;

thread_local! {
    static RECENT: std::cell::RefCell<Recent> =
        std::cell::RefCell::new(vec![None; RECENT_SLOTS]);
}

/// The slot of a text: a multiplicative hash of its 8-byte words.
fn slot_of(text: &str) -> usize {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes = text.as_bytes();
    let mut h = bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K);
    }
    // The high bits mix the most input.
    (h >> 54) as usize % RECENT_SLOTS
}

/// The principal columns of one `userIdentity` value, mapped afresh.
fn map_identity(raw: Option<&str>) -> Who {
    let id: UserIdentity<'_> = raw.and_then(parse_lenient).unwrap_or_default();
    let session = id.session_context.0.unwrap_or_default();
    let issuer = session.session_issuer.0.unwrap_or_default();
    let attributes = session.attributes.0.unwrap_or_default();

    let kind = id.kind.get().unwrap_or("Unknown");
    let arn = id.arn.get();
    let account = id.account_id.get();
    let mut user_name = id.user_name.get().map(str::to_owned);
    let mut session_name = None;

    let principal: Option<String> = match kind {
        "IAMUser" => arn.map(str::to_owned),
        "AssumedRole" => {
            let assumed = arn.and_then(parse_assumed_role);
            if let Some(a) = &assumed {
                session_name = a.session.map(str::to_owned);
            }
            user_name = issuer
                .user_name
                .get()
                .or(assumed.as_ref().map(|a| a.role))
                .map(str::to_owned);
            issuer
                .arn
                .get()
                .map(str::to_owned)
                .or_else(|| assumed.as_ref().map(AssumedRole::role_arn))
        }
        "Root" => {
            user_name = Some("root".to_owned());
            arn.map(str::to_owned)
                .or_else(|| account.map(|a| format!("arn:aws:iam::{a}:root")))
        }
        "FederatedUser" => {
            if let Some(name) = arn
                .and_then(|a| a.split_once(":federated-user/"))
                .map(|(_, name)| name)
                .filter(|n| !n.is_empty())
            {
                user_name = Some(name.to_owned());
            }
            arn.map(str::to_owned)
        }
        "AWSService" => id.invoked_by.get().map(str::to_owned),
        "AWSAccount" => account
            .or(id.principal_id.get())
            .map(|a| format!("account:{a}")),
        "IdentityCenterUser" => id
            .on_behalf_of
            .0
            .as_ref()
            .and_then(|o| o.user_id.get())
            .or(id.principal_id.get())
            .map(|u| format!("identitycenter:{u}")),
        _ => None,
    };
    let principal = principal
        .or_else(|| arn.map(str::to_owned))
        .or_else(|| id.user_name.get().map(str::to_owned))
        .or_else(|| id.principal_id.get().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());

    Who {
        principal,
        principal_type: kind.to_owned(),
        principal_arn: arn.map(str::to_owned),
        user_name,
        session_name,
        access_key_id: id.access_key_id.get().map(str::to_owned),
        source_identity: session.source_identity.get().map(str::to_owned),
        mfa: attributes.mfa_authenticated.get().and_then(parse_bool),
        account_id: account.map(str::to_owned),
    }
}

/// The parts of `arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
#[derive(Debug, PartialEq, Eq)]
struct AssumedRole<'a> {
    partition: &'a str,
    account: &'a str,
    role: &'a str,
    session: Option<&'a str>,
}

impl AssumedRole<'_> {
    /// The IAM role ARN (without a role path: the session ARN does not carry it).
    fn role_arn(&self) -> String {
        format!(
            "arn:{}:iam::{}:role/{}",
            self.partition, self.account, self.role
        )
    }
}

fn parse_assumed_role(arn: &str) -> Option<AssumedRole<'_>> {
    let mut parts = arn.splitn(6, ':');
    let (scheme, partition, service, _region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if scheme != "arn" || service != "sts" {
        return None;
    }
    let rest = resource.strip_prefix("assumed-role/")?;
    let (role, session) = match rest.split_once('/') {
        Some((role, session)) => (role, Some(session).filter(|s| !s.is_empty())),
        None => (rest, None),
    };
    if role.is_empty() {
        return None;
    }
    Some(AssumedRole {
        partition,
        account,
        role,
        session,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_identity_maps_as_the_first_time() {
        let texts = [
            r#"{"type":"IAMUser","arn":"arn:aws:iam::1:user/a","accountId":"1","userName":"a"}"#,
            r#"{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/R/s","accountId":"1"}"#,
            r#"{"type":"Root","accountId":"2"}"#,
            "null",
            "{",
        ];
        let fresh: Vec<Who> = texts.iter().map(|t| map_identity(Some(t))).collect();
        // Three rounds: the first fills the slots, the others read them.
        for _ in 0..3 {
            for (t, f) in texts.iter().zip(&fresh) {
                assert_eq!(&who(Some(t)), f, "{t}");
            }
        }
        // Many distinct texts (collisions overwrite slots) still map right.
        for i in 0..2_000 {
            let t = format!(r#"{{"type":"IAMUser","arn":"arn:aws:iam::1:user/u{i}"}}"#);
            assert_eq!(who(Some(&t)).principal, format!("arn:aws:iam::1:user/u{i}"));
        }
        assert_eq!(who(None), map_identity(None));
    }

    #[test]
    fn assumed_role_arns_split_into_role_and_session() {
        let a = parse_assumed_role("arn:aws-cn:sts::123:assumed-role/Admin/alice@x").unwrap();
        assert_eq!(a.role_arn(), "arn:aws-cn:iam::123:role/Admin");
        assert_eq!(a.session, Some("alice@x"));
        assert_eq!(parse_assumed_role("arn:aws:iam::123:user/bob"), None);
        assert_eq!(parse_assumed_role("garbage"), None);
    }
}
