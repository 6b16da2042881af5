//! Retention: which tags and revisions a `prune` removes, from command-line rules, a policy file
//! (regfsck's YAML: rules per repository glob, first match wins) or an AWS ECR lifecycle policy
//! (`rules`, with ECR's semantics). Pure: the store's facts come in as an inventory and push
//! times; the protections no rule can turn off are `protect::settle`'s.
//!
//! The age of a tag is its push time (`store::details::push_times`): config `created` is never
//! read here. When the push times look destroyed (every tag within a few seconds, as after
//! `cp -r` or a restore), age-based selection refuses unless forced.

use crate::analysis::protect::{self, Proposal, Protection};
use crate::analysis::reach::{self, Reach, RevisionClass};
use crate::model::digest::Digest;
use crate::model::inventory::{Inventory, Repo};
use crate::model::pushed::{PushTimes, Pushed};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A repository-name glob: `*` matches within one path component, `**` across components, `?`
/// one character other than `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("an empty repository glob matches nothing".into());
        }
        Ok(Glob(pattern.to_string()))
    }

    pub fn matches(&self, name: &str) -> bool {
        fn m(p: &[u8], s: &[u8]) -> bool {
            match p.first() {
                None => s.is_empty(),
                Some(b'*') if p.get(1) == Some(&b'*') => {
                    let rest = &p[2..];
                    (0..=s.len()).any(|i| m(rest, &s[i..]))
                }
                Some(b'*') => {
                    let rest = &p[1..];
                    let mut i = 0;
                    loop {
                        if m(rest, &s[i..]) {
                            return true;
                        }
                        if i == s.len() || s[i] == b'/' {
                            return false;
                        }
                        i += 1;
                    }
                }
                Some(b'?') => !s.is_empty() && s[0] != b'/' && m(&p[1..], &s[1..]),
                Some(c) => s.first() == Some(c) && m(&p[1..], &s[1..]),
            }
        }
        m(self.0.as_bytes(), name.as_bytes())
    }
}

/// A tag regex, matched against the whole tag (as if written `^(?:RE)$`).
#[derive(Clone, Debug)]
pub struct TagRegex {
    text: String,
    re: regex::Regex,
}

impl TagRegex {
    pub fn new(text: &str) -> Result<TagRegex, String> {
        let re = regex::Regex::new(&format!("^(?:{text})$"))
            .map_err(|e| format!("the regex {text:?} does not compile: {e}"))?;
        Ok(TagRegex {
            text: text.to_string(),
            re,
        })
    }

    pub fn is_match(&self, tag: &str) -> bool {
        self.re.is_match(tag)
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// regfsck's own rules (the command-line flags, or one policy of a policy file).
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Remove revisions reachable from no tag that stays.
    pub untagged: bool,
    /// Remove selected tags pushed longer ago than this (seconds).
    pub older_than: Option<i64>,
    /// Keep the newest N selected tags of each repository (by push time).
    pub keep_last: Option<usize>,
    /// Only tags matching this are selected.
    pub tags: Option<TagRegex>,
    /// Tags matching this always stay.
    pub keep_tags: Option<TagRegex>,
}

impl Rules {
    /// Whether any rule removes tags (otherwise only `untagged` can remove anything).
    pub fn selects_tags(&self) -> bool {
        self.tags.is_some() || self.older_than.is_some() || self.keep_last.is_some()
    }

    fn uses_ages(&self) -> bool {
        self.older_than.is_some() || self.keep_last.is_some()
    }
}

/// What a repository's cleanup follows.
#[derive(Clone, Debug)]
pub enum RuleSet {
    Rules(Rules),
    Ecr(EcrPolicy),
}

impl RuleSet {
    fn uses_ages(&self) -> bool {
        match self {
            RuleSet::Rules(r) => r.uses_ages(),
            RuleSet::Ecr(_) => true,
        }
    }
}

/// A policy file: the first policy whose glob matches a repository decides for it.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub policies: Vec<(Vec<Glob>, RuleSet)>,
}

impl Policy {
    pub fn for_repo(&self, name: &str) -> Option<(usize, &RuleSet)> {
        self.policies
            .iter()
            .enumerate()
            .find(|(_, (globs, _))| globs.iter().any(|g| g.matches(name)))
            .map(|(i, (_, r))| (i, r))
    }
}

// ---------------------------------------------------------------------------------------------
// Policy files.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    policies: Vec<PolicyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyEntry {
    repositories: OneOrMany,
    #[serde(default)]
    untagged: bool,
    older_than: Option<String>,
    keep_last: Option<i64>,
    tags: Option<String>,
    keep_tags: Option<String>,
    ecr: Option<EcrFile>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// AWS ECR's lifecycle policy document (only `rules`; ECR's own wrapper has nothing else).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EcrFile {
    rules: Vec<EcrRuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EcrRuleFile {
    rule_priority: i64,
    #[serde(default)]
    description: Option<String>,
    selection: EcrSelectionFile,
    action: EcrActionFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EcrSelectionFile {
    tag_status: String,
    tag_pattern_list: Option<Vec<String>>,
    tag_prefix_list: Option<Vec<String>>,
    storage_class: Option<String>,
    count_type: String,
    count_unit: Option<String>,
    count_number: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EcrActionFile {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "targetStorageClass")]
    target_storage_class: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagStatus {
    Tagged,
    Untagged,
    Any,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// Keep the newest N images matching the rule.
    ImagesMoreThan(usize),
    /// Expire images pushed more than N days ago.
    SincePushedDays(i64),
}

#[derive(Clone, Debug)]
pub struct EcrRule {
    pub priority: i64,
    pub description: Option<String>,
    pub status: TagStatus,
    /// `tagPatternList` (`*` wildcards): an image matches when each pattern matches one of its
    /// tags.
    pub patterns: Vec<String>,
    /// `tagPrefixList`: an image matches when each prefix starts one of its tags.
    pub prefixes: Vec<String>,
    pub count: Count,
}

impl EcrRule {
    pub fn label(&self) -> String {
        format!("ECR rule {}", self.priority)
    }

    /// ECR's "tagging requirements": status and tag filters (not the count).
    fn selects(&self, tags: &[String]) -> bool {
        match self.status {
            TagStatus::Untagged => tags.is_empty(),
            TagStatus::Any => true,
            TagStatus::Tagged => {
                !tags.is_empty()
                    && self
                        .patterns
                        .iter()
                        .all(|p| tags.iter().any(|t| wildcard(p, t)))
                    && self
                        .prefixes
                        .iter()
                        .all(|p| tags.iter().any(|t| t.starts_with(p.as_str())))
            }
        }
    }
}

/// ECR's tag wildcard: `*` matches any run of characters, everything else itself.
fn wildcard(p: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some(b'*') => (0..=s.len()).any(|i| m(&p[1..], &s[i..])),
            Some(c) => s.first() == Some(c) && m(&p[1..], &s[1..]),
        }
    }
    m(p.as_bytes(), s.as_bytes())
}

/// An ECR lifecycle policy, rules sorted by priority.
#[derive(Clone, Debug)]
pub struct EcrPolicy {
    pub rules: Vec<EcrRule>,
}

fn ecr_policy(f: EcrFile) -> Result<EcrPolicy, String> {
    let mut rules = Vec::new();
    let mut seen = BTreeSet::new();
    for r in f.rules {
        let at = format!("ECR rule with rulePriority {}", r.rule_priority);
        if r.rule_priority < 1 {
            return Err(format!("{at}: rulePriority must be 1 or more"));
        }
        if !seen.insert(r.rule_priority) {
            return Err(format!("{at}: rulePriority values must be unique"));
        }
        let s = r.selection;
        if r.action.kind != "expire" || r.action.target_storage_class.is_some() {
            return Err(format!(
                "{at}: action type {:?} is not supported (only \"expire\": a registry store has no archive class)",
                r.action.kind
            ));
        }
        if s.storage_class.as_deref().is_some_and(|c| c != "standard") {
            return Err(format!(
                "{at}: storageClass {:?} is not supported (a registry store has only \"standard\")",
                s.storage_class.unwrap_or_default()
            ));
        }
        let status = match s.tag_status.as_str() {
            "tagged" => TagStatus::Tagged,
            "untagged" => TagStatus::Untagged,
            "any" => TagStatus::Any,
            other => {
                return Err(format!(
                    "{at}: tagStatus {other:?} is not one of tagged, untagged, any"
                ))
            }
        };
        let patterns = s.tag_pattern_list.unwrap_or_default();
        let prefixes = s.tag_prefix_list.unwrap_or_default();
        if !patterns.is_empty() && !prefixes.is_empty() {
            return Err(format!(
                "{at}: give tagPatternList or tagPrefixList, not both"
            ));
        }
        if status == TagStatus::Tagged && patterns.is_empty() && prefixes.is_empty() {
            return Err(format!(
                "{at}: tagStatus \"tagged\" needs a tagPatternList or a tagPrefixList"
            ));
        }
        if status != TagStatus::Tagged && !(patterns.is_empty() && prefixes.is_empty()) {
            return Err(format!(
                "{at}: tagPatternList and tagPrefixList go only with tagStatus \"tagged\""
            ));
        }
        if s.count_number < 1 {
            return Err(format!(
                "{at}: countNumber must be a positive integer, not {}",
                s.count_number
            ));
        }
        let count = match s.count_type.as_str() {
            "imageCountMoreThan" => {
                if s.count_unit.is_some() {
                    return Err(format!("{at}: countUnit goes only with sinceImagePushed"));
                }
                Count::ImagesMoreThan(s.count_number as usize)
            }
            "sinceImagePushed" => {
                if s.count_unit.as_deref() != Some("days") {
                    return Err(format!(
                        "{at}: sinceImagePushed needs countUnit \"days\""
                    ));
                }
                Count::SincePushedDays(s.count_number)
            }
            "sinceImagePulled" | "sinceImageTransitioned" => {
                return Err(format!(
                    "{at}: countType {:?} is not supported: the registry's storage records no pulls or transitions, only pushes",
                    s.count_type
                ))
            }
            other => {
                return Err(format!(
                    "{at}: countType {other:?} is not one of imageCountMoreThan, sinceImagePushed"
                ))
            }
        };
        rules.push(EcrRule {
            priority: r.rule_priority,
            description: r.description,
            status,
            patterns,
            prefixes,
            count,
        });
    }
    if rules.is_empty() {
        return Err("the ECR policy has no rules".into());
    }
    rules.sort_by_key(|r| r.priority);
    if rules[..rules.len() - 1]
        .iter()
        .any(|r| r.status == TagStatus::Any)
    {
        return Err("an ECR rule with tagStatus \"any\" must have the highest rulePriority".into());
    }
    if rules
        .iter()
        .filter(|r| r.status == TagStatus::Untagged)
        .count()
        > 1
    {
        return Err("only one ECR rule may select untagged images".into());
    }
    Ok(EcrPolicy { rules })
}

/// Parse a policy file: regfsck's YAML (`policies:`) or an AWS ECR lifecycle policy (`rules:`,
/// JSON as ECR takes it, or the same in YAML), which then applies to every repository.
pub fn parse_policy(text: &str) -> Result<Policy, String> {
    let value = yaml_to_json(text)?;
    let is_ecr = value.get("rules").is_some();
    if is_ecr {
        let f: EcrFile = serde_json::from_value(value)
            .map_err(|e| format!("not a valid ECR lifecycle policy: {e}"))?;
        return Ok(Policy {
            policies: vec![(vec![Glob::new("**")?], RuleSet::Ecr(ecr_policy(f)?))],
        });
    }
    let f: PolicyFile = serde_json::from_value(value)
        .map_err(|e| format!("not a valid policy file (docs/cleanup.md describes it): {e}"))?;
    let mut policies = Vec::new();
    for (i, p) in f.policies.into_iter().enumerate() {
        let at = format!("policy {}", i + 1);
        let globs = match p.repositories {
            OneOrMany::One(g) => vec![g],
            OneOrMany::Many(v) => v,
        };
        if globs.is_empty() {
            return Err(format!("{at}: repositories is empty"));
        }
        let globs = globs
            .iter()
            .map(|g| Glob::new(g))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{at}: {e}"))?;
        let own = p.untagged
            || p.older_than.is_some()
            || p.keep_last.is_some()
            || p.tags.is_some()
            || p.keep_tags.is_some();
        let set = match p.ecr {
            Some(_) if own => {
                return Err(format!(
                    "{at}: give either ecr rules or regfsck's rules, not both"
                ))
            }
            Some(e) => RuleSet::Ecr(ecr_policy(e).map_err(|e| format!("{at}: {e}"))?),
            None => RuleSet::Rules(
                rules(
                    p.untagged,
                    p.older_than.as_deref(),
                    p.keep_last,
                    p.tags.as_deref(),
                    p.keep_tags.as_deref(),
                )
                .map_err(|e| format!("{at}: {e}"))?,
            ),
        };
        policies.push((globs, set));
    }
    if policies.is_empty() {
        return Err("the policy file has no policies".into());
    }
    Ok(Policy { policies })
}

/// Build rules from their text forms, validating each.
pub fn rules(
    untagged: bool,
    older_than: Option<&str>,
    keep_last: Option<i64>,
    tags: Option<&str>,
    keep_tags: Option<&str>,
) -> Result<Rules, String> {
    let older_than = older_than
        .map(|t| {
            crate::model::duration::parse(t)
                .map(|d| d.as_secs() as i64)
                .map_err(|e| format!("older_than: {e}"))
        })
        .transpose()?;
    let keep_last = match keep_last {
        Some(n) if n < 0 => return Err(format!("keep_last must not be negative, not {n}")),
        Some(n) => Some(n as usize),
        None => None,
    };
    Ok(Rules {
        untagged,
        older_than,
        keep_last,
        tags: tags.map(TagRegex::new).transpose()?,
        keep_tags: keep_tags.map(TagRegex::new).transpose()?,
    })
}

/// YAML (JSON included) to a JSON value, so that serde's strict decoding applies to both.
fn yaml_to_json(text: &str) -> Result<serde_json::Value, String> {
    use yaml_rust2::{Yaml, YamlLoader};
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("not valid YAML/JSON: {e}"))?;
    let [doc] = docs.as_slice() else {
        return Err("the policy file must hold exactly one document".into());
    };
    fn conv(y: &Yaml) -> Result<serde_json::Value, String> {
        use serde_json::Value;
        Ok(match y {
            Yaml::Real(r) => r
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("bad number {r}"))?,
            Yaml::Integer(i) => Value::from(*i),
            Yaml::String(s) => Value::String(s.clone()),
            Yaml::Boolean(b) => Value::Bool(*b),
            Yaml::Array(a) => Value::Array(a.iter().map(conv).collect::<Result<_, _>>()?),
            Yaml::Hash(h) => {
                let mut m = serde_json::Map::new();
                for (k, v) in h {
                    let Yaml::String(k) = k else {
                        return Err(format!("keys must be text, not {k:?}"));
                    };
                    m.insert(k.clone(), conv(v)?);
                }
                Value::Object(m)
            }
            Yaml::Null => Value::Null,
            other => return Err(format!("unsupported YAML value {other:?}")),
        })
    }
    conv(doc)
}

// ---------------------------------------------------------------------------------------------
// Selection.

/// How one tag fares.
#[derive(Clone, Debug, Serialize)]
pub struct TagDecision {
    pub tag: String,
    pub digest: Option<Digest>,
    pub pushed: Option<Pushed>,
    /// Whether it goes.
    pub remove: bool,
    /// The rule (or protection) that decided.
    pub rule: String,
}

/// How one revision fares (only revisions that a rule considered are listed).
#[derive(Clone, Debug, Serialize)]
pub struct RevisionDecision {
    pub digest: Digest,
    pub pushed: Option<i64>,
    pub remove: bool,
    pub rule: String,
}

/// The decisions for one repository.
#[derive(Clone, Debug, Serialize)]
pub struct RepoDecision {
    pub name: String,
    /// What governed it: "command line", "policy 2", ...
    pub policy: String,
    pub tags: Vec<TagDecision>,
    pub revisions: Vec<RevisionDecision>,
}

impl RepoDecision {
    pub fn removed_tags(&self) -> impl Iterator<Item = &TagDecision> {
        self.tags.iter().filter(|t| t.remove)
    }

    pub fn removed_revisions(&self) -> impl Iterator<Item = &RevisionDecision> {
        self.revisions.iter().filter(|r| r.remove)
    }
}

/// How many seconds apart push times may all lie before they count as destroyed.
pub const DESTROYED_WITHIN: i64 = 5;
/// The fewest tags that can show destroyed push times.
pub const DESTROYED_MIN_TAGS: usize = 3;

/// Why the push times of these repositories cannot be trusted, if they cannot: every tag's push
/// time lies within `DESTROYED_WITHIN` seconds (a copy without mtimes, a restore, `touch`).
pub fn destroyed_push_times(inv: &Inventory, times: &PushTimes, repos: &[&Repo]) -> Option<String> {
    let _ = inv;
    let ats: Vec<i64> = repos
        .iter()
        .flat_map(|r| r.tags.iter().map(move |t| (r, t)))
        .filter_map(|(r, t)| times.tag(&r.name, &t.name).map(|p| p.at))
        .collect();
    let (min, max) = (ats.iter().min()?, ats.iter().max()?);
    (ats.len() >= DESTROYED_MIN_TAGS && max - min <= DESTROYED_WITHIN).then(|| {
        format!(
            "the push times of all {} tags lie within {} s of each other ({}): they look destroyed (a copy without mtimes, a restore), so age-based rules would pick arbitrary tags; restore the mtimes, or pass --force-ages if they are real",
            ats.len(),
            max - min,
            crate::model::timefmt::format_rfc3339(*min)
        )
    })
}

/// Inputs common to every selection.
pub struct Facts<'a> {
    pub inv: &'a Inventory,
    pub reach: &'a Reach,
    pub times: &'a PushTimes,
    pub now: i64,
    /// Seconds: nothing pushed more recently goes.
    pub grace: i64,
}

/// Decide for every repository that a rule set governs. `rules_for` gives (label, rules) per
/// repository, `None` for repositories left alone.
pub fn select<'r>(
    f: &Facts,
    rules_for: impl Fn(&str) -> Option<(String, &'r RuleSet)>,
) -> Vec<RepoDecision> {
    let mut out = Vec::new();
    for (i, repo) in f.inv.repos.iter().enumerate() {
        let Some((label, set)) = rules_for(&repo.name) else {
            continue;
        };
        let rr = &f.reach.repos[i];
        let (mut p, mut tag_rule, mut rev_rule) = match set {
            RuleSet::Rules(r) => own_rules(f, repo, rr, r),
            RuleSet::Ecr(e) => ecr_rules(f, repo, e),
        };
        let settled = protect::settle(f.inv, repo, f.times, f.now, f.grace, &mut p);
        for (t, why) in &settled.tags {
            tag_rule.insert(t.clone(), why.text());
        }
        for (d, why) in &settled.revisions {
            rev_rule.insert(d.clone(), why.text());
        }
        let tags = repo
            .tags
            .iter()
            .map(|t| TagDecision {
                tag: t.name.clone(),
                digest: t.current.digest().cloned(),
                pushed: f.times.tag(&repo.name, &t.name),
                remove: p.tags.contains(&t.name),
                rule: tag_rule.remove(&t.name).unwrap_or_else(|| "kept".into()),
            })
            .collect();
        let revisions = rev_rule
            .into_iter()
            .map(|(d, rule)| RevisionDecision {
                pushed: f.times.revision(&repo.name, &d),
                remove: p.revisions.contains(&d),
                digest: d,
                rule,
            })
            .collect();
        out.push(RepoDecision {
            name: repo.name.clone(),
            policy: label,
            tags,
            revisions,
        });
    }
    out
}

fn ago(now: i64, at: i64) -> String {
    crate::model::duration::format((now - at).max(0) as u64)
}

type Selected = (Proposal, BTreeMap<String, String>, BTreeMap<Digest, String>);

/// regfsck's rules for one repository.
fn own_rules(f: &Facts, repo: &Repo, rr: &reach::RepoReach, r: &Rules) -> Selected {
    let mut p = Proposal::default();
    let mut why: BTreeMap<String, String> = BTreeMap::new();
    let mut candidates: Vec<(&str, Option<i64>)> = Vec::new();
    for t in &repo.tags {
        let at = f.times.tag(&repo.name, &t.name).map(|x| x.at);
        if !r.selects_tags() {
            why.insert(t.name.clone(), "kept: no tag rule".into());
        } else if let Some(k) = r.keep_tags.as_ref().filter(|k| k.is_match(&t.name)) {
            why.insert(
                t.name.clone(),
                format!("kept: matches --keep-tags {}", k.text()),
            );
        } else if let Some(s) = r.tags.as_ref().filter(|s| !s.is_match(&t.name)) {
            why.insert(
                t.name.clone(),
                format!("kept: does not match --tags {}", s.text()),
            );
        } else {
            candidates.push((&t.name, at));
        }
    }
    // Newest first; ties by name so that the order is total.
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (rank, (t, at)) in candidates.iter().enumerate() {
        let t = t.to_string();
        if let Some(n) = r.keep_last.filter(|&n| rank < n) {
            why.insert(t, format!("kept: among the newest {n}"));
            continue;
        }
        if r.uses_ages() && at.is_none() {
            why.insert(
                t,
                "kept: push time unknown (no link could be statted)".into(),
            );
            continue;
        }
        if let (Some(limit), Some(at)) = (r.older_than, at) {
            if *at > f.now - limit {
                why.insert(
                    t,
                    format!(
                        "kept: pushed {} ago, not older than {}",
                        ago(f.now, *at),
                        crate::model::duration::format(limit as u64)
                    ),
                );
                continue;
            }
        }
        let mut because = Vec::new();
        if let Some(s) = &r.tags {
            because.push(format!("matches --tags {}", s.text()));
        }
        if let Some(n) = r.keep_last {
            because.push(format!("beyond the newest {n}"));
        }
        if let (Some(limit), Some(at)) = (r.older_than, at) {
            because.push(format!(
                "pushed {} ago, older than {}",
                ago(f.now, *at),
                crate::model::duration::format(limit as u64)
            ));
        }
        why.insert(t.clone(), format!("removed: {}", because.join(", ")));
        p.tags.insert(t);
    }
    let mut rev_why = BTreeMap::new();
    if r.untagged {
        // Revisions no staying tag reaches: the untagged ones and those this prune untags.
        let staying = protect::reached_by_tags(
            f.inv,
            repo,
            repo.tags
                .iter()
                .map(|t| t.name.as_str())
                .filter(|t| !p.tags.contains(*t)),
        );
        for (d, class) in rr.live(repo) {
            if staying.contains(d) {
                continue;
            }
            let text = match class {
                RevisionClass::Untagged => "removed: untagged",
                _ => "removed: untagged by this prune",
            };
            rev_why.insert(d.clone(), text.to_string());
            p.revisions.insert(d.clone());
        }
    }
    (p, why, rev_why)
}

/// An ECR policy for one repository. The unit is the image (a revision and its tags); an image's
/// push time is the newest push of its tags, else its revision link's mtime. Rules run by
/// priority; an image is expired by at most one rule, and only by the first rule whose tagging
/// requirements it matches; `imageCountMoreThan` counts every image the rule's tagging
/// requirements match.
fn ecr_rules(f: &Facts, repo: &Repo, e: &EcrPolicy) -> Selected {
    struct Image {
        digest: Digest,
        tags: Vec<String>,
        at: Option<i64>,
    }
    let mut images: Vec<Image> = repo
        .revisions
        .iter()
        .filter(|l| l.names_own_folder())
        .map(|l| {
            let d = &l.path_digest;
            let tags: Vec<String> = repo
                .tags
                .iter()
                .filter(|t| t.current.digest() == Some(d))
                .map(|t| t.name.clone())
                .collect();
            let at = tags
                .iter()
                .filter_map(|t| f.times.tag(&repo.name, t).map(|p| p.at))
                .max()
                .or_else(|| f.times.revision(&repo.name, d));
            Image {
                digest: d.clone(),
                tags,
                at,
            }
        })
        .collect();
    images.sort_by(|a, b| b.at.cmp(&a.at).then(a.digest.cmp(&b.digest)));
    let owner: Vec<Option<usize>> = images
        .iter()
        .map(|im| e.rules.iter().position(|r| r.selects(&im.tags)))
        .collect();
    let mut expired: BTreeMap<usize, String> = BTreeMap::new();
    for (ri, rule) in e.rules.iter().enumerate() {
        let selected: Vec<usize> = (0..images.len())
            .filter(|&i| rule.selects(&images[i].tags))
            .collect();
        for (rank, &i) in selected.iter().enumerate() {
            let im = &images[i];
            let Some(at) = im.at else { continue };
            let (hit, text) = match rule.count {
                Count::ImagesMoreThan(n) => (rank >= n, format!("beyond the newest {n}")),
                Count::SincePushedDays(d) => (
                    at <= f.now - d * 86_400,
                    format!("pushed {} ago, more than {d} days", ago(f.now, at)),
                ),
            };
            if hit && owner[i] == Some(ri) && !expired.contains_key(&i) {
                expired.insert(i, format!("removed: {}: {text}", rule.label()));
            }
        }
    }
    let mut p = Proposal::default();
    let mut tag_why = BTreeMap::new();
    let mut rev_why = BTreeMap::new();
    for (i, im) in images.iter().enumerate() {
        match expired.get(&i) {
            Some(text) => {
                p.revisions.insert(im.digest.clone());
                rev_why.insert(im.digest.clone(), text.clone());
                for t in &im.tags {
                    p.tags.insert(t.clone());
                    tag_why.insert(t.clone(), format!("{text} (the image goes)"));
                }
            }
            None => {
                let text = match owner[i] {
                    Some(ri) => format!("kept: {} keeps it", e.rules[ri].label()),
                    None => "kept: no ECR rule selects it".to_string(),
                };
                for t in &im.tags {
                    tag_why.insert(t.clone(), text.clone());
                }
            }
        }
    }
    (p, tag_why, rev_why)
}

/// Whether the decisions rest on push times (then destroyed ones refuse).
pub fn uses_ages(sets: &[&RuleSet]) -> bool {
    sets.iter().any(|s| s.uses_ages())
}

/// A protection's text, for callers outside (rm's refusal).
pub fn protection_text(p: &Protection) -> String {
    p.text()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let g = |p: &str, n: &str| Glob::new(p).unwrap().matches(n);
        assert!(g("library/*", "library/alpine"));
        assert!(!g("library/*", "library/a/b"));
        assert!(g("team/**", "team/proj/app"));
        assert!(g("**", "a/b/c"));
        assert!(g("multi/?ci", "multi/oci"));
        assert!(!g("multi", "multi/oci"));
        assert!(g("*", "mounted") && !g("*", "scratch/doomed"));
    }

    #[test]
    fn ecr_wildcards_and_validation() {
        assert!(
            wildcard("prod*", "prod-1")
                && wildcard("*-rc*", "1.0-rc2")
                && !wildcard("prod", "prod-1")
        );
        let bad = |rule: &str| parse_policy(&format!(r#"{{"rules":[{rule}]}}"#)).unwrap_err();
        let pulled = bad(
            r#"{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":3},"action":{"type":"expire"}}"#,
        );
        assert!(pulled.contains("records no pulls"), "{pulled}");
        let neg = bad(
            r#"{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":-1},"action":{"type":"expire"}}"#,
        );
        assert!(neg.contains("positive"), "{neg}");
        let unknown = bad(
            r#"{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1,"colour":"red"},"action":{"type":"expire"}}"#,
        );
        assert!(unknown.contains("unknown field"), "{unknown}");
        let both = bad(
            r#"{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["a"],"tagPatternList":["b*"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}"#,
        );
        assert!(both.contains("not both"), "{both}");
        let ok = parse_policy(r#"{"rules":[{"rulePriority":2,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#).unwrap();
        let RuleSet::Ecr(e) = &ok.policies[0].1 else {
            panic!()
        };
        assert_eq!(e.rules[0].priority, 1, "sorted by priority");
    }

    #[test]
    fn yaml_policies() {
        let p = parse_policy(
            "policies:\n  - repositories: [\"library/*\"]\n    keep_last: 2\n    keep_tags: 'latest|release-.*'\n  - repositories: '**'\n    untagged: true\n",
        )
        .unwrap();
        assert_eq!(p.for_repo("library/alpine").unwrap().0, 0);
        assert_eq!(p.for_repo("team/proj/app").unwrap().0, 1);
        for (text, want) in [
            (
                "policies:\n  - repositories: x\n    keep_lats: 2\n",
                "unknown field",
            ),
            (
                "policies:\n  - repositories: x\n    keep_last: -2\n",
                "negative",
            ),
            (
                "policies:\n  - repositories: x\n    tags: '(('\n",
                "does not compile",
            ),
            (
                "policies:\n  - repositories: x\n    older_than: 3 weeks\n",
                "older_than",
            ),
            ("retention: {}\n", "unknown field"),
        ] {
            let e = parse_policy(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn cosign_tags() {
        let hex = "a".repeat(64);
        for t in [
            format!("sha256-{hex}.sig"),
            format!("sha256-{hex}.att"),
            format!("sha256-{hex}"),
        ] {
            assert_eq!(protect::cosign_subject(&t).unwrap().hex(), hex);
        }
        assert!(protect::cosign_subject("sha256-abc.sig").is_none());
        assert!(protect::cosign_subject("v1.sig").is_none());
    }
}
