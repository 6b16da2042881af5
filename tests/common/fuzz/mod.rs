//! The differential fuzzer of issue #11: seeded cases of realistic damage and adversarial
//! manifests on copies of the fixture stores, each compared between regfsck and the real registry
//! (see `oracle`), every disagreement minimised (`minimise`) and classified against the list of
//! known ones (`known`). docs/fuzzing.md describes it; tests/differential.rs runs it.

pub mod gc;
pub mod gen;
pub mod json;
pub mod known;
pub mod manifest;
pub mod minimise;
pub mod ops;
pub mod oracle;
pub mod pulls;
pub mod rng;
pub mod tree;

use gen::Case;
use oracle::{observe, Disagreement, Scope, Stats, Tamper};
use std::collections::BTreeMap;
use std::time::Instant;

pub struct Options {
    pub seed: u64,
    pub iters: u64,
    /// Observations the member-level (JSON) minimisation may spend per disagreement.
    pub member_budget: usize,
    /// Disagreements minimised per case (the rest are reported unminimised).
    pub max_minimised: usize,
    /// Print every case as it runs.
    pub verbose: bool,
}

/// One disagreement, minimised and classified.
pub struct Found {
    pub case: String,
    pub fixture: &'static str,
    /// As the minimised case shows it (as the whole case did, when not minimised).
    pub d: Disagreement,
    pub keep: Vec<usize>,
    pub ops: Vec<ops::Op>,
    pub of: usize,
    pub minimised: bool,
    /// Observations the minimisation made.
    pub tests: usize,
    pub known: Option<&'static known::Known>,
}

impl Found {
    pub fn replay(&self) -> String {
        let keep: Vec<String> = self.keep.iter().map(usize::to_string).collect();
        format!("FUZZ_CASE={} FUZZ_KEEP={}", self.case, keep.join(","))
    }

    pub fn print(&self) {
        let tag = match self.known {
            Some(k) => format!("known, {}: {}", k.owner, k.why),
            None => "NEW".to_string(),
        };
        println!(
            "DISAGREEMENT [{tag}] case {} ({}) {} {}",
            self.case, self.fixture, self.d.kind, self.d.subject
        );
        println!("  regfsck: {}", self.d.regfsck);
        println!("  real:    {}", self.d.real);
        println!(
            "  {} to {} of {} ops in {} runs ({}):",
            if self.minimised {
                "minimised"
            } else {
                "NOT minimised"
            },
            self.ops.len(),
            self.of,
            self.tests,
            self.replay()
        );
        for o in &self.ops {
            println!("    {o}");
        }
    }
}

#[derive(Default)]
pub struct Summary {
    pub iters: u64,
    pub ops: usize,
    pub families: BTreeMap<String, usize>,
    pub stats: Stats,
    pub found: Vec<Found>,
    pub seconds: f64,
}

impl Summary {
    pub fn unknown(&self) -> Vec<&Found> {
        self.found.iter().filter(|f| f.known.is_none()).collect()
    }

    pub fn print(&self) {
        let s = &self.stats;
        println!(
            "\n{} cases, {} operations ({}), {:.0} s",
            self.iters,
            self.ops,
            self.families
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.seconds
        );
        println!(
            "compared: {} GC runs ({} real aborts), {} pulls ({} failed), {} checks, {} repairs applied and undone",
            s.gc_compared, s.gc_real_aborts, s.pulls, s.pulls_failed, s.checks, s.undos
        );
        println!(
            "not compared: {} GC runs regfsck declined to predict (symlinks it would follow), {} pulls skopeo refused although the registry served the manifest, {} tags regfsck makes no claim about (through symlinks; {} of them pulled)",
            s.gc_unpredicted, s.client_rejects, s.unsure, s.unsure_pulled
        );
        let mut by: BTreeMap<(String, String), usize> = BTreeMap::new();
        for f in &self.found {
            let owner = f.known.map_or("NEW".to_string(), |k| k.owner.to_string());
            *by.entry((f.d.kind.to_string(), owner)).or_default() += 1;
        }
        println!(
            "{} disagreements ({} new):",
            self.found.len(),
            self.unknown().len()
        );
        for ((kind, owner), n) in by {
            println!("  {n:4}  {kind:22} {owner}");
        }
    }
}

/// Observe a case in full, then minimise and classify each disagreement.
pub fn run_case(
    case: &Case,
    opts: &Options,
    tamper: Option<&Tamper>,
) -> (oracle::Observation, Vec<Found>) {
    let obs = observe(case.fixture, &case.ops, &Scope::full(), tamper);
    let mut found = Vec::new();
    for (n, d) in obs.disagreements.iter().enumerate() {
        let (keep, ops, minimised, tests, shown) = if n < opts.max_minimised {
            let m = minimise::minimise(case.fixture, &case.ops, d, tamper, opts.member_budget);
            (m.keep, m.ops, m.reproduced, m.tests, m.shown)
        } else {
            (
                (0..case.ops.len()).collect(),
                case.ops.clone(),
                false,
                0,
                None,
            )
        };
        let known = known::classify(d, &ops);
        found.push(Found {
            case: case.id(),
            fixture: case.fixture,
            d: shown.unwrap_or_else(|| d.clone()),
            keep,
            ops,
            of: case.ops.len(),
            minimised,
            tests,
            known,
        });
    }
    (obs, found)
}

pub fn campaign(opts: &Options, tamper: Option<&Tamper>) -> Summary {
    let start = Instant::now();
    let mut sum = Summary::default();
    for iter in 0..opts.iters {
        let case = gen::generate(opts.seed, iter);
        if opts.verbose {
            println!("case {} ({}):", case.id(), case.fixture);
            for o in &case.ops {
                println!("    {o}");
            }
        }
        sum.iters += 1;
        sum.ops += case.ops.len();
        for o in &case.ops {
            *sum.families.entry(o.family().to_string()).or_default() += 1;
        }
        let (obs, found) = run_case(&case, opts, tamper);
        sum.stats += obs.stats;
        for f in found {
            f.print();
            sum.found.push(f);
        }
    }
    sum.seconds = start.elapsed().as_secs_f64();
    sum
}

/// A case from `FUZZ_CASE=seed:iter`, keeping only the `FUZZ_KEEP=i,j` operations if given.
pub fn case_from(id: &str, keep: Option<&str>) -> Case {
    let (s, i) = id.split_once(':').expect("FUZZ_CASE is seed:iteration");
    let mut case = gen::generate(s.parse().unwrap(), i.parse().unwrap());
    if let Some(k) = keep.filter(|k| !k.is_empty()) {
        let idx: Vec<usize> = k.split(',').map(|x| x.trim().parse().unwrap()).collect();
        case.ops = idx.iter().map(|&i| case.ops[i].clone()).collect();
    }
    case
}
