//! `regfsck completions SHELL` and the hidden `regfsck man`: shell completions and man pages
//! generated from the clap definition itself, so that they cannot drift from `--help`.

use super::{Cli, Failure};
use clap::{Args, CommandFactory};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for (e.g. `regfsck completions bash > /etc/bash_completion.d/regfsck`).
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write every page (regfsck.1, regfsck-check.1, …) into this folder instead of printing one.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// The subcommand whose page to print (default: the main page).
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

pub fn completions(args: CompletionsArgs) -> Result<i32, Failure> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "regfsck", &mut out);
    super::print_stdout(&String::from_utf8_lossy(&out));
    Ok(crate::report::exit::OK)
}

pub fn man(args: ManArgs) -> Result<i32, Failure> {
    let cmd = Cli::command();
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir)
            .and_then(|_| clap_mangen::generate_to(cmd, dir))
            .map_err(|e| Failure::Operational(format!("cannot write {}: {e}", dir.display())))?;
        return Ok(crate::report::exit::OK);
    }
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let page = match &args.command {
        None => cmd,
        Some(name) => cmd
            .get_subcommands()
            .find(|s| s.get_name() == name && !s.is_hide_set())
            .cloned()
            .ok_or_else(|| Failure::Usage(format!("no subcommand {name:?}")))?,
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(|e| Failure::Operational(e.to_string()))?;
    super::print_stdout(&String::from_utf8_lossy(&out));
    Ok(crate::report::exit::OK)
}
