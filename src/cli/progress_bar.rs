//! Terminal progress bars (indicatif) on stderr; hidden when stderr is not a terminal or `--quiet`.

use crate::progress::{Bar, Progress, Unit};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Terminal;

struct IndicatifBar(ProgressBar);

impl Bar for IndicatifBar {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Terminal {
    fn bar(&self, phase: &str, total: u64, unit: Unit) -> Box<dyn Bar> {
        let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let template = match unit {
            Unit::Bytes => "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            Unit::Items => "{prefix:>8} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_prefix(phase.to_string());
        Box::new(IndicatifBar(pb))
    }

    fn counter(&self, phase: &str) -> Box<dyn Bar> {
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {prefix:>8}: {human_pos} objects found, {per_sec}, {elapsed}",
        ) {
            pb.set_style(style);
        }
        pb.set_prefix(phase.to_string());
        pb.enable_steady_tick(std::time::Duration::from_millis(200));
        Box::new(IndicatifBar(pb))
    }
}

/// The progress factory for this run.
pub fn for_run(quiet: bool) -> Box<dyn Progress> {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        Box::new(crate::progress::Silent)
    } else {
        Box::new(Terminal)
    }
}
