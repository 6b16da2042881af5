//! The operations files: the scheduled check (contrib/scheduled-check, as the systemd unit and the
//! cron line run it) on a real store, the systemd units verified by systemd-analyze, the cron
//! line, the Debian package's asset list, and the Dockerfile (no container engine here: its paths
//! and command lines are checked against the tree and the real clap definition). Shell
//! completions and man pages: generated from the same clap definition, complete, and working.

mod common;

use clap::{CommandFactory, Parser};
use common::store::{fixture, fixture_now};
use regfsck::cli::Cli;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

/// A registry config.yml naming `root`.
fn config(dir: &Path, root: &Path) -> PathBuf {
    let p = dir.join("config.yml");
    std::fs::write(
        &p,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
            root.display()
        ),
    )
    .unwrap();
    p
}

/// contrib/scheduled-check with settings as /etc/default/regfsck gives them.
fn scheduled(cfg: &Path, state: &Path, metrics: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(repo().join("contrib/scheduled-check"))
        .args(extra)
        .env("REGFSCK", env!("CARGO_BIN_EXE_regfsck"))
        .env("REGFSCK_CONFIG", cfg)
        .env("REGFSCK_STATE_DIR", state)
        .env("REGFSCK_METRICS", metrics)
        .env_remove("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY")
        .output()
        .unwrap()
}

#[test]
fn scheduled_check_keeps_report_state_and_metrics() {
    let store = fixture("sample");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), store.path());
    let state = dir.path().join("state");
    let textfile = dir.path().join("textfile");
    std::fs::create_dir(&textfile).unwrap();
    let metrics = textfile.join("regfsck-check.prom");
    let now = fixture_now(store.path()).to_string();
    let out = scheduled(&cfg, &state, &metrics, &["--now", &now]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("last-check.json")).unwrap()).unwrap();
    assert_eq!(report["schema"], "regfsck.check/1");
    assert_eq!(
        report["summary"]["hashed_blobs"],
        report["summary"]["blobs"]
    );
    assert_eq!(
        report["summary"]["verification"]["reverify_after_seconds"],
        30 * 86400
    );
    assert!(state.join("check.state").is_file());
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(prom.contains("regfsck_check_coverage_ratio{"));
    // The next week: only what is new or due is hashed; the report is replaced.
    let out = scheduled(&cfg, &state, &metrics, &["--now", &now]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("last-check.json")).unwrap()).unwrap();
    assert_eq!(report["summary"]["hashed_blobs"], 0);
    assert_eq!(report["summary"]["fully_verified"], true);
    // Nothing left behind but the report and the state.
    let mut names: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["check.state", "last-check.json"]);

    // Without a collector folder: no metrics, no error.
    let out = scheduled(
        &cfg,
        &state,
        &dir.path().join("none/x.prom"),
        &["--now", &now],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // A broken setup: the report is the error object, the metrics say exit 8, the status is 8.
    let gone = config(&dir.path().join("state"), &dir.path().join("gone"));
    let out = scheduled(&gone, &state, &metrics, &[]);
    assert_eq!(out.status.code(), Some(8), "{out:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("last-check.json")).unwrap()).unwrap();
    assert_eq!(report["schema"], "regfsck.error/1");
    assert!(std::fs::read_to_string(&metrics)
        .unwrap()
        .contains("regfsck_run_exit_status{root=\""));
}

/// The command lines written in contrib/ parse with the real clap definition.
#[test]
fn contrib_command_lines_parse() {
    let script = text("contrib/scheduled-check");
    let line: String = script
        .lines()
        .skip_while(|l| !l.contains("\"$regfsck\" check"))
        .take_while(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .replace('\\', " ");
    assert!(line.contains("--reverify-after") && line.contains("--format json"));
    let args: Vec<String> = std::iter::once("regfsck".to_string())
        .chain(
            line.split_whitespace()
                .skip(1)
                .take_while(|w| !w.starts_with("\"$@\"") && !w.starts_with('>'))
                .map(|w| match w.trim_matches('"') {
                    "$config" => "/etc/docker/registry/config.yml".to_string(),
                    "$reverify_after" => "30d".to_string(),
                    "$state_dir/check.state" => "/var/lib/regfsck/check.state".to_string(),
                    other => other.to_string(),
                }),
        )
        .chain([
            "--metrics".into(),
            "/var/lib/prometheus/node-exporter/regfsck-check.prom".into(),
        ])
        .collect();
    Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    // The unit and the cron line run exactly that script, where the package installs it.
    let unit = text("contrib/systemd/regfsck-check.service");
    assert!(unit
        .lines()
        .any(|l| l == "ExecStart=/usr/lib/regfsck/scheduled-check"));
    let cron = text("contrib/cron/regfsck");
    let job: Vec<&str> = cron
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains('=') && !l.trim().is_empty())
        .collect();
    assert_eq!(job.len(), 1, "{job:?}");
    let fields: Vec<&str> = job[0].split_whitespace().collect();
    assert_eq!(&fields[..6], ["17", "3", "*", "*", "0", "root"]);
    let cmd = fields[6..].join(" ");
    assert!(cmd.contains("/usr/lib/regfsck/scheduled-check"));
    let sh = Command::new("sh")
        .args(["-n", "-c", &cmd])
        .output()
        .unwrap();
    assert!(sh.status.success(), "{sh:?}");
    let deb = text("Cargo.toml");
    for (from, to) in [
        ("contrib/scheduled-check", "usr/lib/regfsck/scheduled-check"),
        (
            "contrib/systemd/regfsck-check.service",
            "lib/systemd/system/regfsck-check.service",
        ),
    ] {
        assert!(
            deb.contains(&format!("[\"{from}\", \"{to}\", ")),
            "{from} -> {to}"
        );
    }
}

/// systemd-analyze verify on the units, in a root that holds what the package installs (so the
/// real system is untouched); any warning counts. A broken copy must be caught.
#[test]
fn systemd_units_verify() {
    if !on_path("systemd-analyze") {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("systemd-analyze is required under CI=true: apt-get install systemd");
        }
        eprintln!("SKIPPED: systemd-analyze not installed");
        return;
    }
    let verify = |service: &str| -> String {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let units = r.join("etc/systemd/system");
        std::fs::create_dir_all(&units).unwrap();
        std::fs::create_dir_all(r.join("usr/lib/regfsck")).unwrap();
        std::fs::copy(
            repo().join("contrib/scheduled-check"),
            r.join("usr/lib/regfsck/scheduled-check"),
        )
        .unwrap();
        std::fs::write(units.join("regfsck-check.service"), service).unwrap();
        std::fs::copy(
            repo().join("contrib/systemd/regfsck-check.timer"),
            units.join("regfsck-check.timer"),
        )
        .unwrap();
        // The system's own units (targets the timer and service depend on).
        let system = ["/usr/lib/systemd/system", "/lib/systemd/system"]
            .into_iter()
            .find(|d| Path::new(d).join("sysinit.target").exists())
            .expect("the system's units");
        std::fs::create_dir_all(r.join("usr/lib/systemd")).unwrap();
        let cp = Command::new("cp")
            .arg("-a")
            .arg(system)
            .arg(r.join("usr/lib/systemd/"))
            .status();
        assert!(cp.unwrap().success());
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(format!("--root={}", r.display()))
            .args(["regfsck-check.service", "regfsck-check.timer"])
            .output()
            .unwrap();
        let mut problems = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            problems.push_str(&format!("\nexit {:?}", out.status.code()));
        }
        problems
    };
    let service = text("contrib/systemd/regfsck-check.service");
    assert_eq!(verify(&service), "", "systemd-analyze verify complains");
    let broken = service.replace("Nice=19", "Nice=nineteen");
    assert!(
        verify(&broken).contains("nice"),
        "a bad value goes unnoticed"
    );
    let broken = service.replace("PrivateTmp=yes", "PrivateTemp=yes");
    assert!(
        verify(&broken).contains("PrivateTemp"),
        "an unknown key goes unnoticed"
    );
}

/// The Dockerfile cannot be built here (no container engine): its COPY sources exist, the binary
/// it copies is the one the build stage makes, and its ENTRYPOINT + CMD and the documented
/// `docker run` lines are command lines the real clap definition accepts.
#[test]
fn dockerfile_paths_and_command_lines() {
    let df = text("Dockerfile");
    let mut workdir = String::new();
    let mut built = Vec::new();
    for line in df.lines().map(str::trim) {
        if let Some(w) = line.strip_prefix("WORKDIR ") {
            workdir = w.to_string();
        }
        if line.starts_with("RUN cargo build --release") {
            built.push(format!("{workdir}/target/release/regfsck"));
        }
        if let Some(rest) = line.strip_prefix("COPY ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            if words[0].starts_with("--from=") {
                assert!(built.contains(&words[1].to_string()), "{line}: not built");
                assert_eq!(words[2], "/usr/bin/regfsck");
            } else {
                for src in &words[..words.len() - 1] {
                    assert!(
                        repo().join(src).exists(),
                        "{line}: {src} is not in the tree"
                    );
                }
            }
        }
    }
    assert!(!built.is_empty());
    let json_array = |key: &str| -> Vec<String> {
        let line = df
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key}"));
        serde_json::from_str(line).unwrap()
    };
    assert_eq!(json_array("ENTRYPOINT"), ["/usr/bin/regfsck"]);
    assert!(df.contains("\nUSER regfsck\n"), "runs as a non-root user");
    let mut args = vec!["regfsck".to_string()];
    args.extend(json_array("CMD"));
    Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("CMD {args:?}: {e}"));
    // .dockerignore must not hide what the build copies.
    let ignored = text(".dockerignore");
    for l in ignored.lines() {
        assert!(!["src", "Cargo.toml", "Cargo.lock", "bench"].contains(&l.trim()));
    }
    // Every documented `docker run … regfsck …` line parses (README.md's Operations section).
    let readme = text("README.md");
    let mut runs = 0;
    let joined = readme.replace("\\\n", " ");
    for line in joined
        .lines()
        .filter(|l| l.trim_start().starts_with("docker run"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        let image = words
            .iter()
            .position(|w| *w == "regfsck")
            .unwrap_or_else(|| panic!("{line}: no regfsck image"));
        // Options before the image: the store is mounted read-only for check and gc.
        let opts = words[..image].join(" ");
        if opts.contains("/var/lib/registry") {
            assert!(opts.contains("/var/lib/registry:ro"), "{line}");
        }
        let mut args = vec!["regfsck".to_string()];
        args.extend(words[image + 1..].iter().map(|w| w.to_string()));
        Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{line}: {e}"));
        runs += 1;
    }
    assert!(runs >= 2, "README.md documents the docker run lines");
}

/// `regfsck completions bash` really completes (bash runs the generated function), and zsh and
/// fish scripts name every subcommand.
#[test]
fn completions_complete() {
    let gen = |shell: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_regfsck"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let bash = dir.path().join("regfsck.bash");
    std::fs::write(&bash, gen("bash")).unwrap();
    let complete = |words: &str| -> Vec<String> {
        let script = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); \
             COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
             _regfsck regfsck \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            bash.display()
        );
        let out = Command::new("bash").args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect()
    };
    let subs = complete("regfsck ''");
    for s in [
        "check",
        "du",
        "gc",
        "repair",
        "undo",
        "ls",
        "rm",
        "prune",
        "purge",
        "completions",
    ] {
        assert!(subs.iter().any(|x| x == s), "{s}: {subs:?}");
    }
    let opts = complete("regfsck check --rev");
    assert_eq!(opts, ["--reverify-after"]);
    let formats = complete("regfsck du --format ''");
    assert_eq!(formats, ["table", "json", "csv"]);
    for shell in ["zsh", "fish"] {
        let s = gen(shell);
        for sub in [
            "check", "du", "gc", "repair", "undo", "ls", "prune", "purge",
        ] {
            assert!(s.contains(sub), "{shell}: {sub}");
        }
        assert!(
            s.contains("reverify-after") && s.contains("metrics"),
            "{shell}"
        );
    }
    if on_path("zsh") {
        let f = dir.path().join("_regfsck");
        std::fs::write(&f, gen("zsh")).unwrap();
        assert!(Command::new("zsh")
            .arg("-n")
            .arg(&f)
            .status()
            .unwrap()
            .success());
    }
}

/// The man pages (`regfsck man --out-dir`, what the package installs) cover every subcommand and
/// every option `--help` shows, rendered by the real man(1).
#[test]
fn man_pages_cover_every_subcommand_and_option() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_regfsck"))
        .args(["man", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let render = |page: &Path| -> String {
        if on_path("man") {
            let o = Command::new("man")
                .arg("-l")
                .arg(page)
                .env("MANWIDTH", "2000")
                .env("MAN_KEEP_FORMATTING", "")
                // Under the date-proof pass's libfaketime, man-db's seccomp sandbox kills its
                // pipeline; the rendering does not depend on the clock.
                .env_remove("LD_PRELOAD")
                .output()
                .unwrap();
            assert!(o.status.success(), "{o:?}");
            // Drop overstrike formatting (x\bx) and hyphenation marks.
            let t = String::from_utf8_lossy(&o.stdout).into_owned();
            let mut clean = String::new();
            let mut chars = t.chars().peekable();
            while let Some(c) = chars.next() {
                if chars.peek() == Some(&'\u{8}') {
                    chars.next();
                    continue;
                }
                clean.push(c);
            }
            clean.replace(['\u{2010}', '\u{2212}'], "-")
        } else {
            std::fs::read_to_string(page).unwrap().replace("\\-", "-")
        }
    };
    let cli = Cli::command();
    let mut pages = 0;
    let mut check = |cmd: &clap::Command, page_name: String| {
        let page = dir.path().join(format!("{page_name}.1"));
        assert!(page.is_file(), "no man page {page_name}.1");
        let text = render(&page);
        for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            let shown = match (a.get_long(), a.get_short()) {
                (Some(l), _) => format!("--{l}"),
                (None, Some(s)) => format!("-{s}"),
                (None, None) => a
                    .get_value_names()
                    .map(|v| v[0].to_string())
                    .unwrap_or_else(|| a.get_id().to_string().to_uppercase()),
            };
            assert!(text.contains(&shown), "{page_name}.1 lacks {shown}");
            if let Some(help) = a.get_help() {
                // The first words of the help text, as --help prints them.
                let words: String = help
                    .to_string()
                    .split_whitespace()
                    .take(4)
                    .collect::<Vec<_>>()
                    .join(" ");
                let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
                assert!(
                    flat.contains(&words),
                    "{page_name}.1 lacks the help of {shown}: {words}"
                );
            }
        }
        pages += 1;
    };
    check(&cli, "regfsck".into());
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        check(sub, format!("regfsck-{}", sub.get_name()));
        let main = render(&dir.path().join("regfsck.1"));
        assert!(
            main.contains(sub.get_name()),
            "regfsck.1 lacks {}",
            sub.get_name()
        );
    }
    assert_eq!(pages, 11);
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, pages, "a page for a hidden command, or one too many");
}
