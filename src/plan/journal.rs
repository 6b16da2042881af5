//! The run journal: JSON lines, each fsynced before the step it announces (or after the step it
//! confirms) so that a crash at any point leaves a journal that resume and undo can trust.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Record {
    Begin {
        run: String,
        actions: usize,
    },
    /// About to execute action `i`: the folders it will create (outermost first) and whether an
    /// existing entry at its path is moved to the quarantine first.
    Intent {
        i: usize,
        creates: Vec<String>,
        displaces: bool,
    },
    Done {
        i: usize,
    },
    Skip {
        i: usize,
        reason: String,
    },
    End,
    UndoIntent {
        i: usize,
    },
    UndoDone {
        i: usize,
    },
    Undone,
}

pub struct Journal {
    file: File,
}

impl Journal {
    pub fn open(path: &Path) -> std::io::Result<Journal> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Journal { file })
    }

    pub fn write(&mut self, r: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_string(r).map_err(std::io::Error::other)?;
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.file.sync_all()
    }
}

/// Read a journal; a torn last line (crash mid-write) is ignored, as it was never fsynced whole.
pub fn read(path: &Path) -> std::io::Result<Vec<Record>> {
    let f = File::open(path)?;
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line?;
        match serde_json::from_str(&line) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
    }
    Ok(out)
}
