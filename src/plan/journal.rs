//! The run journal: JSON lines, each fsynced before the step it announces (or after the step it
//! confirms) so that a crash at any point leaves a journal that resume and undo can trust. It also
//! records what each step leaves behind, so that undo can tell regfsck's own writes from newer
//! ones and never overwrites the latter.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

/// What a path held: enough to tell "the file regfsck left" from anything written after it.
/// Every write changes the mtime (in place or by a rename of a new file), and content is hashed
/// for small files, i.e. every link. The inode is recorded but not compared: a store restored
/// from a backup or moved to another disk keeps mtimes but not inodes, and is not a newer write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    /// file, dir, symlink or other.
    pub kind: String,
    pub size: u64,
    pub ino: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    /// sha256 of the content (files up to `HASHED_UP_TO` bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The object's ETag (object storage, where `kind` is `object` and there is no inode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// Files up to this size are identified by content too.
pub const HASHED_UP_TO: u64 = 64 * 1024;

impl FileId {
    /// The same object, unchanged: kind, size and mtime agree, and the content where both sides
    /// hashed it.
    pub fn same(&self, other: &FileId) -> bool {
        self.kind == other.kind
            && self.size == other.size
            && self.mtime == other.mtime
            && self.mtime_nsec == other.mtime_nsec
            && match (&self.sha256, &other.sha256) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
            && match (&self.etag, &other.etag) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// How many actions ended each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    #[serde(default)]
    pub applied: usize,
    #[serde(default)]
    pub skipped: usize,
    #[serde(default)]
    pub refused: usize,
    #[serde(default)]
    pub failed: usize,
}

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
    /// What action `i` leaves at `path`, written before that object becomes visible there (a
    /// link's staged file before its rename, a blob before its move). A step redone on resume
    /// writes it again; the last one counts.
    Leaves {
        i: usize,
        path: String,
        id: FileId,
    },
    Done {
        i: usize,
    },
    /// Not executed now; nothing changed. `eligible_at`: when the grace window lets it run.
    Skip {
        i: usize,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        eligible_at: Option<i64>,
    },
    /// Not executed because it would be unsafe (its evidence could not be read, an unsafe path).
    Refuse {
        i: usize,
        reason: String,
    },
    /// Announced, then failed part-way or entirely; undo still reverses whatever it did.
    Fail {
        i: usize,
        error: String,
    },
    End {
        #[serde(flatten)]
        counts: Counts,
    },
    UndoIntent {
        i: usize,
    },
    UndoDone {
        i: usize,
    },
    /// Undo left step `i` as it is: what is there now is not what the run left (a newer write).
    UndoKeep {
        i: usize,
        reason: String,
    },
    /// Every step reversed.
    Undone,
    /// An undo attempt ended with `kept` steps not reversed; a later undo retries them.
    UndoPartial {
        kept: usize,
    },
    /// About to delete the run's quarantined files (`bytes` of them): from here on nothing of
    /// the run can be undone.
    Purge {
        bytes: u64,
    },
    /// The quarantined files are gone.
    Purged,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_old_end_lines_still_read() {
        let end: Record = serde_json::from_str(r#"{"op":"end"}"#).unwrap();
        assert_eq!(
            end,
            Record::End {
                counts: Counts::default()
            }
        );
        let r = Record::End {
            counts: Counts {
                applied: 2,
                skipped: 1,
                refused: 3,
                failed: 0,
            },
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains(r#""refused":3"#), "{line}");
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
        let skip: Record = serde_json::from_str(r#"{"op":"skip","i":4,"reason":"x"}"#).unwrap();
        assert_eq!(
            skip,
            Record::Skip {
                i: 4,
                reason: "x".into(),
                eligible_at: None
            }
        );
    }

    #[test]
    fn file_ids_differ_on_any_change() {
        let a = FileId {
            kind: "file".into(),
            size: 71,
            ino: 9,
            mtime: 100,
            mtime_nsec: 5,
            sha256: Some("ab".into()),
            etag: None,
        };
        assert!(a.same(&a.clone()));
        assert!(
            a.same(&FileId {
                ino: 10,
                ..a.clone()
            }),
            "a copy with its mtime is the same"
        );
        for b in [
            FileId {
                mtime_nsec: 6,
                ..a.clone()
            },
            FileId {
                size: 70,
                ..a.clone()
            },
            FileId {
                sha256: Some("cd".into()),
                ..a.clone()
            },
            FileId {
                kind: "dir".into(),
                ..a.clone()
            },
        ] {
            assert!(!a.same(&b), "{b:?}");
        }
        let o = FileId {
            etag: Some("e1".into()),
            ..a.clone()
        };
        assert!(!o.same(&FileId {
            etag: Some("e2".into()),
            ..o.clone()
        }));
    }
}
