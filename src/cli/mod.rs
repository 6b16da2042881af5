//! Command line: clap arguments become plain option values before any work starts; each
//! subcommand runs the library pipeline and maps the outcome to an fsck(8) exit status.

mod check;
mod cleanup;
mod du;
mod gc;
mod generate;
mod ls;
pub mod metrics;
pub mod progress_bar;
mod repair;

use crate::report::exit;
use crate::store::config;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "regfsck",
    version,
    about = "Offline fsck, auditor and repair tool for Docker/OCI distribution registry storage",
    long_about = "Offline fsck, auditor and repair tool for the filesystem storage of a Docker/OCI \
                  distribution registry (registry:2, registry:3, Debian's docker-registry). Run it \
                  with the registry stopped or read-only.\n\nExit status (fsck(8) bits): 0 no errors, \
                  1 errors corrected, 4 errors left, 8 operational error, 16 usage error, 32 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Audit the store: verify every blob, every link, revision, tag and upload (never writes).
    Check(check::CheckArgs),
    /// Disk usage per repository: referenced, exclusive and shared bytes.
    Du(du::DuArgs),
    /// Predict what the registry's garbage-collect (2.8 and 3.x) would delete, and whether it is safe.
    Gc(gc::GcArgs),
    /// Plan repairs; --apply executes them reversibly (journal + quarantine).
    Repair(repair::RepairArgs),
    /// Undo a repair or cleanup run byte for byte.
    Undo(repair::UndoArgs),
    /// The offline catalog: repositories, tags (kind, platforms, size, push time), untagged revisions.
    Ls(ls::LsArgs),
    /// Remove repositories, tags or revisions (plan; --apply moves them into the quarantine).
    Rm(cleanup::RmArgs),
    /// Retention: remove untagged revisions and old tags by rules or a policy file (plan; --apply).
    Prune(cleanup::PruneArgs),
    /// Delete quarantined runs for good, freeing their space (they can no longer be undone).
    Purge(cleanup::PurgeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(generate::CompletionsArgs),
    /// Print the man page (or write all pages with --out-dir).
    #[command(hide = true)]
    Man(generate::ManArgs),
}

/// Where the store is.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// The registry's rootdirectory (holding docker/registry/v2), the v2 folder itself, or
    /// s3://BUCKET[/ROOTDIRECTORY] (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or
    /// the shared credentials file). Default: from --config, else
    /// $REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY, else /var/lib/registry.
    pub root: Option<PathBuf>,
    /// The registry's config.yml: its storage (filesystem or s3, with the registry's
    /// REGISTRY_STORAGE_* environment overrides) and maintenance settings.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// For s3://: the S3 endpoint (path-style requests, as the driver's regionendpoint),
    /// e.g. http://127.0.0.1:9000. Default: AWS.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// For s3://: the bucket's region (default us-east-1).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Text for people, grouped by finding code.
    Human,
    /// The versioned JSON document of docs/report-format.md.
    Json,
}

/// A store location and the registry settings that matter to regfsck.
pub struct Located {
    pub store: Box<dyn crate::store::Storage>,
    pub registry: Option<config::RegistryConfig>,
    pub config_path: Option<PathBuf>,
}

impl Located {
    pub fn store_config(&self) -> Option<&PathBuf> {
        self.config_path.as_ref()
    }
}

/// The store as a command names it: the root directory on a filesystem; on object storage the
/// arguments this run was given (`--config FILE`, or `s3://… --endpoint URL`), so that a printed
/// command works as it stands.
pub(super) fn store_words(args: &StoreArgs, located: &Located) -> String {
    use crate::report::advice::shell_word;
    if let Some(fs) = located.store.local() {
        return shell_word(&fs.root);
    }
    let mut w = Vec::new();
    if let Some(r) = &args.root {
        w.push(shell_word(r));
    }
    if let Some(c) = &args.config {
        w.push(format!("--config {}", shell_word(c)));
    }
    if let Some(e) = &args.endpoint {
        w.push(format!(
            "--endpoint {}",
            shell_word(std::path::Path::new(e))
        ));
    }
    if let Some(r) = &args.region {
        w.push(format!("--region {}", shell_word(std::path::Path::new(r))));
    }
    if w.is_empty() {
        w.push(shell_word(std::path::Path::new(&located.store.location())));
    }
    w.join(" ")
}

impl StoreArgs {
    /// Resolve the store: ROOT > --config (with the environment override) > environment > default.
    pub fn locate(&self) -> Result<Located, String> {
        use crate::store::s3::{config::S3Config, S3Store};
        let registry = match &self.config {
            Some(path) => Some(config::load(path)?),
            None => None,
        };
        let s3_url = self
            .root
            .as_ref()
            .and_then(|r| r.to_str())
            .filter(|r| r.starts_with("s3://"));
        if self.endpoint.is_some() && s3_url.is_none() {
            return Err("--endpoint is for an s3://BUCKET/PREFIX store".into());
        }
        let root = match (&self.root, &registry) {
            (Some(r), _) => r.clone(),
            (None, Some(c)) => match &c.storage {
                config::Driver::Filesystem(p) => p.clone(),
                config::Driver::S3(s3) => {
                    return Ok(Located {
                        store: Box::new(with_cache(S3Store::open((**s3).clone())?)),
                        registry,
                        config_path: self.config.clone(),
                    })
                }
            },
            (None, None) => std::env::var_os(config::ROOT_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(config::DEFAULT_ROOT)),
        };
        if let Some(url) = s3_url {
            let cfg = S3Config::from_url(url, self.endpoint.as_deref(), self.region.as_deref())?;
            return Ok(Located {
                store: Box::new(with_cache(S3Store::open(cfg)?)),
                registry,
                config_path: self.config.clone(),
            });
        }
        let store = crate::store::scan::locate(&root).map_err(|e| e.to_string())?;
        let store: Box<dyn crate::store::Storage> = Box::new(crate::store::FsStorage(store));
        Ok(Located {
            store,
            registry,
            config_path: self.config.clone(),
        })
    }
}

/// An S3 store keeps what it reads beside the incremental state (`store::s3::cache`), so that
/// every repeat run, of any command, reads again only what changed.
fn with_cache(s: crate::store::s3::S3Store) -> crate::store::s3::S3Store {
    use crate::store::Storage;
    let path = crate::store::state::default_path(&s.state_root()).with_extension("s3cache");
    s.with_cache(Some(path))
}

/// Resolve the store, with an error that says where regfsck looked when nothing was named.
pub fn locate(args: &StoreArgs) -> Result<Located, Failure> {
    args.locate().map_err(|e| {
        let defaulted = args.root.is_none()
            && args.config.is_none()
            && std::env::var_os(config::ROOT_ENV).is_none_or(|v| v.is_empty());
        let missing = !std::path::Path::new(config::DEFAULT_ROOT).exists();
        if defaulted && missing {
            Failure::Operational(format!(
                "no store at {} (the default; pass ROOT or --config; Debian's is /var/lib/docker-registry)",
                config::DEFAULT_ROOT
            ))
        } else {
            Failure::Operational(e)
        }
    })
}

/// A scan error: Ctrl-C during the scan is an interruption, anything else an operational error.
pub fn scan_failure(e: anyhow::Error) -> Failure {
    if e.downcast_ref::<crate::store::scan::Interrupted>()
        .is_some()
    {
        Failure::Interrupted(e.to_string())
    } else {
        Failure::from(e)
    }
}

/// Set by Ctrl-C; long phases stop at a safe point and the run still reports. The first Ctrl-C
/// says so on stderr; a second one ends the process at once (exit 32), for when the safe point
/// is too far away.
pub fn install_interrupt() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    // A second handler install (tests calling run twice) is harmless to ignore.
    let _ = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            eprintln!("regfsck: interrupted again: exiting now");
            std::process::exit(exit::CANCELLED);
        }
        eprintln!(
            "regfsck: interrupted: stopping at the next safe point (Ctrl-C again to quit at once)"
        );
    });
    flag
}

/// Reads in flight, apart from the hashing threads (`--jobs`).
#[derive(Args, Debug, Clone, Default)]
pub struct IoArgs {
    /// Reads kept in flight by the scan and the hashing of small blobs (default: 128; large
    /// blobs: up to 4 at once read directly, two reads each, or 8 through the page cache, or
    /// --jobs if more), whatever the number of cores:
    /// a cold cache waits on the device, which answers many requests at once. Lower it (e.g. 4)
    /// on a spinning disk shared with a live registry, to leave it room. On object storage: HTTP
    /// requests in flight (listing, link and manifest reads, hashing), default 32.
    #[arg(long, value_name = "N", value_parser = parse_io_depth)]
    pub io_depth: Option<u32>,
}

/// The most reads `--io-depth` keeps in flight: one thread each, so a typo of a few more digits
/// must not start a hundred thousand threads.
pub const MAX_IO_DEPTH: u32 = 1024;

fn parse_io_depth(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(0) => Err(format!(
            "0 reads in flight would read nothing; give 1 (one read at a time, the gentlest) to {MAX_IO_DEPTH}"
        )),
        Ok(n) if n <= MAX_IO_DEPTH => Ok(n),
        Ok(n) => Err(format!(
            "{n} is more than {MAX_IO_DEPTH} reads in flight (one thread each); no device needs more"
        )),
        Err(_) => Err(format!(
            "{s:?} is not a number of reads in flight (1 to {MAX_IO_DEPTH})"
        )),
    }
}

impl IoArgs {
    /// The depth for `ScanOptions::io_depth` and `VerifyOptions::io_depth` (0: the default).
    pub fn depth(&self) -> usize {
        self.io_depth.unwrap_or(0) as usize
    }
}

pub fn configure_threads(jobs: Option<usize>) {
    if let Some(n) = jobs.filter(|&n| n > 0) {
        // Fails only if a pool already exists (library use); the existing pool is then used.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
}

/// Print to stdout; a closed pipe (`| head`) ends the program quietly.
pub fn print_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .is_err()
    {
        std::process::exit(exit::OK);
    }
}

/// Stream a value as pretty JSON to stdout, without building the text first (a large store's
/// report runs to megabytes). A closed pipe ends the process quietly, as for `print_stdout`.
pub fn print_json<T: serde::Serialize>(value: &T) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|_| out.write_all(b"\n"))
        .and_then(|_| out.flush());
    if written.is_err() {
        std::process::exit(exit::OK);
    }
}

/// Whether the raw command line asks for JSON (`--format json` or `--format=json`): usage errors
/// that clap finds before any value is parsed still answer in JSON then.
fn asks_for_json(args: &[std::ffi::OsString]) -> bool {
    args.windows(2)
        .any(|w| w[0] == "--format" && w[1] == "json")
        || args.iter().any(|a| a == "--format=json")
}

/// The error document printed on stdout instead of a report when `--format json` was asked for.
#[derive(serde::Serialize)]
struct ErrorDoc<'a> {
    schema: &'static str,
    error: ErrorBody<'a>,
    exit_code: i32,
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    /// `usage`, `operational` or `interrupted`.
    kind: &'static str,
    message: &'a str,
}

/// Parse arguments and run; returns the exit status.
pub fn main() -> i32 {
    let started = std::time::Instant::now();
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json = asks_for_json(&raw);
    let cli = match Cli::try_parse_from(&raw) {
        Ok(c) => c,
        Err(e) => {
            if !e.use_stderr() {
                // --help, --version.
                let _ = e.print();
                return exit::OK;
            }
            let _ = e.print();
            if json {
                let text = e.render().to_string();
                let first = text
                    .lines()
                    .next()
                    .unwrap_or("usage error")
                    .trim_start_matches("error: ");
                print_error_json("usage", first, exit::USAGE);
            }
            return exit::USAGE;
        }
    };
    let metrics = metrics::Pending::of(&cli.command, started);
    let result = match cli.command {
        Command::Check(args) => check::run(args),
        Command::Du(args) => du::run(args),
        Command::Gc(args) => gc::run(args),
        Command::Repair(args) => repair::run(args),
        Command::Undo(args) => repair::run_undo(args),
        Command::Ls(args) => ls::run(args),
        Command::Rm(args) => cleanup::run_rm(args),
        Command::Prune(args) => cleanup::run_prune(args),
        Command::Purge(args) => cleanup::run_purge(args),
        Command::Completions(args) => generate::completions(args),
        Command::Man(args) => generate::man(args),
    };
    let (kind, msg, code) = match result {
        Ok(code) => return code,
        Err(Failure::Usage(msg)) => ("usage", msg, exit::USAGE),
        Err(Failure::Operational(msg)) => ("operational", msg, exit::OPERATIONAL),
        Err(Failure::Interrupted(msg)) => ("interrupted", msg, exit::CANCELLED),
    };
    eprintln!("regfsck: {msg}");
    if let Some(m) = metrics {
        m.failed(code);
    }
    if json {
        print_error_json(kind, &msg, code);
    }
    code
}

fn print_error_json(kind: &'static str, message: &str, exit_code: i32) {
    print_json(&ErrorDoc {
        schema: "regfsck.error/1",
        error: ErrorBody { kind, message },
        exit_code,
    });
}

/// Why a command could not do its job.
#[derive(Debug)]
pub enum Failure {
    Usage(String),
    Operational(String),
    /// Ctrl-C before anything could be reported.
    Interrupted(String),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Operational(format!("{e:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every subcommand and every option has a help text (`regfsck <cmd> --help` is the manual).
    #[test]
    fn every_option_and_subcommand_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let here = format!("{path} {}", cmd.get_name()).trim().to_string();
            if cmd.get_about().is_none() {
                missing.push(format!("{here}: no about"));
            }
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{here} --{id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &here, missing);
            }
        }
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cmd, "", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:#?}");
        // The walk does see the options (a broken walk would pass vacuously).
        let check = cmd.find_subcommand("check").unwrap();
        assert!(check.get_arguments().count() > 15);
    }

    #[test]
    fn json_is_asked_for_in_either_spelling() {
        let args = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(asks_for_json(&args(&[
            "regfsck", "check", "--format", "json"
        ])));
        assert!(asks_for_json(&args(&["regfsck", "du", "--format=json"])));
        assert!(!asks_for_json(&args(&["regfsck", "du", "--format", "csv"])));
    }
}
