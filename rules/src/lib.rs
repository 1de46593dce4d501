//! # trailhound-rules
//!
//! The rule language and its compiler. A rule is a YAML file ([`rule::RuleSpec`])
//! whose `where` is a SQL boolean expression over the event model; the built-in
//! pack lives in `rules/pack/` and is embedded in the binary.
//!
//! The one design decision to know: each rule is compiled **once**, through
//! DataFusion's SQL parser, type coercion and physical planner
//! ([`compile::Compiler`]), into a `PhysicalExpr` that is then evaluated on
//! every Arrow batch ([`compile::CompiledRule::evaluate`]). Nothing is planned
//! per batch. A rule that does not compile is refused at load time with its
//! id, file and DataFusion's reason; a run never starts with a rule missing.

// Code that reads input never panics on it (tests may).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod baseline;
pub mod compile;
pub mod correlate;
pub mod dict_eq;
pub mod error;
pub mod inlist;
pub mod lint;
pub mod pack;
pub mod prefilter;
pub mod regex;
pub mod rule;
pub mod sequence;
pub mod sigma;
pub mod starts_with;
pub mod suppress;
pub mod template;
pub mod testing;
pub mod window;

mod udf;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use compile::{CompiledRule, Compiler};
pub use error::RuleError;
pub use rule::{RuleSpec, RuleTestSpec};
pub use suppress::Suppress;

/// Which rules to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Leave out the built-in pack (`--rules DIR --no-builtin`).
    pub no_builtin: bool,
    /// Folders (searched recursively for `*.yaml`/`*.yml`) and files of user rules.
    /// A user rule with the id of a built-in one replaces it.
    pub paths: Vec<PathBuf>,
    /// How long one rule may take to compile ([`DEFAULT_COMPILE_LIMIT`]).
    pub compile_limit: std::time::Duration,
    /// Whether the built-in rules come with their tests (default). Off,
    /// the pack's YAML is read without them ([`pack::WITHOUT_TESTS`]), in a
    /// fifth of the time: for running rules, not testing them. User rules
    /// are read as written either way.
    pub tests: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            no_builtin: false,
            paths: Vec::new(),
            compile_limit: DEFAULT_COMPILE_LIMIT,
            tests: true,
        }
    }
}

/// Every error found while loading, so that a user fixes them all at once.
#[derive(Debug, thiserror::Error)]
#[error("{} rule error(s):\n{}", .errors.len(), .errors.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
pub struct LoadError {
    /// The individual errors.
    pub errors: Vec<RuleError>,
}

/// The compiled rules a detector runs.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
}

impl RuleSet {
    /// A set of rules already compiled (tests, one rule run on its own).
    pub fn from_rules(rules: Vec<CompiledRule>) -> Self {
        Self { rules }
    }

    /// The built-in pack only.
    pub fn builtin() -> Result<Self, LoadError> {
        Self::load(&LoadOptions::default())
    }

    /// Loads and compiles rules as the options say. Disabled rules are left out.
    pub fn load(options: &LoadOptions) -> Result<Self, LoadError> {
        let compiler = Compiler::new().map_err(|e| LoadError { errors: vec![e] })?;
        let mut errors = Vec::new();
        let mut specs: Vec<(RuleSpec, Option<PathBuf>)> = Vec::new();
        if !options.no_builtin {
            let pack = if options.tests {
                pack::FILES
            } else {
                pack::WITHOUT_TESTS
            };
            for (name, text) in pack {
                match serde_yaml::from_str::<RuleSpec>(text) {
                    Ok(spec) => specs.push((spec, None)),
                    Err(e) => errors.push(RuleError::Yaml {
                        file: format!("built-in {name}"),
                        reason: e.to_string(),
                    }),
                }
            }
        }
        let builtin_count = specs.len();
        let mut files = Vec::new();
        for p in &options.paths {
            if let Err(e) = collect_rule_files(p, &mut files) {
                errors.push(RuleError::Io {
                    file: p.clone(),
                    source: e,
                });
            }
        }
        for file in files {
            match read_rule_file(&file) {
                // A top-level `detection` key makes it a Sigma rule.
                Ok(text) if sigma::is_sigma_text(&text) => {
                    let converted = sigma::convert(&text, &file, &sigma::SigmaConfig::default())
                        .and_then(|mut spec| {
                            spec.tests = sigma_sibling_tests(&file)?;
                            Ok(spec)
                        });
                    match converted {
                        Ok(spec) => specs.push((spec, Some(file))),
                        Err(e) => errors.push(e),
                    }
                }
                Ok(text) => match serde_yaml::from_str::<RuleSpec>(&text) {
                    Ok(spec) => specs.push((spec, Some(file))),
                    Err(e) => errors.push(RuleError::Yaml {
                        file: file.display().to_string(),
                        reason: e.to_string(),
                    }),
                },
                Err(e) => errors.push(e),
            }
        }

        // User rules replace built-in rules of the same id; duplicates among
        // user rules (or among built-ins) are errors.
        let mut by_id: HashMap<String, usize> = HashMap::new();
        let mut chosen: Vec<Option<(RuleSpec, Option<PathBuf>)>> = Vec::new();
        for (i, (spec, file)) in specs.into_iter().enumerate() {
            let place = |f: &Option<PathBuf>| {
                f.as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "built-in pack".into())
            };
            if let Some(&prev) = by_id.get(&spec.id) {
                let prev_is_builtin = prev < builtin_count;
                if prev_is_builtin && i >= builtin_count {
                    tracing::info!(id = %spec.id, "User rule replaces the built-in rule of the same id.");
                    if let Some(slot) = chosen.get_mut(prev) {
                        *slot = None;
                    }
                } else {
                    let first = chosen
                        .get(prev)
                        .and_then(Option::as_ref)
                        .map(|(_, f)| place(f))
                        .unwrap_or_default();
                    errors.push(RuleError::Duplicate {
                        id: spec.id.clone(),
                        first,
                        second: place(&file),
                    });
                    chosen.push(None);
                    continue;
                }
            }
            by_id.insert(spec.id.clone(), chosen.len());
            chosen.push(Some((spec, file)));
        }

        let work: Vec<(RuleSpec, Option<PathBuf>)> = chosen
            .into_iter()
            .flatten()
            .filter(|(spec, _)| spec.enabled)
            .collect();
        let (rules, mut compile_errors) = compile_within(compiler, work, options.compile_limit);
        errors.append(&mut compile_errors);
        if errors.is_empty() {
            Ok(Self { rules })
        } else {
            Err(LoadError { errors })
        }
    }

    /// The rules, in load order.
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Runs every inline test of every rule that is judged by row matches.
    /// Tests judged by alerts (`alerts: N`) need the detector and are left
    /// out here: `trailhound_detector::testing::all_tests` runs both kinds.
    pub fn run_tests(&self) -> Vec<testing::TestOutcome> {
        self.rules
            .iter()
            .flat_map(testing::run_rule_tests)
            .collect()
    }
}

fn collect_rule_files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_rule_files(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") && !is_tests_file(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// The `tests:` file that may sit beside a Sigma rule.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TestsFile {
    #[serde(default)]
    tests: Vec<RuleTestSpec>,
}

/// True for `*.tests.yaml` / `*.tests.yml`: inline tests of a Sigma rule,
/// never a rule of their own.
pub fn is_tests_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".tests.yaml") || n.ends_with(".tests.yml"))
}

/// The largest rule file read (1 MiB): a rule, even a Sigma rule with long
/// lists, is a few kilobytes; a bigger file is a mistake or an attack on
/// the parser and is refused with a clear error.
pub const MAX_RULE_FILE_BYTES: u64 = 1024 * 1024;

/// How long one rule may take to compile (parse, plan, type-check) before
/// the load stops with an error naming it (default of
/// [`LoadOptions::compile_limit`]).
pub const DEFAULT_COMPILE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a rule file of at most [`MAX_RULE_FILE_BYTES`].
pub(crate) fn read_rule_file(path: &Path) -> Result<String, RuleError> {
    use std::io::Read;
    let io = |source| RuleError::Io {
        file: path.to_path_buf(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_RULE_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_RULE_FILE_BYTES {
        return Err(RuleError::Yaml {
            file: path.display().to_string(),
            reason: format!("the file is over the {MAX_RULE_FILE_BYTES}-byte limit of a rule file"),
        });
    }
    Ok(text)
}

/// Compiles the rules in order on a thread of its own and waits at most
/// `limit` for each; a rule that takes longer stops the load with an error
/// naming it (its compilation is abandoned, never waited for), so a
/// pathological rule cannot hang the start of a run.
fn compile_within(
    compiler: Compiler,
    work: Vec<(RuleSpec, Option<PathBuf>)>,
    limit: std::time::Duration,
) -> (Vec<CompiledRule>, Vec<RuleError>) {
    let names: Vec<(String, Option<PathBuf>)> = work
        .iter()
        .map(|(s, f)| (s.id.clone(), f.clone()))
        .collect();
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("rule-compiler".into())
        .spawn(move || {
            for (spec, file) in work {
                if tx.send(compiler.compile(spec, file.as_deref())).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        let error = RuleError::Engine {
            reason: format!("cannot start the rule compiler thread: {e}"),
        };
        return (Vec::new(), vec![error]);
    }
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for (id, file) in names {
        match rx.recv_timeout(limit) {
            Ok(Ok(rule)) => rules.push(rule),
            Ok(Err(e)) => errors.push(e),
            Err(_) => {
                errors.push(RuleError::Compile {
                    id,
                    file,
                    reason: format!(
                        "did not compile within {} s (the limit of one rule); simplify it or split it",
                        limit.as_secs_f64()
                    ),
                });
                break;
            }
        }
    }
    (rules, errors)
}

/// The sibling tests file of a Sigma rule file, `<stem>.tests.yaml` (or
/// `.tests.yml`), when one exists.
pub fn sigma_tests_path(rule_file: &Path) -> Option<PathBuf> {
    let stem = rule_file.file_stem()?.to_str()?;
    ["yaml", "yml"]
        .iter()
        .map(|ext| rule_file.with_file_name(format!("{stem}.tests.{ext}")))
        .find(|p| p.is_file())
}

/// The inline tests of a Sigma rule, from its sibling `<stem>.tests.yaml`
/// (a `tests:` list as in our own rule files); none when there is no such file.
pub fn sigma_sibling_tests(rule_file: &Path) -> Result<Vec<RuleTestSpec>, RuleError> {
    let Some(path) = sigma_tests_path(rule_file) else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(&path).map_err(|source| RuleError::Io {
        file: path.clone(),
        source,
    })?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_yaml::from_str::<TestsFile>(&text)
        .map(|t| t.tests)
        .map_err(|e| RuleError::Yaml {
            file: path.display().to_string(),
            reason: format!("not a valid tests file: {e}"),
        })
}

/// Reads a global suppress list (`trailhound detect --suppress FILE`): YAML
/// of the same shape as a rule's `suppress:` (`principals`, `accounts`,
/// `source_networks`), optionally under a top-level `suppress:` key. The
/// error names the file and what is wrong (with line and column for YAML).
pub fn load_suppress_file(path: &Path) -> Result<Suppress, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wrapped {
        suppress: rule::SuppressSpec,
    }
    let bad = |reason: String| format!("suppress list {}: {reason}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let spec = if text.trim().is_empty() {
        rule::SuppressSpec::default()
    } else if serde_yaml::from_str::<serde_yaml::Mapping>(&text)
        .is_ok_and(|m| m.len() == 1 && m.contains_key("suppress"))
    {
        serde_yaml::from_str::<Wrapped>(&text)
            .map_err(|e| bad(e.to_string()))?
            .suppress
    } else {
        serde_yaml::from_str::<rule::SuppressSpec>(&text).map_err(|e| bad(e.to_string()))?
    };
    Suppress::from_spec(&spec).map_err(bad)
}
