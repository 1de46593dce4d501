//! `trailhound rules lint`: every problem of every rule file, not just the first.
//!
//! Loading ([`crate::RuleSet::load`]) stops a file at its first error; the
//! linter reads each file on its own and keeps going, so one run lists what
//! to fix everywhere. It reports ([`Finding`], an error or a warning, with
//! file, line and column where known, and the rule id):
//!
//! - YAML syntax and shape errors, with serde's line and column;
//! - every unknown key (at the top level and inside `dedup`, `window`,
//!   `sequence`, its steps, `suppress`, `baseline`, `tests` and test
//!   events), naming the key, the closest allowed one and the allowed list;
//! - every missing required key, compile errors, duplicate ids;
//! - warnings for an id that is not the file name, and for a missing
//!   description, tags, tests or (own rules only) `respond`;
//! - rules that can never match: a `where` (or `where` and a sequence step)
//!   that DataFusion's simplifier reduces to a constant FALSE or NULL; one
//!   column compared to different literals in one conjunction
//!   (`event_name = 'A' AND event_name = 'B'`); `source` compared to anything
//!   but `cloudtrail`/`session`; session events (`source = 'session'`,
//!   `event_name = 'session.*'`) combined with conditions that need a
//!   CloudTrail-only column (`region`, `request`, ...) or the other way round;
//! - a warning for `event_name` compared to a literal starting lower-case
//!   other than a session event: CloudTrail names are PascalCase.
//!
//! The analysis of `where` is on DataFusion's logical expression; it is
//! conservative: a finding that a rule never matches is only made when no
//! event of the model can match.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, Operator};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::prelude::SessionContext;
use serde::de::DeserializeOwned;
use serde_yaml::Value;
use trailhound_core::{Event, rule_schema};

use crate::compile::Compiler;
use crate::error::RuleError;
use crate::rule::{
    BaselineSpec, DedupSpec, RuleSpec, RuleTestSpec, SequenceSpec, StepSpec, SuppressSpec,
    WindowSpec,
};
use crate::{LoadOptions, pack, sigma};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The rule does not load, or can never match.
    Error,
    /// The rule loads but something about it is likely wrong or missing.
    Warning,
}

impl Level {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

/// One problem found in one rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub level: Level,
    /// The file (`built-in NAME` for the embedded pack).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The rule's id, when the file got that far.
    pub rule_id: Option<String>,
    /// What is wrong, in plain words.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": {}", self.level.as_str())?;
        if let Some(id) = &self.rule_id {
            write!(f, " [{id}]")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What a lint run found.
#[derive(Debug, Clone, Default)]
pub struct LintReport {
    /// Rule files looked at.
    pub files: usize,
    /// Every finding, file by file, in the order the files were read.
    pub findings: Vec<Finding>,
}

impl LintReport {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.count(Level::Error)
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.count(Level::Warning)
    }

    fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.level == level).count()
    }
}

/// Where a rule text comes from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// How the file is named in findings.
    pub label: &'a str,
    /// The file on disk; `None` for the built-in pack.
    pub path: Option<&'a Path>,
    /// The file name without its extension (the id a rule should have).
    pub stem: &'a str,
}

/// The findings of one file, and the id of its rule when it has one.
#[derive(Debug, Clone, Default)]
pub struct FileLint {
    /// The rule's id, when it could be read.
    pub rule_id: Option<String>,
    /// The problems.
    pub findings: Vec<Finding>,
}

/// Lints the built-in pack (unless `no_builtin`) and every rule file under
/// `paths`, one file at a time, and then looks for duplicate ids. A user
/// rule with a built-in id replaces the built-in one and is not a duplicate.
pub fn lint(options: &LoadOptions) -> Result<LintReport, RuleError> {
    let linter = Linter::new()?;
    let mut report = LintReport::default();
    // id -> (label of the first file, built-in?)
    let mut seen: HashMap<String, (String, bool)> = HashMap::new();
    let mut note = |report: &mut LintReport, lint: FileLint, label: &str, text: &str, builtin| {
        if let Some(id) = &lint.rule_id {
            match seen.get(id) {
                Some((first, first_builtin)) if *first_builtin == builtin => {
                    let (line, column) = key_position(text, "id").unzip();
                    report.findings.push(Finding {
                        level: Level::Error,
                        file: label.to_string(),
                        line,
                        column,
                        rule_id: Some(id.clone()),
                        message: format!("duplicate id: {id} is also defined in {first}"),
                    });
                }
                Some(_) => {}
                None => {
                    seen.insert(id.clone(), (label.to_string(), builtin));
                }
            }
        }
        report.findings.extend(lint.findings);
    };
    if !options.no_builtin {
        for (name, text) in pack::FILES {
            let label = format!("built-in {name}");
            let stem = file_stem(Path::new(name));
            let origin = Origin {
                label: &label,
                path: None,
                stem: &stem,
            };
            let lint = linter.lint_text(text, origin);
            report.files += 1;
            note(&mut report, lint, &label, text, true);
        }
    }
    let mut files = Vec::new();
    for p in &options.paths {
        if let Err(e) = crate::collect_rule_files(p, &mut files) {
            report.findings.push(Finding {
                level: Level::Error,
                file: p.display().to_string(),
                line: None,
                column: None,
                rule_id: None,
                message: format!("cannot read: {e}"),
            });
        }
    }
    for file in files {
        let label = file.display().to_string();
        report.files += 1;
        match crate::read_rule_file(&file) {
            Ok(text) => {
                let stem = file_stem(&file);
                let origin = Origin {
                    label: &label,
                    path: Some(&file),
                    stem: &stem,
                };
                let lint = linter.lint_text(&text, origin);
                note(&mut report, lint, &label, &text, false);
            }
            Err(e) => report.findings.push(Finding {
                level: Level::Error,
                file: label,
                line: None,
                column: None,
                rule_id: None,
                message: e.to_string(),
            }),
        }
    }
    Ok(report)
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Lints rule texts. Holds a rule compiler and a DataFusion session for the
/// analysis of `where`; create it once.
pub struct Linter {
    compiler: Compiler,
    ctx: SessionContext,
    schema: DFSchema,
}

impl std::fmt::Debug for Linter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linter").finish_non_exhaustive()
    }
}

/// The keys a rule file must have (those without a default in [`RuleSpec`]).
const REQUIRED: [&str; 4] = ["id", "title", "severity", "where"];

/// Columns that only CloudTrail events ever have (session parsers leave them
/// empty; grant events, which ride the gateway stream, carry their grant in
/// `request`, so it is not one of them).
const CLOUDTRAIL_ONLY: [&str; 13] = [
    "read_only",
    "account_id",
    "principal_arn",
    "session_name",
    "access_key_id",
    "source_identity",
    "mfa",
    "console_session",
    "region",
    "user_agent",
    "bucket",
    "object_key",
    "response",
];

/// Columns that only session events ever have.
const SESSION_ONLY: [&str; 7] = [
    "session_id",
    "target",
    "command",
    "input",
    "keystrokes",
    "keystroke_interval_ms_mean",
    "keystroke_interval_ms_stddev",
];

/// Functions that give NULL when an argument is NULL and are never TRUE on
/// NULL; a condition through them on an empty column cannot hold.
const NULL_STRICT_FUNCTIONS: [&str; 37] = [
    "lower",
    "upper",
    "btrim",
    "trim",
    "ltrim",
    "rtrim",
    "starts_with",
    "ends_with",
    "strpos",
    "instr",
    "contains",
    "regexp_like",
    "regexp_match",
    "regexp_replace",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "substr",
    "substring",
    "replace",
    "split_part",
    "left",
    "right",
    "reverse",
    "json_get",
    "json_get_str",
    "json_get_int",
    "json_get_bool",
    "json_get_float",
    "json_get_json",
    "json_get_array",
    "json_as_text",
    "json_contains",
    "json_length",
    "sigma_cidr_match",
    "abs",
];

/// Which kind of event a conjunction selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cloudtrail,
    Session,
}

impl Kind {
    fn words(self) -> &'static str {
        match self {
            Kind::Cloudtrail => "CloudTrail events",
            Kind::Session => "session events",
        }
    }
}

impl Linter {
    /// A linter for the event schema.
    pub fn new() -> Result<Self, RuleError> {
        let compiler = Compiler::new()?;
        let mut ctx = SessionContext::new();
        datafusion_functions_json::register_all(&mut ctx).map_err(|e| RuleError::Engine {
            reason: e.to_string(),
        })?;
        sigma::register(&mut ctx);
        let schema =
            DFSchema::try_from(rule_schema().as_ref().clone()).map_err(|e| RuleError::Engine {
                reason: e.to_string(),
            })?;
        Ok(Self {
            compiler,
            ctx,
            schema,
        })
    }

    /// Lints one rule file's text: our own format or Sigma (with its sibling
    /// `.tests.yaml` when `origin.path` is given).
    pub fn lint_text(&self, text: &str, origin: Origin<'_>) -> FileLint {
        let mut out = Sink {
            origin,
            text,
            rule_id: None,
            findings: Vec::new(),
        };
        if sigma::is_sigma_text(text) {
            self.lint_sigma(&mut out);
        } else {
            self.lint_own(&mut out);
        }
        FileLint {
            rule_id: out.rule_id,
            findings: out.findings,
        }
    }

    fn lint_own(&self, out: &mut Sink<'_>) {
        let mut value: Value = match serde_yaml::from_str(out.text) {
            Ok(v) => v,
            Err(e) => {
                let loc = e.location().map(|l| (l.line(), l.column()));
                out.push_at(Level::Error, loc, format!("not valid YAML: {e}"));
                return;
            }
        };
        let Some(map) = value.as_mapping() else {
            out.push(
                Level::Error,
                "a rule file holds a YAML mapping (id, title, severity, where, ...)".into(),
            );
            return;
        };
        if let Some(id) = map.get("id").and_then(Value::as_str) {
            out.rule_id = Some(id.to_string());
        }
        let unknown = strip_unknown_keys(&mut value);
        for u in &unknown {
            let hint = closest(&u.key, u.allowed)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            let message = format!(
                "unknown field `{}`{}{hint}; allowed there: {}",
                u.key,
                u.place,
                u.allowed.join(", ")
            );
            out.push_at(Level::Error, key_position(out.text, &u.key), message);
        }
        let mut missing = Vec::new();
        if let Some(map) = value.as_mapping_mut() {
            for key in REQUIRED {
                if !map.contains_key(key) {
                    missing.push(key);
                    // A placeholder, so that the rest can still be checked.
                    let stand_in = match key {
                        "id" => out.origin.stem.to_string(),
                        "severity" => "low".to_string(),
                        "where" => "true".to_string(),
                        _ => "-".to_string(),
                    };
                    map.insert(Value::from(key), Value::from(stand_in));
                }
            }
        }
        for key in &missing {
            out.push(Level::Error, format!("missing field `{key}`"));
        }
        let spec = match serde_yaml::from_value::<RuleSpec>(value.clone()) {
            Ok(spec) => spec,
            Err(e) => {
                // Located when the text itself shows the same error.
                let located = if unknown.is_empty() && missing.is_empty() {
                    serde_yaml::from_str::<RuleSpec>(out.text)
                        .err()
                        .and_then(|e| e.location().map(|l| (l.line(), l.column())))
                } else {
                    None
                };
                out.push_at(Level::Error, located, format!("not a valid rule: {e}"));
                // The condition can still be looked at.
                if let Some(sql) = value.get("where").and_then(Value::as_str) {
                    let line = key_position(out.text, "where");
                    for (level, message) in self.analyse_where(sql) {
                        out.push_at(level, line, message);
                    }
                }
                return;
            }
        };
        self.lint_spec(out, spec, &missing, true);
    }

    fn lint_sigma(&self, out: &mut Sink<'_>) {
        let path = out
            .origin
            .path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(out.origin.label));
        out.rule_id = Some(sigma::rule_id(&path));
        if let Err(e) = serde_yaml::from_str::<sigma::SigmaRule>(out.text) {
            let loc = e.location().map(|l| (l.line(), l.column()));
            out.push_at(Level::Error, loc, format!("not a valid Sigma rule: {e}"));
            return;
        }
        let mut spec = match sigma::convert(out.text, &path, &sigma::SigmaConfig::default()) {
            Ok(spec) => spec,
            Err(e) => {
                out.push(Level::Error, reason_of(&e));
                return;
            }
        };
        if out.origin.path.is_some() {
            match crate::sigma_sibling_tests(&path) {
                Ok(tests) => spec.tests = tests,
                Err(e) => {
                    let file = crate::sigma_tests_path(&path)
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| out.origin.label.to_string());
                    out.findings.push(Finding {
                        level: Level::Error,
                        file,
                        line: None,
                        column: None,
                        rule_id: out.rule_id.clone(),
                        message: reason_of(&e),
                    });
                }
            }
        }
        self.lint_spec(out, spec, &[], false);
    }

    /// Checks a rule that deserialised: naming, completeness, compilation and
    /// whether it can ever match. `stand_ins` are required keys that were
    /// missing and filled with placeholders (already reported).
    fn lint_spec(&self, out: &mut Sink<'_>, spec: RuleSpec, stand_ins: &[&str], own: bool) {
        out.rule_id = Some(spec.id.clone());
        // A Sigma rule's id is made from its file name.
        if own && !stand_ins.contains(&"id") && spec.id != out.origin.stem {
            let message = format!(
                "id `{}` is not the file name `{}`: by convention they are the same",
                spec.id, out.origin.stem
            );
            out.push_at(Level::Warning, key_position(out.text, "id"), message);
        }
        let sigma_hint = if own {
            ""
        } else {
            " (tests of a Sigma rule go in a sibling <stem>.tests.yaml)"
        };
        for (missing, what) in [
            (spec.description.trim().is_empty(), "description"),
            (spec.tags.is_empty(), "tags"),
            (spec.tests.is_empty(), "tests"),
            (own && spec.respond.is_empty(), "`respond`"),
        ] {
            if missing {
                let hint = if what == "tests" { sigma_hint } else { "" };
                out.push(Level::Warning, format!("has no {what}{hint}"));
            }
        }
        for (i, t) in spec.tests.iter().enumerate() {
            let shape_ok = match (&t.event, t.matches_event, t.matches, t.alerts) {
                (Some(_), Some(_), None, None) => t.events.is_empty(),
                (None, None, Some(_), None) | (None, None, None, Some(_)) => !t.events.is_empty(),
                _ => false,
            };
            if !shape_ok {
                out.push(
                    Level::Error,
                    format!(
                        "test {} ({:?}) needs `event` + `match`, `events` + `matches` or `events` + `alerts`",
                        i + 1,
                        t.name
                    ),
                );
            }
        }

        let sql = spec.predicate.clone();
        let steps: Vec<(String, String)> = spec
            .sequence
            .as_ref()
            .map(|s| {
                s.steps
                    .iter()
                    .filter_map(|st| Some((st.name.clone(), st.predicate.clone()?)))
                    .collect()
            })
            .unwrap_or_default();
        let compiled = self.compiler.compile(spec, out.origin.path);
        if let Err(e) = &compiled {
            let line = match e {
                RuleError::Compile { .. } => key_position(out.text, "where"),
                _ => None,
            };
            out.push_at(Level::Error, line, reason_of(e));
        }
        if stand_ins.contains(&"where") {
            return;
        }
        let line = key_position(out.text, "where");
        let problems = self.analyse_where(&sql);
        let where_never = problems.iter().any(|(l, _)| *l == Level::Error);
        for (level, message) in problems {
            out.push_at(level, line, message);
        }
        for (name, step) in steps {
            let place = key_position(out.text, "steps");
            let prefix = format!("sequence step {name:?}");
            // Errors of the step together with the rule's `where` (unless
            // the `where` alone never matches, reported above).
            if !where_never {
                for (level, message) in self.analyse_where(&format!("({sql}) AND ({step})")) {
                    if level == Level::Error {
                        out.push_at(
                            level,
                            place,
                            format!("{prefix} with the rule's `where`: {message}"),
                        );
                    }
                }
            }
            for (level, message) in self.analyse_where(&step) {
                if level == Level::Warning {
                    out.push_at(level, place, format!("{prefix}: {message}"));
                }
            }
        }
    }

    /// Looks at one `where` for reasons it can never match (errors) and
    /// event names written in the wrong case (warnings). A `where` that does
    /// not parse gives nothing here: compiling reports it.
    pub fn analyse_where(&self, sql: &str) -> Vec<(Level, String)> {
        let mut found = Vec::new();
        let Ok(expr) = self.ctx.parse_sql_expr(sql, &self.schema) else {
            return found;
        };
        // 1. What DataFusion's simplifier makes of it.
        let simplifier = ExprSimplifier::new(
            SimplifyContext::builder()
                .with_schema(Arc::new(self.schema.clone()))
                .build(),
        );
        if let Ok(Expr::Literal(v, _)) = simplifier
            .coerce(expr.clone(), &self.schema)
            .and_then(|e| simplifier.simplify(e))
        {
            let never = match &v {
                ScalarValue::Boolean(Some(b)) => !b,
                other => other.is_null(),
            };
            if never {
                let shown = if v.is_null() {
                    "NULL".into()
                } else {
                    v.to_string().to_uppercase()
                };
                found.push((
                    Level::Error,
                    format!("can never match: DataFusion's simplifier reduces `where` to the constant {shown}"),
                ));
                return found;
            }
        }
        // 2. The conjunction: literals each column must equal, and the kind
        //    of event that selects.
        found.extend(conjunction_problems(&expr));
        // 3. Event names in the wrong case.
        for name in lower_case_event_names(&expr) {
            found.push((
                Level::Warning,
                format!(
                    "event_name is compared to '{name}', which starts lower-case: CloudTrail event names are PascalCase (StopLogging); only session events (session.command, ...) are lower-case"
                ),
            ));
        }
        found
    }
}

/// Where findings of one file go.
struct Sink<'a> {
    origin: Origin<'a>,
    text: &'a str,
    rule_id: Option<String>,
    findings: Vec<Finding>,
}

impl Sink<'_> {
    fn push(&mut self, level: Level, message: String) {
        self.push_at(level, None, message);
    }

    fn push_at(&mut self, level: Level, at: Option<(usize, usize)>, message: String) {
        let (line, column) = at.unzip();
        self.findings.push(Finding {
            level,
            file: self.origin.label.to_string(),
            line,
            column,
            rule_id: self.rule_id.clone(),
            // One finding, one line.
            message: message.split_whitespace().collect::<Vec<_>>().join(" "),
        });
    }
}

/// The reason of a rule error, without the rule and file (the finding has them).
fn reason_of(e: &RuleError) -> String {
    match e {
        RuleError::Compile { reason, .. } => format!("does not compile: {reason}"),
        RuleError::Invalid { reason, .. } => format!("invalid: {reason}"),
        RuleError::Yaml { file, reason } => format!("{file}: {reason}"),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------- keys

/// The field names a derived `Deserialize` struct accepts, as serde itself
/// knows them (renames included), so the lists never drift from the types.
pub fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldCapture(&mut fields));
    fields
}

struct FieldCapture<'a>(&'a mut &'static [&'static str]);

impl<'de> serde::Deserializer<'de> for FieldCapture<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("only structs"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom("fields captured"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// A key that the rule format does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unknown {
    key: String,
    /// ` in dedup`, ` in test 2`, ... (empty at the top level).
    place: String,
    allowed: &'static [&'static str],
}

/// Removes, and returns, every key that is not allowed where it stands.
fn strip_unknown_keys(value: &mut Value) -> Vec<Unknown> {
    let mut out = Vec::new();
    strip(value, fields_of::<RuleSpec>(), "", &mut out);
    let Some(map) = value.as_mapping_mut() else {
        return out;
    };
    if let Some(v) = map.get_mut("dedup") {
        strip(v, fields_of::<DedupSpec>(), " in `dedup`", &mut out);
    }
    if let Some(v) = map.get_mut("window") {
        strip(v, fields_of::<WindowSpec>(), " in `window`", &mut out);
    }
    if let Some(v) = map.get_mut("suppress") {
        strip(v, fields_of::<SuppressSpec>(), " in `suppress`", &mut out);
    }
    if let Some(v) = map.get_mut("baseline") {
        strip(v, fields_of::<BaselineSpec>(), " in `baseline`", &mut out);
    }
    if let Some(v) = map.get_mut("sequence") {
        strip(v, fields_of::<SequenceSpec>(), " in `sequence`", &mut out);
        if let Some(Value::Sequence(steps)) = v.get_mut("steps") {
            for (i, s) in steps.iter_mut().enumerate() {
                let place = format!(" in sequence step {}", i + 1);
                strip(s, fields_of::<StepSpec>(), &place, &mut out);
            }
        }
    }
    if let Some(Value::Sequence(tests)) = map.get_mut("tests") {
        for (i, t) in tests.iter_mut().enumerate() {
            let place = format!(" in test {}", i + 1);
            strip(t, fields_of::<RuleTestSpec>(), &place, &mut out);
            if let Some(e) = t.get_mut("event") {
                let place = format!(" in the event of test {}", i + 1);
                strip(e, fields_of::<Event>(), &place, &mut out);
            }
            if let Some(Value::Sequence(events)) = t.get_mut("events") {
                for (j, e) in events.iter_mut().enumerate() {
                    let place = format!(" in event {} of test {}", j + 1, i + 1);
                    strip(e, fields_of::<Event>(), &place, &mut out);
                }
            }
        }
    }
    out
}

fn strip(value: &mut Value, allowed: &'static [&'static str], place: &str, out: &mut Vec<Unknown>) {
    let Some(map) = value.as_mapping_mut() else {
        return;
    };
    let unknown: Vec<Value> = map
        .keys()
        .filter(|k| !k.as_str().is_some_and(|k| allowed.contains(&k)))
        .cloned()
        .collect();
    for k in unknown {
        map.remove(&k);
        let key = match &k {
            Value::String(s) => s.clone(),
            other => serde_yaml::to_string(other)
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        };
        out.push(Unknown {
            key,
            place: place.to_string(),
            allowed,
        });
    }
}

/// The allowed name closest to a misspelt one, when it is close enough.
fn closest(key: &str, allowed: &[&'static str]) -> Option<&'static str> {
    allowed
        .iter()
        .map(|a| (edit_distance(key, a), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Levenshtein distance, one row of the table at a time: `prev[j]` is the
/// distance from the previous prefix of `a` to the first `j` characters of `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut distance = b.len();
    for (i, ca) in a.chars().enumerate() {
        let mut left = i + 1;
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(left);
        for ((cb, diagonal), up) in b.iter().zip(&prev).zip(prev.iter().skip(1)) {
            let cost = usize::from(ca != *cb);
            left = (diagonal + cost).min(up + 1).min(left + 1);
            cur.push(left);
        }
        distance = left;
        prev = cur;
    }
    distance
}

/// Line and column (1-based) of the first `key:` in a YAML text, block or
/// flow style; `None` when it is not found.
fn key_position(text: &str, key: &str) -> Option<(usize, usize)> {
    for (n, line) in text.lines().enumerate() {
        let mut from = 0;
        while let Some(at) = line.get(from..).and_then(|rest| rest.find(key)) {
            let start = from + at;
            let end = start + key.len();
            let before = line[..start].chars().next_back();
            let starts_token =
                before.is_none_or(|c| matches!(c, ' ' | '\t' | '{' | ',' | '-' | '"' | '\''));
            let after = line[end..].trim_start_matches(['"', '\'']);
            if starts_token && after.starts_with(':') && !line[..start].contains('#') {
                return Some((n + 1, start + 1));
            }
            from = end;
        }
    }
    None
}

// ---------------------------------------------------------------- `where`

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(c) => column_name(&c.expr),
        Expr::TryCast(c) => column_name(&c.expr),
        Expr::Alias(a) => column_name(&a.expr),
        _ => None,
    }
}

fn str_literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::Literal(v, _) => v.try_as_str().flatten(),
        Expr::Cast(c) => str_literal(&c.expr),
        Expr::TryCast(c) => str_literal(&c.expr),
        _ => None,
    }
}

/// `col = 'a'`, `col IN ('a', 'b')`, or an OR of such on one column: the
/// column and the values it must take for the condition to hold.
fn allowed_values(e: &Expr) -> Option<(String, BTreeSet<String>)> {
    match e {
        Expr::BinaryExpr(b) if b.op == Operator::Eq => {
            let (col, lit) = match (column_name(&b.left), str_literal(&b.right)) {
                (Some(c), Some(l)) => (c, l),
                _ => (column_name(&b.right)?, str_literal(&b.left)?),
            };
            Some((col.to_string(), BTreeSet::from([lit.to_string()])))
        }
        Expr::InList(l) if !l.negated => {
            let col = column_name(&l.expr)?;
            let values = l
                .list
                .iter()
                .map(|v| str_literal(v).map(str::to_string))
                .collect::<Option<BTreeSet<_>>>()?;
            Some((col.to_string(), values))
        }
        Expr::BinaryExpr(b) if b.op == Operator::Or => {
            let (lc, mut lv) = allowed_values(&b.left)?;
            let (rc, rv) = allowed_values(&b.right)?;
            (lc == rc).then(|| {
                lv.extend(rv);
                (lc, lv)
            })
        }
        _ => None,
    }
}

fn show_values(values: &BTreeSet<String>) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    match quoted.as_slice() {
        [one] => one.clone(),
        many => format!("one of {}", many.join(", ")),
    }
}

/// Columns that, when NULL, make `e` NULL.
fn null_propagating(e: &Expr) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    match e {
        Expr::Column(c) => {
            out.insert(c.name.clone());
        }
        Expr::Alias(a) => out = null_propagating(&a.expr),
        Expr::Cast(c) => out = null_propagating(&c.expr),
        Expr::TryCast(c) => out = null_propagating(&c.expr),
        Expr::Not(x) | Expr::Negative(x) => out = null_propagating(x),
        Expr::BinaryExpr(b) => {
            let l = null_propagating(&b.left);
            let r = null_propagating(&b.right);
            match b.op {
                // NULL AND FALSE is FALSE, NULL OR TRUE is TRUE.
                Operator::And | Operator::Or => out = &l & &r,
                Operator::IsDistinctFrom | Operator::IsNotDistinctFrom => {}
                _ => out = &l | &r,
            }
        }
        Expr::Like(l) | Expr::SimilarTo(l) => {
            out = &null_propagating(&l.expr) | &null_propagating(&l.pattern);
        }
        Expr::InList(l) => out = null_propagating(&l.expr),
        Expr::Between(b) => out = null_propagating(&b.expr),
        Expr::ScalarFunction(f) if NULL_STRICT_FUNCTIONS.contains(&f.name()) => {
            for a in &f.args {
                out.extend(null_propagating(a));
            }
        }
        _ => {}
    }
    out
}

/// Columns that, when NULL, keep `e` from being TRUE.
fn null_rejecting(e: &Expr) -> BTreeSet<String> {
    let mut out = null_propagating(e);
    match e {
        Expr::IsNotNull(x) | Expr::IsTrue(x) => out.extend(null_rejecting(x)),
        Expr::BinaryExpr(b) if b.op == Operator::And => {
            out.extend(null_rejecting(&b.left));
            out.extend(null_rejecting(&b.right));
        }
        Expr::BinaryExpr(b) if b.op == Operator::Or => {
            out.extend(&null_rejecting(&b.left) & &null_rejecting(&b.right));
        }
        _ => {}
    }
    out
}

/// The kind of event a column's allowed values select, and in what words.
fn implied_kind(column: &str, values: &BTreeSet<String>) -> Option<(Kind, String)> {
    let all = |f: &dyn Fn(&str) -> bool| values.iter().all(|v| f(v));
    let kind = match column {
        "source" if all(&|v| v == "session") => Kind::Session,
        "source" if all(&|v| v == "cloudtrail") => Kind::Cloudtrail,
        "event_name" if all(&|v| is_gateway_event_name(v)) => Kind::Session,
        "event_name" if all(&|v| !is_gateway_event_name(v)) => Kind::Cloudtrail,
        "event_category" if all(&|v| v == "Session" || v == "Grant") => Kind::Session,
        "event_category" if all(&|v| v != "Session" && v != "Grant") => Kind::Cloudtrail,
        "event_source" if all(&|v| v.ends_with(".amazonaws.com")) => Kind::Cloudtrail,
        "principal_type" if all(&|v| v == "GatewayUser") => Kind::Session,
        _ => return None,
    };
    Some((kind, format!("{column} = {}", show_values(values))))
}

/// Contradictions within the top-level conjunction of `expr`.
fn conjunction_problems(expr: &Expr) -> Vec<(Level, String)> {
    let mut found = Vec::new();
    let conjuncts = split_conjunction(expr);
    let mut must: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in &conjuncts {
        let Some((col, values)) = allowed_values(c) else {
            continue;
        };
        if col == "source" && !values.iter().any(|v| v == "cloudtrail" || v == "session") {
            found.push((
                Level::Error,
                format!(
                    "can never match: source is only 'cloudtrail' or 'session', never {}",
                    show_values(&values)
                ),
            ));
        }
        match must.get_mut(&col) {
            Some(prev) => {
                let both: BTreeSet<String> = &*prev & &values;
                if both.is_empty() {
                    found.push((
                        Level::Error,
                        format!(
                            "can never match: {col} must be {} and also {} in one conjunction",
                            show_values(prev),
                            show_values(&values)
                        ),
                    ));
                }
                *prev = both;
            }
            None => {
                must.insert(col, values);
            }
        }
    }
    if !found.is_empty() {
        return found;
    }
    let kinds: Vec<(Kind, String)> = must
        .iter()
        .filter_map(|(c, v)| implied_kind(c, v))
        .collect();
    let Some((kind, why)) = kinds.first().cloned() else {
        return found;
    };
    if let Some((other, why_other)) = kinds.iter().find(|(k, _)| *k != kind) {
        found.push((
            Level::Error,
            format!(
                "can never match: {why} selects {} but {why_other} selects {}",
                kind.words(),
                other.words()
            ),
        ));
        return found;
    }
    let needed: BTreeSet<String> = conjuncts.iter().flat_map(|c| null_rejecting(c)).collect();
    let foreign: &[&str] = match kind {
        Kind::Session => &CLOUDTRAIL_ONLY,
        Kind::Cloudtrail => &SESSION_ONLY,
    };
    let bad: Vec<&str> = foreign
        .iter()
        .copied()
        .filter(|c| needed.contains(*c))
        .collect();
    if !bad.is_empty() {
        let other = match kind {
            Kind::Session => Kind::Cloudtrail,
            Kind::Cloudtrail => Kind::Session,
        };
        found.push((
            Level::Error,
            format!(
                "can never match: {why} selects {}, but the conditions on {} need columns only {} have",
                kind.words(),
                bad.join(", "),
                other.words()
            ),
        ));
    }
    found
}

/// Whether an event name is one of the gateway stream's: `session.*`, or
/// `grant.*` (grant events, `trailhound_core::grant`).
fn is_gateway_event_name(name: &str) -> bool {
    name.starts_with("session.") || name.starts_with("grant.")
}

/// Literals `event_name` is compared to (`=`, `<>`, `IN`, `LIKE`) that start
/// lower-case and are not session or grant event names.
fn lower_case_event_names(expr: &Expr) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut note = |col: &Expr, lit: &Expr| {
        if column_name(col) == Some("event_name")
            && let Some(l) = str_literal(lit)
            && l.starts_with(|c: char| c.is_ascii_lowercase())
            && !is_gateway_event_name(l)
        {
            names.insert(l.to_string());
        }
    };
    let _ = expr.apply(|e| {
        match e {
            Expr::BinaryExpr(b) if matches!(b.op, Operator::Eq | Operator::NotEq) => {
                note(&b.left, &b.right);
                note(&b.right, &b.left);
            }
            Expr::InList(l) => {
                for v in &l.list {
                    note(&l.expr, v);
                }
            }
            Expr::Like(l) if !l.case_insensitive => note(&l.expr, &l.pattern),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linter() -> Linter {
        Linter::new().unwrap()
    }

    fn lint_one(text: &str, stem: &str) -> Vec<Finding> {
        linter()
            .lint_text(
                text,
                Origin {
                    label: "r.yaml",
                    path: None,
                    stem,
                },
            )
            .findings
    }

    fn rule(predicate: &str) -> String {
        format!(
            "id: r\ntitle: T\ndescription: d\nseverity: low\ntags: [x]\nrespond: [notify]\nwhere: \"{predicate}\"\ntests:\n  - {{name: t, event: {{event_name: A}}, match: false}}\n"
        )
    }

    fn errors(f: &[Finding]) -> Vec<&str> {
        f.iter()
            .filter(|f| f.level == Level::Error)
            .map(|f| f.message.as_str())
            .collect()
    }

    fn warnings(f: &[Finding]) -> Vec<&str> {
        f.iter()
            .filter(|f| f.level == Level::Warning)
            .map(|f| f.message.as_str())
            .collect()
    }

    #[test]
    fn a_clean_rule_has_no_findings() {
        let f = lint_one(
            &rule("event_name = 'StopLogging' AND error_code IS NULL"),
            "r",
        );
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn yaml_errors_have_line_and_column() {
        let f = lint_one("id: r\ntitle: [unclosed\nseverity: low\n", "r");
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].level, Level::Error);
        assert!(f[0].line.is_some() && f[0].column.is_some(), "{f:?}");
    }

    #[test]
    fn every_unknown_field_is_named_with_the_allowed_ones() {
        let text = rule("event_name = 'StopLogging'")
            .replace("where:", "wehre:")
            .replace("tags:", "tgas:")
            + "dedup: {key: [principal], perod: 1h}\n";
        let f = lint_one(&text, "r");
        let e = errors(&f);
        assert!(
            e.iter().any(
                |m| m.contains("unknown field `wehre` (did you mean `where`?)")
                    && m.contains("allowed there: id, title")
            ),
            "{e:?}"
        );
        assert!(e.iter().any(|m| m.contains("`tgas`")), "{e:?}");
        assert!(
            e.iter().any(
                |m| m.contains("`perod` in `dedup` (did you mean `period`?)")
                    && m.contains("key, period")
            ),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.contains("missing field `where`")),
            "{e:?}"
        );
        let wehre = f.iter().find(|f| f.message.contains("wehre")).unwrap();
        assert_eq!(wehre.line, Some(7));
        assert!(
            warnings(&f).iter().any(|m| m.contains("has no tags")),
            "{f:?}"
        );
    }

    #[test]
    fn unknown_keys_in_a_baseline_are_named() {
        let text = rule("event_name = 'A'")
            + "baseline:\n  kind: rate\n  measure: count\n  min_valeu: 200\n";
        let e = lint_one(&text, "r");
        assert!(
            errors(&e)
                .iter()
                .any(|m| m.contains("`min_valeu` in `baseline` (did you mean `min_value`?)")),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_keys_in_test_events_are_found() {
        let text = rule("event_name = 'A'").replace("{event_name: A}", "{evnt_name: A}");
        let e = lint_one(&text, "r");
        assert!(
            errors(&e)
                .iter()
                .any(|m| m
                    .contains("`evnt_name` in the event of test 1 (did you mean `event_name`?)")),
            "{e:?}"
        );
    }

    #[test]
    fn compile_errors_and_bad_severity_are_errors() {
        let f = lint_one(&rule("evnt_name = 'A'"), "r");
        assert!(
            errors(&f)
                .iter()
                .any(|m| m.starts_with("does not compile") && m.contains("evnt_name")),
            "{f:?}"
        );
        assert_eq!(f[0].line, Some(7));
        let f = lint_one(
            &rule("event_name = 'A'").replace("severity: low", "severity: dire"),
            "r",
        );
        assert!(
            errors(&f).iter().any(|m| m.contains("not a valid rule")),
            "{f:?}"
        );
    }

    #[test]
    fn naming_and_missing_parts_are_warnings() {
        let f = lint_one(
            "id: r\ntitle: T\nseverity: low\nwhere: \"event_name = 'A'\"\n",
            "other-name",
        );
        assert!(errors(&f).is_empty(), "{f:?}");
        let w = warnings(&f);
        assert!(
            w.iter()
                .any(|m| m.contains("not the file name `other-name`")),
            "{w:?}"
        );
        for what in ["description", "tags", "tests", "`respond`"] {
            assert!(
                w.iter().any(|m| m == &format!("has no {what}")),
                "{what}: {w:?}"
            );
        }
    }

    #[test]
    fn constant_false_or_null_where_never_matches() {
        for p in ["1 = 2", "event_name = 'A' AND false", "event_name = NULL"] {
            let f = lint_one(&rule(p), "r");
            assert!(
                errors(&f)
                    .iter()
                    .any(|m| m.contains("simplifier reduces `where` to the constant")),
                "{p}: {f:?}"
            );
        }
    }

    #[test]
    fn one_column_equal_to_two_literals_never_matches() {
        let f = lint_one(
            &rule(
                "event_name = 'StopLogging' AND error_code IS NULL AND event_name = 'DeleteTrail'",
            ),
            "r",
        );
        assert!(
            errors(&f)
                .iter()
                .any(|m| m.contains("event_name must be 'StopLogging' and also 'DeleteTrail'")),
            "{f:?}"
        );
        let f = lint_one(
            &rule("event_name IN ('A', 'B') AND (event_name = 'C' OR event_name = 'D')"),
            "r",
        );
        assert_eq!(errors(&f).len(), 1, "{f:?}");
        // Overlapping sets and disjunctions are fine.
        let f = lint_one(&rule("event_name IN ('A', 'B') AND event_name = 'B'"), "r");
        assert!(errors(&f).is_empty(), "{f:?}");
        let f = lint_one(&rule("event_name = 'A' OR event_name = 'B'"), "r");
        assert!(errors(&f).is_empty(), "{f:?}");
    }

    #[test]
    fn lower_case_event_names_are_warned() {
        let f = lint_one(&rule("event_name = 'stoplogging'"), "r");
        assert!(
            warnings(&f)
                .iter()
                .any(|m| m.contains("'stoplogging', which starts lower-case")),
            "{f:?}"
        );
        let f = lint_one(
            &rule("event_name IN ('session.command', 'StopLogging')"),
            "r",
        );
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn session_events_with_cloudtrail_columns_never_match() {
        let f = lint_one(&rule("source = 'session' AND region = 'us-east-1'"), "r");
        assert!(
            errors(&f)
                .iter()
                .any(|m| m.contains("source = 'session' selects session events")
                    && m.contains("region")),
            "{f:?}"
        );
        let f = lint_one(
            &rule("event_name = 'StopLogging' AND regexp_like(command, 'x')"),
            "r",
        );
        assert!(errors(&f).iter().any(|m| m.contains("command")), "{f:?}");
        let f = lint_one(
            &rule("source = 'session' AND event_source = 'iam.amazonaws.com'"),
            "r",
        );
        assert!(
            errors(&f)
                .iter()
                .any(|m| m.contains("selects CloudTrail events")),
            "{f:?}"
        );
        let f = lint_one(&rule("source = 'Session'"), "r");
        assert!(
            errors(&f)
                .iter()
                .any(|m| m.contains("only 'cloudtrail' or 'session'")),
            "{f:?}"
        );
        // Conditions that hold on an empty column are fine.
        let f = lint_one(
            &rule(
                "source = 'session' AND region IS NULL AND COALESCE(bucket, '') = '' AND (command = 'x' OR region = 'y')",
            ),
            "r",
        );
        assert!(errors(&f).is_empty(), "{f:?}");
    }

    #[test]
    fn sequence_steps_are_checked_with_the_rule_where() {
        let text = rule("event_source = 'iam.amazonaws.com'")
            + "sequence:\n  by: [principal]\n  within: 10m\n  steps:\n    - {name: a, where: \"event_name = 'CreateUser'\"}\n    - {name: b, where: \"command = 'x'\"}\n";
        let f = lint_one(&text, "r");
        let e = errors(&f);
        assert_eq!(e.len(), 1, "{f:?}");
        assert!(e[0].contains("sequence step \"b\""), "{e:?}");
    }

    #[test]
    fn duplicates_across_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let text = rule("event_name = 'A'");
        std::fs::write(dir.path().join("r.yaml"), &text).unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("r.yaml"), &text).unwrap();
        let report = lint(&LoadOptions {
            no_builtin: true,
            paths: vec![dir.path().to_path_buf()],
            ..LoadOptions::default()
        })
        .unwrap();
        assert_eq!(report.files, 2);
        assert_eq!(report.errors(), 1, "{:?}", report.findings);
        assert!(report.findings[0].message.contains("duplicate id: r"));
        assert_eq!(report.findings[0].line, Some(1));
    }

    #[test]
    fn the_builtin_pack_has_no_errors() {
        let report = lint(&LoadOptions::default()).unwrap();
        let errors: Vec<String> = report
            .findings
            .iter()
            .filter(|f| f.level == Level::Error)
            .map(Finding::to_string)
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        assert!(report.files >= 70);
    }

    #[test]
    fn field_lists_come_from_the_types() {
        assert!(fields_of::<RuleSpec>().contains(&"where"));
        assert_eq!(fields_of::<DedupSpec>(), ["key", "period"]);
        assert!(fields_of::<Event>().contains(&"event_name"));
        for key in REQUIRED {
            assert!(fields_of::<RuleSpec>().contains(&key));
        }
    }

    #[test]
    fn key_positions_find_block_and_flow_keys() {
        let t = "id: a\n# where: no\nwhere: x\ntests:\n  - {name: n, evnt: 1}\n";
        assert_eq!(key_position(t, "where"), Some((3, 1)));
        assert_eq!(key_position(t, "evnt"), Some((5, 15)));
        assert_eq!(key_position(t, "nope"), None);
        assert_eq!(closest("wehre", fields_of::<RuleSpec>()), Some("where"));
        assert_eq!(closest("zzzzzz", fields_of::<RuleSpec>()), None);
    }
}
