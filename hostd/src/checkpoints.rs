//! `hostd submit --checkpoint SECONDS`: asking the node for a checkpoint of
//! the job every so often, and keeping the last complete one on disk for a
//! job that must continue elsewhere (`sion_app_mgr::checkpoint` is the
//! node's side and describes the image).
//!
//! The records of a checkpoint arrive in the job's stream after everything
//! the job did before it, so when its `End` arrives the job directory, the
//! open files, the output shown and the stdin handed out are exactly as the
//! checkpoint saw them; the caller records those then
//! ([`crate::fileserve::FileServer::checkpoint`]). A checkpoint being
//! received replaces the last one only once complete: a node lost mid-way
//! leaves the one before.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sion_app_mgr::checkpoint::encode_record;
use sion_app_mgr::job::CheckpointPart;

/// The checkpoints of one job.
pub struct Checkpoints {
    /// How often to ask; `None`: never (checkpoints still come when a
    /// node leaves the group).
    every: Option<Duration>,
    /// A private directory under the system's temporary directory for the
    /// images, made with the first one (removed when this is dropped).
    dir: PathBuf,
    /// When the last ask or checkpoint was, if any; counts from
    /// [`Checkpoints::run_started`] otherwise.
    since: Option<Instant>,
    /// An ask is outstanding (the node answers when the job can stop).
    asked: bool,
    /// The checkpoint being received.
    partial: Option<Partial>,
    /// The last complete one.
    last: Option<Image>,
    /// The node said the job cannot be checkpointed (and why).
    pub refused: Option<String>,
    /// Complete checkpoints received.
    pub taken: u64,
}

struct Partial {
    out: BufWriter<File>,
    path: PathBuf,
    records: u64,
    len: u64,
    started: Instant,
}

/// A complete checkpoint image on disk.
#[derive(Clone, Debug)]
pub struct Image {
    /// Its file.
    pub path: PathBuf,
    /// Its length in bytes.
    pub len: u64,
    /// Memory bytes in it.
    pub memory: u64,
    /// When it was complete.
    pub at: Instant,
    /// How long it took to arrive (first record to `End`).
    pub took: Duration,
    /// Its number (1 for the job's first checkpoint).
    pub number: u64,
}

impl Checkpoints {
    /// Checkpoints every `every` (`None`: only those a leaving node sends),
    /// to be kept in a new private directory.
    pub fn new(every: Option<Duration>) -> Checkpoints {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sion-ckpt-{}-{n}", std::process::id()));
        Checkpoints {
            every,
            dir,
            since: None,
            asked: false,
            partial: None,
            last: None,
            refused: None,
            taken: 0,
        }
    }

    /// A run of the job started (or continued elsewhere): the next ask is
    /// `every` from now, and a half-received checkpoint is dropped.
    pub fn run_started(&mut self) {
        self.since = Some(Instant::now());
        self.asked = false;
        self.partial = None;
    }

    /// Whether to ask the node for a checkpoint now (and, if so, counts the
    /// ask).
    pub fn due(&mut self) -> bool {
        if self.refused.is_some() || self.asked || self.partial.is_some() {
            return false;
        }
        let Some(every) = self.every else {
            return false;
        };
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() < every {
            return false;
        }
        self.asked = true;
        true
    }

    /// The last complete checkpoint.
    pub fn last(&self) -> Option<&Image> {
        self.last.as_ref()
    }

    /// Takes one record from the node. Returns the image once `End` made it
    /// complete (the caller records the job's state then).
    ///
    /// # Errors
    /// The image cannot be written, or the node sent records out of order
    /// or counts that do not match (the partial image is dropped; the last
    /// complete one stays).
    pub fn take(&mut self, part: CheckpointPart) -> Result<Option<Image>> {
        match part {
            CheckpointPart::Refused { reason } => {
                self.asked = false;
                self.refused = Some(reason);
                Ok(None)
            }
            CheckpointPart::Header(_) => {
                if !self.dir.exists() {
                    std::fs::DirBuilder::new()
                        .mode(0o700)
                        .create(&self.dir)
                        .with_context(|| {
                            format!("creating {} for the job's checkpoints", self.dir.display())
                        })?;
                }
                let path = self.dir.join(format!("ckpt-{}.part", self.taken + 1));
                let out = BufWriter::new(
                    File::create(&path)
                        .with_context(|| format!("writing the checkpoint {}", path.display()))?,
                );
                self.partial = Some(Partial {
                    out,
                    path,
                    records: 0,
                    len: 0,
                    started: Instant::now(),
                });
                self.append(&part)?;
                Ok(None)
            }
            CheckpointPart::Pages { .. } => {
                if self.partial.is_none() {
                    bail!("the node sent checkpoint pages without a header");
                }
                self.append(&part)?;
                Ok(None)
            }
            CheckpointPart::End { records, bytes } => {
                self.asked = false;
                self.since = Some(Instant::now());
                let Some(mut p) = self.partial.take() else {
                    bail!("the node ended a checkpoint it had not begun");
                };
                if p.records != records {
                    let _ = std::fs::remove_file(&p.path);
                    bail!(
                        "the node's checkpoint has {} records but says {records}",
                        p.records
                    );
                }
                p.out
                    .flush()
                    .with_context(|| format!("writing the checkpoint {}", p.path.display()))?;
                drop(p.out);
                self.append_end(&p.path, records, bytes)?;
                let path = self.dir.join("last");
                std::fs::rename(&p.path, &path)
                    .with_context(|| format!("keeping the checkpoint {}", path.display()))?;
                self.taken += 1;
                let end_len = encode_record(&CheckpointPart::End { records, bytes })
                    .map_or(0, |r| r.len() as u64);
                let image = Image {
                    path,
                    len: p.len + end_len,
                    memory: bytes,
                    at: Instant::now(),
                    took: p.started.elapsed(),
                    number: self.taken,
                };
                self.last = Some(image.clone());
                Ok(Some(image))
            }
        }
    }

    fn append(&mut self, part: &CheckpointPart) -> Result<()> {
        let Some(p) = self.partial.as_mut() else {
            return Ok(());
        };
        let record =
            encode_record(part).context("the node sent a checkpoint record too large to keep")?;
        p.out
            .write_all(&record)
            .with_context(|| format!("writing the checkpoint {}", p.path.display()))?;
        p.records += 1;
        p.len += record.len() as u64;
        Ok(())
    }

    fn append_end(&self, path: &std::path::Path, records: u64, bytes: u64) -> Result<()> {
        let record = encode_record(&CheckpointPart::End { records, bytes })
            .context("encoding the checkpoint's end")?;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("writing the checkpoint {}", path.display()))?;
        f.write_all(&record)
            .with_context(|| format!("writing the checkpoint {}", path.display()))?;
        Ok(())
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> CheckpointPart {
        CheckpointPart::Header(vec![1, 2, 3])
    }

    fn pages(addr: u64) -> CheckpointPart {
        CheckpointPart::Pages {
            addr,
            data: vec![7; 4096],
        }
    }

    /// A complete checkpoint is the records in order, End last; the image
    /// file holds exactly their encodings.
    #[test]
    fn a_complete_checkpoint_is_kept_as_its_records() {
        let mut c = Checkpoints::new(Some(Duration::ZERO));
        assert!(c.due());
        assert!(!c.due(), "one ask at a time");
        assert!(c.take(header()).unwrap().is_none());
        assert!(c.take(pages(0x1000)).unwrap().is_none());
        let img = c
            .take(CheckpointPart::End {
                records: 2,
                bytes: 4096,
            })
            .unwrap()
            .unwrap();
        let mut want = Vec::new();
        for part in [
            header(),
            pages(0x1000),
            CheckpointPart::End {
                records: 2,
                bytes: 4096,
            },
        ] {
            want.extend(encode_record(&part).unwrap());
        }
        let got = std::fs::read(&img.path).unwrap();
        assert_eq!(got, want);
        assert_eq!(img.len, want.len() as u64);
        assert_eq!((img.number, img.memory), (1, 4096));
        assert!(c.due(), "asks again once one is complete");
    }

    /// A checkpoint cut off (the node lost mid-way, or counts that differ)
    /// leaves the last complete one.
    #[test]
    fn an_incomplete_checkpoint_leaves_the_last_one() {
        let mut c = Checkpoints::new(Some(Duration::ZERO));
        c.take(header()).unwrap();
        let first = c
            .take(CheckpointPart::End {
                records: 1,
                bytes: 0,
            })
            .unwrap()
            .unwrap();
        let before = std::fs::read(&first.path).unwrap();
        c.take(header()).unwrap();
        c.take(pages(0x2000)).unwrap();
        assert!(
            c.take(CheckpointPart::End {
                records: 5,
                bytes: 4096
            })
            .is_err()
        );
        assert_eq!(c.last().unwrap().number, 1);
        assert_eq!(std::fs::read(&c.last().unwrap().path).unwrap(), before);
        c.take(header()).unwrap();
        c.run_started();
        assert_eq!(c.last().unwrap().number, 1);
        assert!(c.take(pages(0x3000)).is_err(), "pages without a header");
    }

    /// A refusal stops the asking, with its reason kept.
    #[test]
    fn a_refusal_stops_the_asking() {
        let mut c = Checkpoints::new(Some(Duration::ZERO));
        assert!(c.due());
        c.take(CheckpointPart::Refused {
            reason: "the job has 2 processes".into(),
        })
        .unwrap();
        assert_eq!(c.refused.as_deref(), Some("the job has 2 processes"));
        assert!(!c.due());
    }
}
