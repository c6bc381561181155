//! Syslog transports to the SOC: UDP (one datagram per event), TCP and TLS (RFC 6587/5425
//! octet counting, `LEN SP MSG`), each run by a tokio task fed by an in-memory intake of
//! framed lines, so that [`SyslogSink::record`] never waits and never does I/O.
//!
//! Delivery is at least once, in recording order as far as one sink goes:
//! * recording threads append their lines to the intake (bounded in events); the task takes
//!   all of it at once, after a short linger, and sends it as one write; a long backlog is
//!   moved by the task to the spool (below) in one go. Should the task be stuck in a write
//!   while the intake reaches its bound, the recording thread that finds it full moves it to
//!   the spool instead;
//! * a write that makes no progress for `write_timeout_ms` (a receiver that accepts and stops
//!   reading) counts as a broken connection: its lines are sent again after the reconnect,
//!   before the spool, or spooled at shutdown;
//! * when the receiver is down, formatted lines go to a spool directory of append-only segment
//!   files, bounded in bytes; they are sent first when the receiver is back, and the files are
//!   removed once sent. A spool left by a previous run is sent too.
//! * lines beyond the bound are dropped and counted (and logged once per spell); the count is
//!   sent as an `AUDIT_DROPPED` event once the spool has drained. Until then it is also kept in
//!   the spool directory (`dropped.count`), so that a restart does not forget it.
//! * order: lines go out in recording order, except that a batch the task held while a
//!   recording thread spilled a full intake and whose connect then failed is spooled behind
//!   those newer lines. Each line carries its event's time and id.
//! * TCP and TLS keep the last `replay_bytes` of sent lines and send them again after a broken
//!   connection, since a write that "succeeded" may have died in a kernel buffer or in the
//!   receiver's queue. The receiver drops the duplicates by event id.
//! * reconnects use exponential backoff with full jitter, capped.
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;
use tokio_rustls::rustls;

use crate::event::AuditEvent;
use crate::syslog::{Formatter, Scratch};

/// One syslog receiver.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogTarget {
    /// `udp://host:port`, `tcp://host:port` or `tls://host:port`.
    pub url: String,
    /// PEM file of the CA(s) the TLS receiver's certificate must chain to (required for `tls`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// First reconnect delay bound, in milliseconds (default 100).
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// Largest reconnect delay, in milliseconds (default 30 000).
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// How many bytes of recently sent lines are sent again after a broken TCP/TLS connection
    /// (default 4 MiB).
    #[serde(default = "default_replay_bytes")]
    pub replay_bytes: u64,
    /// Longest a write to the receiver may go without progress, in milliseconds (default
    /// 10 000): a receiver that accepts the connection and stops reading (a full queue, a hung
    /// host) is then treated as down, its lines kept and spooled, and reconnected with backoff.
    #[serde(default = "default_write_timeout_ms")]
    pub write_timeout_ms: u64,
}

fn default_backoff_initial_ms() -> u64 {
    100
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_replay_bytes() -> u64 {
    4 << 20
}
fn default_write_timeout_ms() -> u64 {
    10_000
}

impl SyslogTarget {
    /// A target with the default backoff and replay settings.
    pub fn new(url: impl Into<String>) -> SyslogTarget {
        SyslogTarget {
            url: url.into(),
            ca_file: None,
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            replay_bytes: default_replay_bytes(),
            write_timeout_ms: default_write_timeout_ms(),
        }
    }
}

/// Why a sink could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("bad syslog URL `{0}`: expected udp://host:port, tcp://host:port or tls://host:port")]
    BadUrl(String),
    #[error("syslog target {0}: tls needs ca_file")]
    NoCa(String),
    #[error("syslog target {url}: CA file {path}: {error}")]
    Ca {
        url: String,
        path: PathBuf,
        error: String,
    },
    #[error("spool directory {path}: {error}")]
    Spool {
        path: PathBuf,
        error: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Udp,
    Tcp,
    Tls,
}

#[derive(Debug, Clone)]
struct Endpoint {
    scheme: Scheme,
    host: String,
    port: u16,
}

fn parse_url(url: &str) -> Result<Endpoint, SinkError> {
    let bad = || SinkError::BadUrl(url.to_owned());
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let scheme = match scheme {
        "udp" => Scheme::Udp,
        "tcp" => Scheme::Tcp,
        "tls" => Scheme::Tls,
        _ => return Err(bad()),
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    let port: u16 = port.parse().map_err(|_| bad())?;
    Ok(Endpoint {
        scheme,
        host: host.to_owned(),
        port,
    })
}

/// Counters of one sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// The target URL.
    pub target: String,
    /// Lines written to the receiver (replays included).
    pub sent: u64,
    /// Lines that went to the spool.
    pub spooled: u64,
    /// Lines dropped: the spool was full, could not be written or was found damaged, or a line
    /// was too long for a UDP datagram.
    pub dropped: u64,
    /// Connections made after the first one.
    pub reconnects: u64,
    /// Lines sent again after a broken connection.
    pub replayed: u64,
    /// Bytes now in the spool.
    pub spool_bytes: u64,
    pub connected: bool,
}

/// Exponential backoff with full jitter: the n-th delay is uniform in
/// `[0, min(max, initial × 2ⁿ)]`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(0..=ms))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

// ---------------------------------------------------------------------------------------------
// Spool

/// Append-only segment files `seg-<n>.log`, one formatted line per text line.
///
/// One process owns a spool directory at a time (an exclusive lock on its `.lock` file, held
/// while the spool is open): it alone sends and removes segments. Another process that opens
/// it meanwhile (a `qaqpa keys …` command beside the running gateway) is a guest: its lines
/// go to a file of its own, `guest-<pid>-<uuid>.part`, locked while the guest has it open,
/// which it publishes as a new segment when it stops; the owner adopts published segments
/// ([`Spool::adopt`]) and takes over the files of guests that died (their lock is free). So no
/// segment is ever written by two processes, nor removed under one still writing it, and a
/// guest's file is never taken from a guest still alive, whenever the owner starts.
struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_max: u64,
    /// (index, size in bytes), oldest first.
    segments: VecDeque<(u64, u64)>,
    writer: Option<(u64, File)>,
    /// Read offset in the oldest segment.
    read_pos: u64,
    bytes: u64,
    next_index: u64,
    role: Role,
}

enum Role {
    /// Holds the directory's lock (released when the file closes).
    Owner { _lock: File },
    /// Another process owns the directory: lines go to `part`, published when stopping.
    Guest { part: PathBuf, file: Option<File> },
}

/// Lines bound for a spool file, each with its newline, written in one piece so that a crash
/// leaves at most one part line.
#[derive(Default)]
struct Chunk {
    text: Vec<u8>,
    lines: u64,
}

impl Chunk {
    fn bytes(&self) -> u64 {
        self.text.len() as u64
    }
}

/// How much of the lines given [`Spool::append_lines`] took.
#[derive(Default)]
struct Appended {
    spooled: u64,
    /// Lines the spool's bound left out.
    full: u64,
    /// The first write error, and how many lines failed to be written.
    failed: Option<(std::io::Error, u64)>,
}

impl Appended {
    fn fail(&mut self, e: std::io::Error, lines: u64) {
        match &mut self.failed {
            Some((_, n)) => *n += lines,
            None => self.failed = Some((e, lines)),
        }
    }
}

/// Bytes of lines written to a spool file at once.
const SPOOL_CHUNK: usize = 256 << 10;

/// The index of a segment file's name, `seg-<n>.log`.
fn segment_index(name: &std::ffi::OsStr) -> Option<u64> {
    name.to_str()
        .and_then(|n| n.strip_prefix("seg-"))
        .and_then(|n| n.strip_suffix(".log"))
        .and_then(|n| n.parse::<u64>().ok())
}

/// The segments in `dir`, (index, size), ordered by index.
fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, u64)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(index) = segment_index(&entry.file_name()) {
            segments.push((index, entry.metadata()?.len()));
        }
    }
    segments.sort();
    Ok(segments)
}

/// A guest's file: made under a name an owner does not look at, locked (for as long as the
/// guest has it open, which tells an owner the guest lives), then renamed to `part`.
fn open_guest_file(part: &Path) -> std::io::Result<File> {
    let making = part.with_extension("making");
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&making)?;
    let locked = file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::Error(e) => e,
        std::fs::TryLockError::WouldBlock => std::io::Error::other("a new guest file is locked"),
    });
    if let Err(e) = locked.and_then(|()| std::fs::rename(&making, part)) {
        let _ = std::fs::remove_file(&making);
        return Err(e);
    }
    Ok(file)
}

/// Owner: publishes as segments the files of guests that died before publishing theirs (a
/// crash, a kill), and removes them. A guest alive holds its file's lock: its file is left to
/// it. Files a guest was still making when it died (`.making`) hold no line and are removed.
fn take_over_dead_guests(dir: &Path) -> std::io::Result<usize> {
    let mut taken = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let making = name.ends_with(".making");
        if !name.starts_with("guest-") || !(making || name.ends_with(".part")) {
            continue;
        }
        let file = match File::open(&path) {
            Ok(file) => file,
            // Published (or removed) by its guest meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        // Dead, or it published and removed its file between our open and our lock: then
        // the path is gone and there is nothing to take.
        let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
        // A guest that died between publishing its file and removing it left a second name
        // of a segment: only the name goes.
        let meta = file.metadata()?;
        if !making && meta.len() > 0 && meta.nlink() == 1 {
            match publish_as_segment(dir, &path) {
                Err(e) if gone(&e) => continue,
                other => {
                    let segment = other?;
                    tracing::warn!(file = %path.display(), segment = %segment.display(), "audit spool: a process that added lines to it ended without publishing them; they are sent from here");
                }
            }
        }
        match std::fs::remove_file(&path) {
            Err(e) if !gone(&e) => return Err(e),
            _ => taken += 1,
        }
    }
    Ok(taken)
}

/// Links `file` into `dir` as the first free segment after the last one there; the caller
/// removes `file`. Never takes the name of an existing segment.
fn publish_as_segment(dir: &Path, file: &Path) -> std::io::Result<PathBuf> {
    let mut index = list_segments(dir)?.last().map_or(1, |(i, _)| i + 1);
    loop {
        let target = dir.join(format!("seg-{index:012}.log"));
        match std::fs::hard_link(file, &target) {
            Ok(()) => return Ok(target),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => index += 1,
            Err(e) => return Err(e),
        }
    }
}

impl Spool {
    fn open(dir: PathBuf, max_bytes: u64) -> std::io::Result<Spool> {
        std::fs::create_dir_all(&dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".lock"))?;
        let role = match lock.try_lock() {
            Ok(()) => {
                take_over_dead_guests(&dir)?;
                Role::Owner { _lock: lock }
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::info!(dir = %dir.display(), "audit spool in use by another process (the gateway): this one only adds its own lines to it");
                // Unique even where a dead guest's file under a reused pid still waits.
                let part = dir.join(format!(
                    "guest-{}-{}.part",
                    std::process::id(),
                    uuid::Uuid::now_v7().simple()
                ));
                return Ok(Spool {
                    dir,
                    max_bytes,
                    segment_max: u64::MAX,
                    segments: VecDeque::new(),
                    writer: None,
                    read_pos: 0,
                    bytes: 0,
                    next_index: 1,
                    role: Role::Guest { part, file: None },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        };
        let segments = list_segments(&dir)?;
        let next_index = segments.last().map(|(i, _)| i + 1).unwrap_or(1);
        let bytes = segments.iter().map(|(_, s)| s).sum();
        Ok(Spool {
            dir,
            max_bytes,
            segment_max: (max_bytes / 4).clamp(4096, 4 << 20),
            segments: segments.into(),
            writer: None,
            read_pos: 0,
            bytes,
            next_index,
            role,
        })
    }

    /// Owner: takes in the segments guests published since it last looked, after its own.
    /// Returns how many.
    fn adopt(&mut self) -> std::io::Result<usize> {
        if !matches!(self.role, Role::Owner { .. }) {
            return Ok(0);
        }
        take_over_dead_guests(&self.dir)?;
        let known: std::collections::HashSet<u64> = self.segments.iter().map(|&(i, _)| i).collect();
        let mut adopted = 0;
        for (index, size) in list_segments(&self.dir)? {
            if known.contains(&index) || self.writer.as_ref().is_some_and(|(w, _)| *w == index) {
                continue;
            }
            self.segments.push_back((index, size));
            self.bytes += size;
            self.next_index = self.next_index.max(index + 1);
            adopted += 1;
        }
        Ok(adopted)
    }

    /// Guest: publishes its lines as a segment for the owner to send. Owner: nothing to do.
    fn publish(&mut self) -> std::io::Result<()> {
        let Role::Guest { part, file } = &mut self.role else {
            return Ok(());
        };
        if file.is_none() {
            return Ok(());
        }
        // Published and removed while its lock is held, so that an owner never takes it over
        // as a dead guest's meanwhile; the lock goes with the file.
        publish_as_segment(&self.dir, part)?;
        std::fs::remove_file(&*part)?;
        *file = None;
        self.bytes = 0;
        Ok(())
    }

    fn path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("seg-{index:012}.log"))
    }

    /// The file holding the count of dropped lines not reported to the receiver yet, so that a
    /// restart before the receiver is back does not forget them.
    fn drops_path(&self) -> PathBuf {
        self.dir.join("dropped.count")
    }

    /// The unreported drops a previous run left (0 when none, or the file cannot be read: then
    /// logged).
    fn load_drops(&self) -> u64 {
        if matches!(self.role, Role::Guest { .. }) {
            return 0;
        }
        match std::fs::read_to_string(self.drops_path()) {
            Ok(text) => text.trim().parse().unwrap_or_else(|_| {
                tracing::error!(path = %self.drops_path().display(), "unreadable count of dropped audit lines; taken as 1");
                1
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => {
                tracing::error!(path = %self.drops_path().display(), error = %e, "count of dropped audit lines cannot be read; taken as 1");
                1
            }
        }
    }

    /// Writes the unreported drops (written whole, then renamed into place); 0 removes the file.
    fn save_drops(&self, count: u64) -> std::io::Result<()> {
        // A guest's drops are logged when it stops; the file is the owner's.
        if matches!(self.role, Role::Guest { .. }) {
            return Ok(());
        }
        let path = self.drops_path();
        if count == 0 {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        std::fs::create_dir_all(&self.dir)?;
        let part = self.dir.join("dropped.count.part");
        std::fs::write(&part, format!("{count}\n"))?;
        std::fs::rename(&part, &path)
    }

    fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Appends one line; `Ok(false)` when the bound does not allow it.
    #[cfg(test)]
    fn append(&mut self, line: &str) -> std::io::Result<bool> {
        let appended = self.append_lines([line]);
        match appended.failed {
            Some((e, _)) => Err(e),
            None => Ok(appended.spooled == 1),
        }
    }

    /// Appends lines in order, those the bound allows, written a chunk of lines at a time (a
    /// spool taking a stuck task's whole intake writes tens of thousands of lines): each
    /// chunk goes in one write, within one segment.
    fn append_lines<'l>(&mut self, lines: impl IntoIterator<Item = &'l str>) -> Appended {
        let mut chunk = Chunk::default();
        let mut out = Appended::default();
        for line in lines {
            let len = line.len() as u64 + 1;
            if self.bytes + chunk.bytes() + len > self.max_bytes {
                out.full += 1;
                continue;
            }
            if let Role::Owner { .. } = self.role {
                let size = match (&self.writer, self.segments.back()) {
                    (Some((wi, _)), Some((bi, size))) if wi == bi => Some(*size),
                    _ => None,
                };
                let fits = size.is_some_and(|size| {
                    size + chunk.bytes() == 0 || size + chunk.bytes() + len <= self.segment_max
                });
                if !fits {
                    self.write_chunk(&mut chunk, &mut out);
                    if let Err(e) = self.start_segment() {
                        out.fail(e, 1);
                        continue;
                    }
                }
            }
            chunk.text.extend_from_slice(line.as_bytes());
            chunk.text.push(b'\n');
            chunk.lines += 1;
            if chunk.text.len() >= SPOOL_CHUNK {
                self.write_chunk(&mut chunk, &mut out);
            }
        }
        self.write_chunk(&mut chunk, &mut out);
        out
    }

    /// Owner: opens a fresh segment after the last one for the lines to come.
    fn start_segment(&mut self) -> std::io::Result<()> {
        // A fresh file, never one a guest published meanwhile under the next index (that one
        // is adopted later).
        let (index, file) = loop {
            let index = self.next_index;
            self.next_index += 1;
            let path = self.path(index);
            let open = || OpenOptions::new().create_new(true).append(true).open(&path);
            // A directory removed from outside (a temp cleaner, an operator) is made again.
            match open() {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(&self.dir)?;
                    break (index, open()?);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                opened => break (index, opened?),
            }
        };
        self.writer = Some((index, file));
        self.segments.push_back((index, 0));
        Ok(())
    }

    /// Writes `chunk` (whole lines) to the guest's file or the owner's open segment, in one
    /// write, and empties it; counts its lines spooled or failed.
    fn write_chunk(&mut self, chunk: &mut Chunk, out: &mut Appended) {
        if chunk.lines == 0 {
            return;
        }
        let (lines, len) = (chunk.lines, chunk.bytes());
        let written = match &mut self.role {
            Role::Guest { part, file } => {
                let opened = match file {
                    Some(file) => Ok(file),
                    None => std::fs::create_dir_all(&self.dir)
                        .and_then(|()| open_guest_file(part))
                        .map(|f| file.insert(f)),
                };
                opened.and_then(|file| file.write_all(&chunk.text))
            }
            Role::Owner { .. } => match self.writer.as_mut() {
                None => Err(std::io::Error::other("no spool segment open")),
                Some((_, file)) => match file.write_all(&chunk.text) {
                    Ok(()) => {
                        if let Some((_, size)) = self.segments.back_mut() {
                            *size += len;
                        }
                        Ok(())
                    }
                    Err(e) => {
                        // A short write (a full disk) must not leave part of a line, which
                        // every later line would follow: cut the file back to its counted
                        // size. Where that fails too, the segment takes no more lines and
                        // counts what it holds, and reading skips the part line at its end.
                        let counted = self.segments.back().map_or(0, |&(_, size)| size);
                        if file.set_len(counted).is_err() {
                            let real = file.metadata().map_or(counted, |m| m.len().max(counted));
                            if let Some((_, size)) = self.segments.back_mut() {
                                self.bytes += real - *size;
                                *size = real;
                            }
                            self.writer = None;
                        }
                        Err(e)
                    }
                },
            },
        };
        match written {
            Ok(()) => {
                self.bytes += len;
                out.spooled += lines;
            }
            Err(e) => out.fail(e, lines),
        }
        chunk.text.clear();
        chunk.lines = 0;
    }

    /// Up to `max_bytes` of whole lines from the read position, without consuming them, the
    /// bytes they take in the file (to [`Spool::consume`] once sent), and the number of damaged
    /// lines among those bytes: the part of a line at a segment's end, left by a crash or a
    /// failed write, which is skipped rather than sent (and which would otherwise stop the
    /// spool from ever emptying).
    fn peek(&mut self, max_bytes: usize) -> std::io::Result<(Lines, u64, u64)> {
        let Some(&(index, size)) = self.segments.front() else {
            return Ok((Lines::default(), 0, 0));
        };
        if self.read_pos >= size {
            self.consume(0)?;
            return if self.is_empty() {
                Ok((Lines::default(), 0, 0))
            } else {
                self.peek(max_bytes)
            };
        }
        let left = size - self.read_pos;
        let mut file = match File::open(self.path(index)) {
            Ok(file) => file,
            // Removed from outside: its lines are lost, at least one; the rest of the spool
            // must not wait behind it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Lines::default(), left, 1));
            }
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(self.read_pos))?;
        let mut want = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(max_bytes.max(1 << 16));
        let mut buf = Vec::new();
        let mut got = 0;
        let complete = loop {
            buf.resize(want, 0);
            while got < want {
                let n = file.read(&mut buf[got..])?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            if let Some(last) = buf[..got].iter().rposition(|b| *b == b'\n') {
                break last + 1;
            }
            if got < want || got as u64 >= left {
                // The segment (or its file, shorter than counted) ends inside a line.
                break 0;
            }
            // One line longer than a read: read on to the segment's end.
            want = usize::try_from(left).unwrap_or(usize::MAX);
        };
        if complete == 0 {
            return Ok((Lines::default(), left, 1));
        }
        buf.truncate(complete);
        let text = match std::str::from_utf8(&buf) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(&buf),
        };
        let mut lines = Lines::with_capacity(text.len() / 512 + 1, text.len());
        // Blank lines are never written; one in a damaged file is skipped, not sent.
        for line in text.lines().filter(|l| !l.is_empty()) {
            lines.push(line);
        }
        Ok((lines, complete as u64, 0))
    }

    /// Marks `n` bytes as sent; deletes segments read to their end and resets when empty.
    fn consume(&mut self, n: u64) -> std::io::Result<()> {
        self.read_pos += n;
        while let Some(&(index, size)) = self.segments.front() {
            if self.read_pos < size {
                break;
            }
            self.segments.pop_front();
            if self.writer.as_ref().map(|(i, _)| *i) == Some(index) {
                self.writer = None;
            }
            self.bytes -= size.min(self.bytes);
            self.read_pos -= size;
            match std::fs::remove_file(self.path(index)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if self.segments.is_empty() {
            self.read_pos = 0;
            self.bytes = 0;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    fn is_stream(&self) -> bool {
        !matches!(self, Conn::Udp(_))
    }

    /// Whether a plain TCP peer has closed its end (the receiver never writes to us).
    fn peer_closed(&self) -> bool {
        if let Conn::Tcp(s) = self {
            let mut buf = [0u8; 256];
            matches!(s.try_read(&mut buf), Ok(0))
                || matches!(s.try_read(&mut buf), Err(e) if e.kind() != std::io::ErrorKind::WouldBlock)
        } else {
            false
        }
    }

    /// Writes every line; returns how many no UDP datagram can hold, which are left out
    /// (sending them would fail every time, and the lines behind them with them). Fails with
    /// `TimedOut` when a write makes no progress for `stall`: a slow receiver is waited for
    /// as long as it keeps reading, one that stopped reading is not.
    async fn write_lines(&mut self, lines: &Lines, stall: Duration) -> std::io::Result<u64> {
        match self {
            Conn::Udp(s) => {
                let mut too_long = 0;
                for line in lines.iter() {
                    if line.len() > MAX_DATAGRAM {
                        too_long += 1;
                        continue;
                    }
                    progress(stall, s.send(line.as_bytes())).await?;
                }
                Ok(too_long)
            }
            Conn::Tcp(s) => write_stream(s, lines.framed.as_bytes(), stall)
                .await
                .map(|()| 0),
            Conn::Tls(s) => write_stream(s, lines.framed.as_bytes(), stall)
                .await
                .map(|()| 0),
        }
    }
}

/// `io` unless it takes longer than `stall`, which is an error of kind `TimedOut`.
async fn progress<T>(
    stall: Duration,
    io: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    tokio::time::timeout(stall, io).await.unwrap_or_else(|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the receiver took nothing for {} ms (stopped reading?)",
                stall.as_millis()
            ),
        ))
    })
}

/// Writes all of `bytes`, each write allowed `stall` to take some of them.
async fn write_stream(
    s: &mut (impl tokio::io::AsyncWrite + Unpin),
    mut bytes: &[u8],
    stall: Duration,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let n = progress(stall, s.write(bytes)).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    progress(stall, s.flush()).await
}

/// Formatted lines packed into one buffer, each behind its RFC 6587 octet count
/// (`LEN SP MSG`): the buffer is the TCP/TLS frame as it goes on the wire, so a batch is
/// formatted, sent and kept for replay without a copy or an allocation per line. UDP and the
/// spool take the lines one by one.
#[derive(Debug, Default, Clone)]
struct Lines {
    framed: String,
    /// Per line: where its text starts and ends in `framed`.
    spans: Vec<(usize, usize)>,
    /// The lines' bytes, counts not included.
    text_bytes: u64,
}

impl Lines {
    fn with_capacity(lines: usize, bytes: usize) -> Lines {
        Lines {
            framed: String::with_capacity(bytes + 8 * lines),
            spans: Vec::with_capacity(lines),
            text_bytes: 0,
        }
    }

    fn push(&mut self, line: &str) {
        self.push_parts([line, ""]);
    }

    /// A line given as two parts written end to end (see [`Formatter::format_parts`]).
    fn push_parts(&mut self, parts: [&str; 2]) {
        let len = parts[0].len() + parts[1].len();
        crate::event::push_decimal_chars(&mut self.framed, len as u64);
        self.framed.push(' ');
        let start = self.framed.len();
        self.framed.push_str(parts[0]);
        self.framed.push_str(parts[1]);
        self.spans.push((start, self.framed.len()));
        self.text_bytes += len as u64;
    }

    /// Empties the buffer, keeping its memory for the next batch.
    fn clear(&mut self) {
        self.framed.clear();
        self.spans.clear();
        self.text_bytes = 0;
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.spans
            .iter()
            .map(|&(start, end)| &self.framed[start..end])
    }
}

/// The largest UDP payload over IPv4 (65,535 less the IP and UDP headers).
const MAX_DATAGRAM: usize = 65_507;
/// Room per line in a sink's first batch: a delivery's `EXCHANGE` line is ~1,100 bytes.
const LINE_BYTES_GUESS: usize = 1280;
/// Bounds of the room made per line from what was seen (a few very long lines must not make
/// every later batch buffer huge).
const MIN_LINE_GUESS: usize = 256;
const MAX_LINE_GUESS: usize = 4096;
/// Emptied batch buffers a sink keeps for reuse.
const SPARES: usize = 4;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

struct Connector {
    endpoint: Endpoint,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Connector {
    fn new(target: &SyslogTarget) -> Result<Connector, SinkError> {
        let endpoint = parse_url(&target.url)?;
        let tls = if endpoint.scheme == Scheme::Tls {
            let path = target
                .ca_file
                .clone()
                .ok_or_else(|| SinkError::NoCa(target.url.clone()))?;
            let ca_err = |error: String| SinkError::Ca {
                url: target.url.clone(),
                path: path.clone(),
                error,
            };
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(&path)
                .map_err(|e| ca_err(e.to_string()))?;
            for cert in certs {
                roots
                    .add(cert.map_err(|e| ca_err(e.to_string()))?)
                    .map_err(|e| ca_err(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca_err("no certificate in the file".into()));
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| ca_err(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Connector { endpoint, tls })
    }

    async fn connect(&self) -> std::io::Result<Conn> {
        let addr = (self.endpoint.host.as_str(), self.endpoint.port);
        let fut = async {
            match self.endpoint.scheme {
                Scheme::Udp => {
                    let remote = tokio::net::lookup_host(addr).await?.next().ok_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::NotFound, "host not found")
                    })?;
                    let local = if remote.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    };
                    let s = UdpSocket::bind(local).await?;
                    s.connect(remote).await?;
                    Ok(Conn::Udp(s))
                }
                Scheme::Tcp => {
                    let s = TcpStream::connect(addr).await?;
                    s.set_nodelay(true)?;
                    Ok(Conn::Tcp(s))
                }
                Scheme::Tls => {
                    let s = TcpStream::connect(addr).await?;
                    s.set_nodelay(true)?;
                    let name = rustls::pki_types::ServerName::try_from(self.endpoint.host.clone())
                        .map_err(|e| {
                            std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
                        })?;
                    let connector = self.tls.clone().ok_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no TLS config")
                    })?;
                    Ok(Conn::Tls(Box::new(connector.connect(name, s).await?)))
                }
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, fut)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
    }
}

// ---------------------------------------------------------------------------------------------
// The sink

enum Msg {
    /// Reply: whether everything recorded before is sent (nothing left in the spool).
    Flush(oneshot::Sender<bool>),
    Shutdown(Instant, oneshot::Sender<bool>),
}

/// Lines recorded and not yet taken by the task, in recording order, framed as they go on
/// the wire: the recording threads append to it under a short lock, the task swaps it for an
/// empty buffer and sends what it took as one batch.
struct Intake {
    lines: Lines,
    /// The task has stopped: callers spool directly.
    closed: bool,
}

struct Shared {
    url: String,
    formatter: Formatter,
    source: String,
    spool: Mutex<Spool>,
    intake: Mutex<Intake>,
    /// Lines arrived in an empty intake (wakes the waiting task).
    arrived: Notify,
    sent: AtomicU64,
    spooled: AtomicU64,
    dropped: AtomicU64,
    unreported_drops: AtomicU64,
    /// The spool's being full was logged and its drops not reported yet.
    spool_full_logged: AtomicBool,
    reconnects: AtomicU64,
    replayed: AtomicU64,
    connected: AtomicBool,
    /// Ends the task's linger at once (flush, shutdown).
    hurry: Notify,
}

impl Shared {
    fn spool(&self) -> MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn intake(&self) -> MutexGuard<'_, Intake> {
        self.intake.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn drop_events(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        self.unreported_drops.fetch_add(n, Ordering::Relaxed);
    }

    /// Spools lines (the spool lock held by the caller), counting the dropped ones.
    /// A write that fails is logged once per call, with how many lines failed: a spool that
    /// cannot be written fails for every line, and a line of log per line would flood it.
    fn spool_lines<'l>(&self, spool: &mut Spool, lines: impl IntoIterator<Item = &'l str>) {
        let Appended {
            spooled,
            full,
            failed,
        } = spool.append_lines(lines);
        self.spooled.fetch_add(spooled, Ordering::Relaxed);
        self.drop_events(full + failed.as_ref().map_or(0, |&(_, n)| n));
        if let Some((e, lines)) = failed {
            tracing::error!(target = %self.url, error = %e, lines, "audit spool write failed; the lines are dropped");
        }
        // Once per spell of a full spool (until its drops are reported), not once per line.
        if full > 0 && !self.spool_full_logged.swap(true, Ordering::Relaxed) {
            tracing::error!(
                target = %self.url,
                max_bytes = spool.max_bytes,
                lines = full,
                "audit spool full: lines are dropped and counted until the receiver is back; the count is reported to it then"
            );
        }
    }
}

/// One syslog receiver's sink: a handle to its task.
#[derive(Clone)]
pub struct SyslogSink {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Msg>,
    /// The target's [`SyslogTarget::write_timeout_ms`].
    write_timeout: Duration,
}

/// Lines held in memory for the task (its intake) before a recording thread moves them to the
/// spool itself: the task is stuck in a write (see [`SyslogTarget::write_timeout_ms`]).
pub const INTAKE_CAPACITY: usize = 73_728;
/// An intake longer than this when the task looks at it (recording outpaces the receiver) is
/// moved to the spool at once, in order, to be sent from there.
pub const SPILL_AT: usize = 8192;
/// Lines per batch when the task splits what it sends at shutdown.
const BATCH: usize = 256;
/// Longest an event waits for company before its batch is written: one write (and one wake-up
/// of the receiver) per batch instead of per event, at a delay the SOC does not notice.
const LINGER: Duration = Duration::from_millis(10);
/// Room for lines a fresh intake buffer starts with.
const MIN_INTAKE_LINES: usize = 64;
/// How often a spool's owner looks for segments other processes published (see [`Spool`]).
const ADOPT_EVERY: Duration = Duration::from_secs(5);
/// What a stopping sink's task is given, beyond its deadline and a stalled write's timeout,
/// to spool the lines it holds.
const SPOOL_GRACE: Duration = Duration::from_secs(5);

impl SyslogSink {
    /// Starts the sink's task (must be called inside a tokio runtime). The spool lives in
    /// `spool_dir/<target>`; a spool left there by a previous run is sent first.
    pub fn start(
        target: &SyslogTarget,
        formatter: Formatter,
        source: &str,
        spool_dir: &Path,
        spool_max_bytes: u64,
    ) -> Result<SyslogSink, SinkError> {
        let connector = Connector::new(target)?;
        let dir = spool_dir.join(
            target
                .url
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>(),
        );
        let spool = Spool::open(dir.clone(), spool_max_bytes)
            .map_err(|error| SinkError::Spool { path: dir, error })?;
        let left_unreported = spool.load_drops();
        let shared = Arc::new(Shared {
            url: target.url.clone(),
            formatter,
            source: source.to_owned(),
            spool: Mutex::new(spool),
            intake: Mutex::new(Intake {
                lines: Lines::with_capacity(MIN_INTAKE_LINES, MIN_INTAKE_LINES * LINE_BYTES_GUESS),
                closed: false,
            }),
            arrived: Notify::new(),
            sent: AtomicU64::new(0),
            spooled: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            unreported_drops: AtomicU64::new(left_unreported),
            spool_full_logged: AtomicBool::new(false),
            reconnects: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            hurry: Notify::new(),
        });
        let (tx, rx) = mpsc::channel(16);
        let write_timeout = Duration::from_millis(target.write_timeout_ms.max(1));
        let task = Task {
            shared: shared.clone(),
            connector,
            rx,
            conn: None,
            ever_connected: false,
            backoff: Backoff::new(
                Duration::from_millis(target.backoff_initial_ms),
                Duration::from_millis(target.backoff_max_ms.max(target.backoff_initial_ms)),
            ),
            next_attempt: Instant::now(),
            scratch: Scratch::default(),
            replay: VecDeque::new(),
            replay_bytes: 0,
            replay_max: target.replay_bytes,
            write_timeout,
            saved_drops: left_unreported,
            next_adopt: Instant::now() + ADOPT_EVERY,
            must_replay: false,
            replaying: VecDeque::new(),
            spares: Vec::with_capacity(SPARES),
            line_guess: LINE_BYTES_GUESS,
            last_batch: MIN_INTAKE_LINES,
        };
        tokio::spawn(task.run());
        Ok(SyslogSink {
            shared,
            tx,
            write_timeout,
        })
    }

    /// Hands an event's line to the sink without waiting and without I/O: it is appended to
    /// the task's intake. Only when the intake holds [`INTAKE_CAPACITY`] lines (the task is
    /// stuck) or after shutdown do lines go to the spool from here.
    ///
    /// `line` is the event's line as this sink's [`Formatter`] writes it: the [`crate::Auditor`]
    /// formats each event once, where it is recorded, and hands the same line to every sink,
    /// so the event itself never leaves the thread that made it.
    pub fn record(&self, line: &str) {
        self.record_parts([line, ""]);
    }

    /// [`SyslogSink::record`] of a line given as two parts written end to end, as
    /// [`Formatter::format_parts`] gives it: the parts go into the intake one after the other,
    /// so the MSG is not first copied behind the rest of the line.
    pub fn record_parts(&self, parts: [&str; 2]) {
        let mut intake = self.shared.intake();
        if intake.closed {
            drop(intake);
            let line = parts.concat();
            let mut spool = self.shared.spool();
            self.shared.spool_lines(&mut spool, [line.as_str()]);
            return;
        }
        if intake.lines.len() >= INTAKE_CAPACITY {
            // The task has not taken lines for a long while (a write to a receiver that
            // stopped reading, until its timeout): the intake goes to the spool from here,
            // oldest first, instead of lines being dropped.
            let held = std::mem::take(&mut intake.lines);
            intake.lines.push_parts(parts);
            drop(intake);
            let mut spool = self.shared.spool();
            self.shared.spool_lines(&mut spool, held.iter());
            return;
        }
        let first = intake.lines.is_empty();
        intake.lines.push_parts(parts);
        drop(intake);
        if first {
            self.shared.arrived.notify_one();
        }
    }

    /// How this sink formats events ([`SyslogSink::record`] takes lines it wrote).
    pub fn formatter(&self) -> &Formatter {
        &self.shared.formatter
    }

    /// Waits until everything recorded before is sent, or a send attempt failed (then it is in
    /// the spool). Returns whether everything was sent.
    pub async fn flush(&self) -> bool {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(reply)).await.is_err() {
            return false;
        }
        self.shared.hurry.notify_one();
        rx.await.unwrap_or(false)
    }

    /// Sends what can be sent before `deadline`, spools the rest and stops the task. Returns
    /// whether everything was sent. A task in a write that makes no progress answers once the
    /// write times out ([`SyslogTarget::write_timeout_ms`]); no later than that, and the time
    /// it takes to spool, is waited for.
    pub async fn shutdown(&self, deadline: Instant) -> bool {
        let (reply, rx) = oneshot::channel();
        let sent =
            tokio::time::timeout_at(deadline, self.tx.send(Msg::Shutdown(deadline, reply))).await;
        self.shared.hurry.notify_one();
        match sent {
            Ok(Ok(())) => {
                let answer_by = deadline.max(Instant::now()) + self.write_timeout + SPOOL_GRACE;
                match tokio::time::timeout_at(answer_by, rx).await {
                    Ok(answer) => answer.unwrap_or(false),
                    Err(_) => {
                        tracing::error!(target = %self.shared.url, "syslog sink did not stop in time; lines it held may not be spooled");
                        false
                    }
                }
            }
            _ => false,
        }
    }

    pub fn stats(&self) -> SinkStats {
        let s = &self.shared;
        SinkStats {
            target: s.url.clone(),
            sent: s.sent.load(Ordering::Relaxed),
            spooled: s.spooled.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            reconnects: s.reconnects.load(Ordering::Relaxed),
            replayed: s.replayed.load(Ordering::Relaxed),
            spool_bytes: s.spool().bytes,
            connected: s.connected.load(Ordering::Relaxed),
        }
    }
}

struct Task {
    shared: Arc<Shared>,
    connector: Connector,
    /// Flushes and the shutdown.
    rx: mpsc::Receiver<Msg>,
    conn: Option<Conn>,
    ever_connected: bool,
    backoff: Backoff,
    next_attempt: Instant,
    /// Buffers reused to format the task's own events.
    scratch: Scratch,
    /// Recently sent lines, sent again after a broken stream connection; at least
    /// `replay_max` bytes of them, in whole batches.
    replay: VecDeque<Lines>,
    replay_bytes: u64,
    replay_max: u64,
    /// Longest a write may go without progress ([`SyslogTarget::write_timeout_ms`]).
    write_timeout: Duration,
    /// The unreported drops as last written to the spool directory.
    saved_drops: u64,
    /// When to look for segments other processes published next.
    next_adopt: Instant,
    must_replay: bool,
    /// Batches of the replay under way not yet sent again: kept here, not in a local, so a
    /// shutdown whose deadline cuts the replay short spools them.
    replaying: VecDeque<Lines>,
    /// Buffers of batches let go (sent and out of the replay, or spooled), handed to the
    /// intake for the next batches: appending into memory that is already there saves a fresh
    /// buffer's regrowth and the page faults of touching it.
    spares: Vec<Lines>,
    /// Bytes per line (octet count included) to make room for: the last batch's average
    /// and a quarter more.
    line_guess: usize,
    /// Lines in the last batch taken from the intake.
    last_batch: usize,
}

impl Task {
    async fn run(mut self) {
        loop {
            self.adopt_if_due(false);
            self.spill_if_backlogged();
            if !self.spool_is_empty() && self.ensure_connected(false).await {
                self.drain_spool(None).await;
            }
            self.report_drops().await;
            self.save_drops();
            // Control messages first (a flush takes the intake itself), then the intake, then
            // wait for either, or for the next connection attempt while the spool holds lines.
            let msg = match self.rx.try_recv() {
                Ok(m) => Some(m),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if self.intake_len() > 0 {
                        // Sleep through the linger, then take what came: recording threads
                        // never wake the task one event at a time. A flush or shutdown cuts
                        // the sleep short.
                        tokio::select! {
                            _ = tokio::time::sleep(LINGER) => {}
                            _ = self.shared.hurry.notified() => {}
                        }
                        self.process_intake().await;
                        continue;
                    }
                    if self.spool_is_empty() {
                        tokio::select! {
                            m = self.rx.recv() => m,
                            _ = self.shared.arrived.notified() => continue,
                            _ = tokio::time::sleep_until(self.next_adopt) => continue,
                        }
                    } else {
                        tokio::select! {
                            m = self.rx.recv() => m,
                            _ = self.shared.arrived.notified() => continue,
                            _ = tokio::time::sleep_until(self.next_attempt) => continue,
                            _ = tokio::time::sleep_until(self.next_adopt) => continue,
                        }
                    }
                }
            };
            match msg {
                Some(Msg::Flush(reply)) => self.flush(reply).await,
                Some(Msg::Shutdown(deadline, reply)) => {
                    let all = self.shutdown(deadline).await;
                    // The task's hold on the spool (and its lock) goes before the answer:
                    // once every handle is gone too, another process may own the directory.
                    drop(self);
                    let _ = reply.send(all);
                    return;
                }
                None => {
                    // Every handle is gone: spool what is left in the intake and stop.
                    self.shutdown(Instant::now()).await;
                    return;
                }
            }
        }
    }

    fn spool_is_empty(&self) -> bool {
        self.shared.spool().is_empty()
    }

    /// Takes in segments other processes published into the spool directory, every
    /// [`ADOPT_EVERY`] (or `now`).
    fn adopt_if_due(&mut self, now: bool) {
        if !now && Instant::now() < self.next_adopt {
            return;
        }
        self.next_adopt = Instant::now() + ADOPT_EVERY;
        match self.shared.spool().adopt() {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(target = %self.shared.url, segments = n, "audit spool: took in lines another process left")
            }
            Err(e) => {
                tracing::error!(target = %self.shared.url, error = %e, "audit spool: cannot look for lines other processes left")
            }
        }
    }

    fn intake_len(&self) -> usize {
        self.shared.intake().lines.len()
    }

    /// Takes the intake's lines (leaving an empty buffer in their place) and sends or spools
    /// them as one batch; false if the intake was empty.
    async fn process_intake(&mut self) -> bool {
        let spare = self.empty_lines(self.last_batch.max(MIN_INTAKE_LINES));
        let lines = std::mem::replace(&mut self.shared.intake().lines, spare);
        if lines.is_empty() {
            self.recycle(lines);
            return false;
        }
        self.last_batch = lines.len();
        if let Some(per_line) = lines.framed.len().checked_div(lines.len()) {
            self.line_guess = (per_line + per_line / 4).clamp(MIN_LINE_GUESS, MAX_LINE_GUESS);
        }
        self.send_or_spool(lines).await;
        true
    }

    /// An empty batch buffer with room for `count` lines of the size seen lately: a spare
    /// one when one is big enough (its memory is already there), else a new one.
    fn empty_lines(&mut self, count: usize) -> Lines {
        let bytes = count * self.line_guess;
        match self.spares.pop() {
            Some(mut spare) if spare.framed.capacity() >= bytes => {
                spare.clear();
                spare
            }
            _ => Lines::with_capacity(count, bytes),
        }
    }

    /// Keeps a batch buffer that was let go for a later batch, up to [`SPARES`] of them.
    fn recycle(&mut self, lines: Lines) {
        if self.spares.len() < SPARES {
            self.spares.push(lines);
        }
    }

    fn format_into(&mut self, event: &AuditEvent, lines: &mut Lines) {
        lines.push(self.shared.formatter.format_with(event, &mut self.scratch));
    }

    /// When recording outpaces the receiver (an intake longer than [`SPILL_AT`]), moves the
    /// intake to the spool, in order, to be sent from there.
    fn spill_if_backlogged(&mut self) {
        let lines = {
            let mut intake = self.shared.intake();
            if intake.lines.len() <= SPILL_AT {
                return;
            }
            std::mem::take(&mut intake.lines)
        };
        let mut spool = self.shared.spool();
        self.shared.spool_lines(&mut spool, lines.iter());
    }

    async fn flush(&mut self, reply: oneshot::Sender<bool>) {
        // Everything recorded before this flush is in the intake, or was taken before.
        self.process_intake().await;
        self.adopt_if_due(true);
        if (!self.spool_is_empty() || self.must_replay) && self.ensure_connected(true).await {
            self.drain_spool(None).await;
        }
        self.report_drops().await;
        // Lines still to be sent again after a broken connection are not sent.
        let _ = reply.send(self.spool_is_empty() && !self.must_replay);
    }

    /// Sends the spool, then the intake, until `deadline`; spools what is left.
    async fn shutdown(&mut self, deadline: Instant) -> bool {
        self.rx.close();
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Flush(reply) | Msg::Shutdown(_, reply) => {
                    let _ = reply.send(false);
                }
            }
        }
        // From now on recording threads spool their lines themselves.
        let taken = {
            let mut intake = self.shared.intake();
            intake.closed = true;
            std::mem::take(&mut intake.lines)
        };
        // The rest in batches, each written whole or spooled whole.
        let mut rest = vec![Lines::default()];
        for line in taken.iter() {
            if rest.last().is_some_and(|l| l.len() >= BATCH) {
                rest.push(Lines::default());
            }
            if let Some(lines) = rest.last_mut() {
                lines.push(line);
            }
        }
        let mut sent_upto = 0usize;
        let work = async {
            if !self.spool_is_empty() && self.ensure_connected(true).await {
                self.drain_spool(Some(deadline)).await;
            }
            let any = rest.iter().any(|l| !l.is_empty());
            if self.spool_is_empty() && any && self.ensure_connected(true).await {
                for lines in rest.iter().filter(|l| !l.is_empty()) {
                    if !self.write(lines).await {
                        break;
                    }
                    sent_upto += 1;
                }
            }
            self.report_drops().await;
        };
        let _ = tokio::time::timeout_at(deadline, work).await;
        // Lines written on a connection that broke afterwards (which the receiver may not have
        // had) and lines of a replay cut short go to the spool first, to be sent again by the
        // next run: a receiver drops the duplicates by id.
        let mut unsent_before: Vec<Lines> = Vec::new();
        if self.must_replay {
            unsent_before.extend(std::mem::take(&mut self.replay));
        }
        unsent_before.extend(std::mem::take(&mut self.replaying));
        let mut spool = self.shared.spool();
        let unsent = rest.iter().filter(|l| !l.is_empty()).skip(sent_upto);
        self.shared.spool_lines(
            &mut spool,
            unsent_before.iter().chain(unsent).flat_map(|l| l.iter()),
        );
        let all_sent = spool.is_empty() && spool.bytes == 0;
        if let Err(e) = spool.publish() {
            tracing::error!(target = %self.shared.url, error = %e, "audit spool: this process's lines could not be handed to the owner of the spool");
        }
        drop(spool);
        self.save_drops();
        let unreported = self.shared.unreported_drops.load(Ordering::Relaxed);
        if unreported > 0 {
            tracing::error!(
                target = %self.shared.url,
                count = unreported,
                "audit lines were dropped and not reported to the receiver yet; the next run reports them"
            );
        }
        all_sent
    }

    /// Connects when not connected and an attempt is due (or `now`). Returns whether connected.
    async fn ensure_connected(&mut self, now: bool) -> bool {
        if let Some(conn) = &self.conn {
            if !conn.peer_closed() {
                return true;
            }
            self.broken("peer closed the connection");
        }
        if !now && Instant::now() < self.next_attempt {
            return false;
        }
        match self.connector.connect().await {
            Ok(conn) => {
                if self.ever_connected {
                    self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                self.ever_connected = true;
                self.backoff.reset();
                self.shared.connected.store(true, Ordering::Relaxed);
                self.conn = Some(conn);
                if self.must_replay {
                    self.must_replay = false;
                    let batches = std::mem::take(&mut self.replay);
                    self.replay_bytes = 0;
                    let count: usize = batches.iter().map(Lines::len).sum();
                    self.shared
                        .replayed
                        .fetch_add(count as u64, Ordering::Relaxed);
                    self.replaying.extend(batches);
                    // Each batch leaves `replaying` only once written (a copy is written, so
                    // a deadline that drops this future mid-write loses nothing).
                    while let Some(lines) = self.replaying.front().cloned() {
                        if self.write(&lines).await {
                            self.replaying.pop_front();
                            self.remember(lines);
                        } else {
                            // Broken again: replay all of them next time.
                            let rest = std::mem::take(&mut self.replaying);
                            self.replay.extend(rest);
                            self.replay_bytes = self.replay.iter().map(|l| l.text_bytes).sum();
                            return false;
                        }
                    }
                }
                true
            }
            Err(e) => {
                tracing::debug!(target = %self.shared.url, error = %e, "syslog connect failed");
                self.next_attempt = Instant::now() + self.backoff.next_delay();
                false
            }
        }
    }

    fn broken(&mut self, why: &str) {
        tracing::warn!(target = %self.shared.url, why, "syslog connection lost");
        if self.conn.take().is_some_and(|c| c.is_stream()) {
            self.must_replay = true;
        }
        self.shared.connected.store(false, Ordering::Relaxed);
        self.next_attempt = Instant::now() + self.backoff.next_delay();
    }

    /// Writes lines on the current connection; on failure drops the connection and returns
    /// false (the caller keeps or spools the lines). Lines written are handed to
    /// [`Task::remember`] by the caller.
    async fn write(&mut self, lines: &Lines) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        match conn.write_lines(lines, self.write_timeout).await {
            Ok(too_long) => {
                self.shared
                    .sent
                    .fetch_add(lines.len() as u64 - too_long, Ordering::Relaxed);
                if too_long > 0 {
                    tracing::error!(
                        target = %self.shared.url,
                        lines = too_long,
                        max_bytes = MAX_DATAGRAM,
                        "audit lines too long for a UDP datagram were dropped; use tcp:// or tls:// for them"
                    );
                    self.shared.drop_events(too_long);
                }
                true
            }
            Err(e) => {
                self.broken(&e.to_string());
                false
            }
        }
    }

    /// Keeps written lines for a replay after a broken stream connection: whole batches, the
    /// oldest let go (and recycled) while the others still hold `replay_max` bytes.
    fn remember(&mut self, lines: Lines) {
        if self.replay_max == 0 || !self.conn.as_ref().is_some_and(Conn::is_stream) {
            self.recycle(lines);
            return;
        }
        self.keep_for_replay(lines);
    }

    /// Adds lines to the replay, the newest batch, letting go of the oldest batches beyond
    /// `replay_max` bytes (never of the one added).
    fn keep_for_replay(&mut self, lines: Lines) {
        self.replay_bytes += lines.text_bytes;
        self.replay.push_back(lines);
        while let Some(oldest) = self.replay.front() {
            if self.replay_bytes - oldest.text_bytes < self.replay_max {
                break;
            }
            self.replay_bytes -= oldest.text_bytes;
            if let Some(oldest) = self.replay.pop_front() {
                self.recycle(oldest);
            }
        }
    }

    async fn send_or_spool(&mut self, lines: Lines) {
        if self.spool_is_empty() && self.ensure_connected(false).await {
            if self.write(&lines).await {
                self.remember(lines);
                return;
            }
            if self.must_replay {
                // A stream broke (or stalled) while these were written, perhaps in part: they
                // are sent again after the reconnect with the replay, which goes before the
                // spool, where recording threads may have put newer lines meanwhile.
                self.keep_for_replay(lines);
                return;
            }
        }
        let mut spool = self.shared.spool();
        self.shared.spool_lines(&mut spool, lines.iter());
        drop(spool);
        self.recycle(lines);
    }

    /// Sends the spool in order while the connection holds (and until `deadline`).
    async fn drain_spool(&mut self, deadline: Option<Instant>) {
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return;
            }
            if deadline.is_none() {
                // A flush or shutdown waiting is answered first (it drains the spool itself,
                // the shutdown within its deadline).
                if !self.rx.is_empty() {
                    return;
                }
                self.spill_if_backlogged();
            }
            let (lines, bytes, damaged) = match self.shared.spool().peek(256 << 10) {
                Ok(read) => read,
                Err(e) => {
                    tracing::error!(target = %self.shared.url, error = %e, "audit spool read failed");
                    // Tried again after a pause, not at once in a loop.
                    self.next_attempt = Instant::now() + self.backoff.next_delay();
                    return;
                }
            };
            if bytes == 0 {
                return;
            }
            if damaged > 0 {
                tracing::error!(
                    target = %self.shared.url,
                    bytes,
                    "a damaged or missing part of the audit spool (a crash or a failed write) was skipped; its lines are counted as dropped"
                );
                self.shared.drop_events(damaged);
            }
            if !lines.is_empty() {
                if !self.write(&lines).await {
                    return;
                }
                self.remember(lines);
            }
            if let Err(e) = self.shared.spool().consume(bytes) {
                tracing::error!(target = %self.shared.url, error = %e, "audit spool cleanup failed");
                return;
            }
        }
    }

    /// Sends an `AUDIT_DROPPED` event for the drops not reported yet, once the spool is empty.
    async fn report_drops(&mut self) {
        if !self.spool_is_empty() || self.conn.is_none() {
            return;
        }
        let count = self.shared.unreported_drops.swap(0, Ordering::Relaxed);
        if count == 0 {
            return;
        }
        let event = AuditEvent::audit_dropped(&self.shared.source, count, &self.shared.url);
        let mut lines = Lines::default();
        self.format_into(&event, &mut lines);
        if self.write(&lines).await {
            self.remember(lines);
            self.shared
                .spool_full_logged
                .store(false, Ordering::Relaxed);
            tracing::warn!(target = %self.shared.url, count, "dropped audit lines reported to the receiver");
        } else {
            self.shared
                .unreported_drops
                .fetch_add(count, Ordering::Relaxed);
        }
    }

    /// Writes the count of unreported drops to the spool directory when it changed, so that
    /// it outlives a restart before the receiver is back.
    fn save_drops(&mut self) {
        let count = self.shared.unreported_drops.load(Ordering::Relaxed);
        if count == self.saved_drops {
            return;
        }
        match self.shared.spool().save_drops(count) {
            Ok(()) => self.saved_drops = count,
            Err(e) => {
                tracing::error!(target = %self.shared.url, error = %e, count, "count of dropped audit lines cannot be saved")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_scheme_host_and_port() {
        let e = parse_url("tls://siem.example.kz:6514").expect("parses");
        assert_eq!(
            (e.scheme, e.host.as_str(), e.port),
            (Scheme::Tls, "siem.example.kz", 6514)
        );
        let e = parse_url("udp://[::1]:514").expect("parses");
        assert_eq!(
            (e.scheme, e.host.as_str(), e.port),
            (Scheme::Udp, "::1", 514)
        );
        for bad in [
            "http://a:1",
            "tcp://a",
            "tcp://:514",
            "tcp://a:99999",
            "a:1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_delays_stay_under_the_growing_ceiling_and_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        for n in 0..20u32 {
            let ceiling =
                Duration::from_millis(100 * (1u64 << n.min(10))).min(Duration::from_millis(1000));
            assert!(b.next_delay() <= ceiling);
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn octet_counting_frames_count_bytes_not_chars() {
        let mut lines = Lines::default();
        lines.push("ab");
        lines.push("жж");
        assert_eq!(lines.framed, "2 ab4 жж");
        assert_eq!(lines.iter().collect::<Vec<_>>(), ["ab", "жж"]);
        assert_eq!((lines.len(), lines.text_bytes), (2, 6));
    }

    #[test]
    fn a_line_in_two_parts_is_framed_as_the_whole_line() {
        let mut lines = Lines::default();
        lines.push_parts(["<110>1 - [x] ", "k=жж"]);
        lines.push_parts(["", "m"]);
        assert_eq!(lines.framed, "19 <110>1 - [x] k=жж1 m");
        assert_eq!(lines.iter().collect::<Vec<_>>(), ["<110>1 - [x] k=жж", "m"]);
        assert_eq!((lines.len(), lines.text_bytes), (2, 20));
    }

    #[test]
    fn spool_reads_count_file_bytes_even_for_blank_or_damaged_lines() {
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-spool-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("dir");
        // A segment damaged outside our control: a blank line and bytes that are not UTF-8.
        let text = b"first\n\n\xff\xfe tail\nlast\n";
        std::fs::write(dir.join("seg-000000000001.log"), text).expect("segment");
        let mut spool = Spool::open(dir.clone(), 1 << 20).expect("open");
        let (lines, bytes, damaged) = spool.peek(1 << 16).expect("peek");
        assert_eq!(damaged, 0);
        assert_eq!(
            lines.iter().collect::<Vec<_>>(),
            ["first", "\u{fffd}\u{fffd} tail", "last"]
        );
        assert_eq!(
            bytes,
            text.len() as u64,
            "what was read, not what was decoded"
        );
        spool.consume(bytes).expect("consume");
        assert!(spool.is_empty());
        assert_eq!(segment_files(&dir), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The segment files in a spool directory (its lock file is not one).
    fn segment_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .expect("dir")
            .filter(|e| segment_index(&e.as_ref().expect("entry").file_name()).is_some())
            .count()
    }

    /// Everything a spool gives, read to the end: the lines and the damaged ones counted.
    fn read_all(spool: &mut Spool, max_bytes: usize) -> (Vec<String>, u64) {
        let (mut seen, mut damaged) = (Vec::new(), 0);
        for _ in 0..10_000 {
            let (lines, bytes, bad) = spool.peek(max_bytes).expect("peek");
            if bytes == 0 {
                assert!(spool.is_empty(), "nothing more to read but not empty");
                return (seen, damaged);
            }
            seen.extend(lines.iter().map(str::to_owned));
            damaged += bad;
            spool.consume(bytes).expect("consume");
        }
        panic!("the spool never empties");
    }

    #[test]
    fn a_part_line_a_crash_left_at_a_segments_end_is_skipped_counted_and_the_rest_sent() {
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-spool-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("dir");
        // A crash in the middle of a line in the older segment; a newer one after a restart.
        std::fs::write(dir.join("seg-000000000001.log"), b"one\ntwo\nthr").expect("segment");
        std::fs::write(dir.join("seg-000000000002.log"), b"four\n").expect("segment");
        let mut spool = Spool::open(dir.clone(), 1 << 20).expect("open");
        assert!(spool.append("five").expect("append"));
        assert_eq!(
            read_all(&mut spool, 1 << 16),
            (
                vec!["one".into(), "two".into(), "four".into(), "five".into()],
                1
            )
        );
        // Only a part line, and a zero-filled tail without a newline, as power loss can leave.
        drop(spool);
        std::fs::write(dir.join("seg-000000000007.log"), b"half a li").expect("segment");
        std::fs::write(dir.join("seg-000000000008.log"), b"six\n\0\0\0\0").expect("segment");
        let mut spool = Spool::open(dir.clone(), 1 << 20).expect("open");
        assert_eq!(read_all(&mut spool, 1 << 16), (vec!["six".into()], 2));
        assert_eq!(segment_files(&dir), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_spooled_line_longer_than_one_read_is_read_whole() {
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-spool-{}", uuid::Uuid::now_v7()));
        let mut spool = Spool::open(dir.clone(), 16 << 20).expect("open");
        let long = "y".repeat(200_000);
        for line in ["a", long.as_str(), "b"] {
            assert!(spool.append(line).expect("append"));
        }
        // Reads of 64 KiB at the least: the long line does not fit one.
        assert_eq!(
            read_all(&mut spool, 1000),
            (vec!["a".into(), long, "b".into()], 0)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_spool_segment_removed_from_outside_is_counted_and_the_rest_sent() {
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-spool-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("seg-000000000001.log"), b"one\n").expect("segment");
        std::fs::write(dir.join("seg-000000000002.log"), b"two\n").expect("segment");
        let mut spool = Spool::open(dir.clone(), 1 << 20).expect("open");
        std::fs::remove_file(dir.join("seg-000000000001.log")).expect("remove");
        assert_eq!(read_all(&mut spool, 1 << 16), (vec!["two".into()], 1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_spool_directory_removed_from_outside_is_made_again_and_lines_kept() {
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-spool-{}", uuid::Uuid::now_v7()));
        let mut spool = Spool::open(dir.clone(), 1 << 20).expect("open");
        std::fs::remove_dir_all(&dir).expect("remove the spool directory");
        assert!(spool.append("one").expect("spooled"));
        assert!(spool.append("two").expect("spooled"));
        assert_eq!(
            read_all(&mut spool, 1 << 16),
            (vec!["one".into(), "two".into()], 0)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A sink to `url` with its spool under `dir` and the default settings.
    fn test_sink(url: &str, dir: &Path) -> SyslogSink {
        SyslogSink::start(
            &SyslogTarget::new(url),
            Formatter::new(13, "h", "qaqpa"),
            "test",
            dir,
            1 << 20,
        )
        .expect("sink")
    }

    /// Every line in the spool files under `dir`.
    fn spooled_lines(dir: &Path) -> Vec<String> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).expect("spool dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                for seg in std::fs::read_dir(&path).expect("target dir") {
                    let seg = seg.expect("segment").path();
                    if seg.extension().is_some_and(|e| e == "log") {
                        files.push(seg);
                    }
                }
            }
        }
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                let text = std::fs::read_to_string(f).expect("segment");
                text.lines().map(str::to_owned).collect::<Vec<_>>()
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lines_sent_on_a_connection_that_broke_are_spooled_at_shutdown_when_no_receiver_is_back(
    ) {
        use tokio::io::AsyncReadExt;
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-replay-{}", uuid::Uuid::now_v7()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("tcp://{}", listener.local_addr().expect("addr"));
        let sink = test_sink(&url, &dir);
        let events: Vec<AuditEvent> = (0..10)
            .map(|i| AuditEvent::auth_ok("api", &format!("key-{i}")))
            .collect();
        for e in &events {
            sink.record(&sink.formatter().format(e));
        }
        let (mut conn, _) = listener.accept().await.expect("accept");
        assert!(sink.flush().await, "sent");
        // The receiver read them, then goes away with its listener before any answer could
        // tell the sink what it kept.
        let mut got = vec![0u8; 1 << 16];
        let mut read = 0;
        while !events
            .iter()
            .all(|e| String::from_utf8_lossy(&got[..read]).contains(&e.id.to_string()))
        {
            let n = conn.read(&mut got[read..]).await.expect("read");
            assert!(n > 0, "receiver saw the end before every line");
            read += n;
        }
        drop((conn, listener));
        // A sink learns of a closed connection when it next sends (the first write after the
        // receiver's close can still succeed): probes until it has.
        let mut probes = Vec::new();
        while sink.stats().connected {
            assert!(probes.len() < 100, "the sink never saw the receiver go");
            let probe = AuditEvent::auth_ok("api", "probe");
            sink.record(&sink.formatter().format(&probe));
            probes.push(probe);
            sink.flush().await;
        }
        let last = AuditEvent::auth_ok("api", "key-last");
        sink.record(&sink.formatter().format(&last));
        let all = sink.shutdown(Instant::now() + Duration::from_secs(2)).await;
        assert!(!all, "the receiver is gone: not everything was sent");
        // The lines the receiver read but never acknowledged (the replay), the probes and the
        // last line: each in the spool once, for the next run to send.
        let spooled = spooled_lines(&dir);
        let expected: Vec<&AuditEvent> = events.iter().chain(&probes).chain([&last]).collect();
        for e in &expected {
            let id = e.id.to_string();
            assert_eq!(
                spooled.iter().filter(|l| l.contains(&id)).count(),
                1,
                "{id} spooled once: {spooled:#?}"
            );
        }
        assert_eq!(spooled.len(), expected.len());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The event id of a line this module's formatter wrote (its MSG, behind the BOM, starts
    /// with `id=`).
    fn id_of(line: &str) -> Option<&str> {
        let at = line.find("\u{feff}id=")? + "\u{feff}id=".len();
        line.get(at..at + 36)
    }

    /// Reads octet-counted lines from `conn`, each handed to `done`, until it says so;
    /// returns the lines read.
    async fn read_lines_until(
        conn: &mut tokio::net::TcpStream,
        mut done: impl FnMut(&str) -> bool,
    ) -> Vec<String> {
        use tokio::io::AsyncReadExt;
        let mut lines = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(30), conn.read(&mut chunk))
                .await
                .expect("lines in time")
                .expect("read");
            assert!(n > 0, "the sink closed after {} lines", lines.len());
            buf.extend_from_slice(&chunk[..n]);
            let mut at = 0;
            while let Some(sp) = buf[at..].iter().position(|b| *b == b' ') {
                let len: usize = std::str::from_utf8(&buf[at..at + sp])
                    .expect("count")
                    .parse()
                    .expect("octet count");
                let end = at + sp + 1 + len;
                if buf.len() < end {
                    break;
                }
                let line = String::from_utf8(buf[at + sp + 1..end].to_vec()).expect("utf-8");
                at = end;
                let finished = done(&line);
                lines.push(line);
                if finished {
                    return lines;
                }
            }
            buf.drain(..at);
        }
    }

    /// [`read_lines_until`] every id of `want` was read.
    async fn read_ids(
        conn: &mut tokio::net::TcpStream,
        want: &std::collections::HashSet<String>,
    ) -> Vec<String> {
        let mut left = want.clone();
        read_lines_until(conn, |line| {
            if let Some(id) = id_of(line) {
                left.remove(id);
            }
            left.is_empty()
        })
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_receiver_that_stops_reading_times_out_and_no_line_is_lost_for_the_next_run() {
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-stall-{}", uuid::Uuid::now_v7()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let url = format!("tcp://{addr}");
        let target = SyslogTarget {
            write_timeout_ms: 300,
            backoff_initial_ms: 10,
            backoff_max_ms: 50,
            // Every line written stays in the replay, so that all can be checked below.
            replay_bytes: 1 << 30,
            ..SyslogTarget::new(&url)
        };
        let formatter = Formatter::new(13, "h", "qaqpa");
        let sink =
            SyslogSink::start(&target, formatter.clone(), "test", &dir, 1 << 30).expect("sink");
        // Accepts every connection and never reads: the kernel's buffers fill, then writes
        // make no progress.
        let stalled = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        let pad = "p".repeat(400);
        let mut ids = std::collections::HashSet::new();
        for i in 0..40_000 {
            let e = AuditEvent::auth_ok("api", &format!("key-{i}-{pad}"));
            ids.insert(e.id.to_string());
            sink.record(&sink.formatter().format(&e));
        }
        let flushed = tokio::time::timeout(Duration::from_secs(60), sink.flush())
            .await
            .expect("a flush is answered although the receiver stopped reading");
        assert!(
            !flushed,
            "the receiver read nothing: not everything is sent"
        );
        let stopped = tokio::time::timeout(
            Duration::from_secs(60),
            sink.shutdown(Instant::now() + Duration::from_secs(1)),
        )
        .await
        .expect("the sink stops although the receiver stopped reading");
        assert!(!stopped);
        assert_eq!(sink.stats().dropped, 0, "{:?}", sink.stats());
        stalled.abort();
        // The spool's lock goes with the last handle: the next run owns the directory.
        drop(sink);
        let spooled = spooled_lines(&dir);
        let in_spool: std::collections::HashSet<&str> =
            spooled.iter().filter_map(|l| id_of(l)).collect();
        let missing = ids
            .iter()
            .filter(|id| !in_spool.contains(id.as_str()))
            .count();
        assert_eq!(
            missing,
            0,
            "lines neither read nor spooled ({} spooled)",
            spooled.len()
        );
        // The next run, with a receiver that reads, sends every one of them.
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind again");
        let next = SyslogSink::start(&target, formatter, "test", &dir, 1 << 30).expect("sink");
        let (mut conn, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
            .await
            .expect("the next run connects")
            .expect("accept");
        read_ids(&mut conn, &ids).await;
        assert!(next.flush().await, "{:?}", next.stats());
        next.shutdown(Instant::now() + Duration::from_secs(2)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drops_at_a_full_spool_are_reported_by_the_next_run_when_the_receiver_is_back() {
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-drops-{}", uuid::Uuid::now_v7()));
        // A port nobody listens on: every line goes to the spool, which holds only a few.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = closed.local_addr().expect("addr");
        drop(closed);
        let url = format!("tcp://{addr}");
        let target = SyslogTarget::new(&url);
        let formatter = Formatter::new(13, "h", "qaqpa");
        let sink = SyslogSink::start(&target, formatter.clone(), "test", &dir, 4096).expect("sink");
        let mut recorded = Vec::new();
        for i in 0..60 {
            let e = AuditEvent::auth_ok("api", &format!("key-{i}"));
            sink.record(&sink.formatter().format(&e));
            recorded.push(e);
        }
        assert!(!sink.flush().await);
        sink.shutdown(Instant::now() + Duration::from_secs(1)).await;
        let stats = sink.stats();
        assert!(stats.dropped > 0 && stats.spooled > 0, "{stats:?}");
        assert_eq!(stats.spooled + stats.dropped, 60, "{stats:?}");
        // The run ends with the drops unreported: their count outlives it.
        let spooled = spooled_lines(&dir);
        assert_eq!(spooled.len() as u64, stats.spooled);
        drop(sink);
        // The receiver is back for the next run: the spooled lines, then the count.
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let next = SyslogSink::start(&target, formatter, "test", &dir, 4096).expect("sink");
        let (mut conn, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
            .await
            .expect("the next run connects")
            .expect("accept");
        assert!(next.flush().await, "{:?}", next.stats());
        let want: std::collections::HashSet<String> = spooled
            .iter()
            .filter_map(|l| id_of(l))
            .map(str::to_owned)
            .collect();
        let mut left = want.clone();
        let lines = read_lines_until(&mut conn, |line| {
            if let Some(id) = id_of(line) {
                left.remove(id);
            }
            line.contains("AUDIT_DROPPED")
        })
        .await;
        assert!(
            left.is_empty(),
            "the spooled lines come before the report: {left:?}"
        );
        let report = lines.last().expect("report");
        assert!(
            report.contains(&format!("count={}", stats.dropped)),
            "the report carries the first run's count {}: {report}",
            stats.dropped
        );
        assert_eq!(next.stats().dropped, 0);
        next.shutdown(Instant::now() + Duration::from_secs(2)).await;
        assert!(
            !dir.join(
                url.chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect::<String>()
            )
            .join("dropped.count")
            .exists(),
            "a reported count is not reported again"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_process_on_a_spool_only_adds_to_it_and_the_owner_sends_everything() {
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-guest-{}", uuid::Uuid::now_v7()));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = closed.local_addr().expect("addr");
        drop(closed);
        let url = format!("tcp://{addr}");
        // The gateway: its receiver is down, so its lines wait in the spool.
        let owner = test_sink(&url, &dir);
        let event = |who: &str, i: usize| AuditEvent::auth_ok("api", &format!("{who}-{i}"));
        let mut ids = std::collections::HashSet::new();
        for i in 0..50 {
            let e = event("gateway", i);
            ids.insert(e.id.to_string());
            owner.record(&owner.formatter().format(&e));
        }
        assert!(!owner.flush().await);
        let owned = spooled_lines(&dir);
        assert_eq!(owned.len(), 50);
        // A `qaqpa keys …` command beside it, with the same spool: it sends nothing of the
        // gateway's, removes nothing, and leaves its own lines for the gateway.
        let guest = test_sink(&url, &dir);
        for i in 0..3 {
            let e = event("cli", i);
            ids.insert(e.id.to_string());
            guest.record(&guest.formatter().format(&e));
        }
        assert!(
            !guest
                .shutdown(Instant::now() + Duration::from_millis(500))
                .await
        );
        drop(guest);
        let after = spooled_lines(&dir);
        assert_eq!(
            after.len(),
            53,
            "the gateway's lines and the command's: {after:#?}"
        );
        assert!(
            owned.iter().all(|l| after.contains(l)),
            "the gateway's lines are all still there"
        );
        // The receiver is back: the gateway sends its lines and the command's.
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let flushed = owner.flush();
        let (accepted, flushed) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(30), listener.accept()),
            flushed
        );
        let (mut conn, _) = accepted.expect("the gateway connects").expect("accept");
        assert!(flushed, "{:?}", owner.stats());
        read_ids(&mut conn, &ids).await;
        assert_eq!(
            spooled_lines(&dir).len(),
            0,
            "every segment sent and removed"
        );
        owner
            .shutdown(Instant::now() + Duration::from_secs(2))
            .await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lines_of_a_process_that_died_beside_the_owner_are_taken_over_by_the_next_owner() {
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-spool-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("seg-000000000001.log"), b"one\n").expect("segment");
        std::fs::write(dir.join("guest-4242.part"), b"from a command\n").expect("part");
        let mut spool = Spool::open(dir.clone(), 1 << 20).expect("open");
        assert_eq!(
            read_all(&mut spool, 1 << 16),
            (vec!["one".into(), "from a command".into()], 0)
        );
        assert_eq!(
            std::fs::read_dir(&dir).expect("dir").count(),
            1,
            "only the lock file is left"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The files in `dir` other than the lock, by name.
    fn spool_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".lock")
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_whole_intake_spooled_at_once_keeps_its_order_the_bound_and_the_segment_size() {
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-spool-{}", uuid::Uuid::now_v7()));
        let max_bytes = 32 << 20;
        let mut spool = Spool::open(dir.clone(), max_bytes).expect("open");
        let lines: Vec<String> = (0..40_000)
            .map(|i| format!("line {i:06} {}", "x".repeat(988)))
            .collect();
        let fit = (max_bytes / 1001) as usize;
        let appended = spool.append_lines(lines.iter().map(String::as_str));
        assert!(appended.failed.is_none());
        assert_eq!(
            (appended.spooled as usize, appended.full as usize),
            (fit, lines.len() - fit)
        );
        assert!(spool.bytes <= max_bytes);
        let segments = list_segments(&dir).expect("segments");
        assert!(segments.len() >= 8, "{segments:?}");
        assert!(
            segments
                .iter()
                .all(|&(_, size)| size <= spool.segment_max && size % 1001 == 0),
            "whole lines, within a segment's size: {segments:?}"
        );
        assert_eq!(read_all(&mut spool, 1 << 20), (lines[..fit].to_vec(), 0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_guest_still_writing_keeps_its_file_when_a_new_owner_starts_and_its_lines_arrive_once() {
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-spool-{}", uuid::Uuid::now_v7()));
        let first_owner = Spool::open(dir.clone(), 1 << 20).expect("owner");
        let mut guest = Spool::open(dir.clone(), 1 << 20).expect("guest");
        assert!(matches!(guest.role, Role::Guest { .. }));
        assert!(guest.append("guest one").expect("append"));
        // The gateway restarts while the command still runs.
        drop(first_owner);
        let mut owner = Spool::open(dir.clone(), 1 << 20).expect("new owner");
        assert!(matches!(owner.role, Role::Owner { .. }));
        assert_eq!(owner.adopt().expect("adopt"), 0, "nothing published yet");
        assert!(owner.is_empty(), "the live guest's file is not taken");
        assert_eq!(spool_files(&dir).len(), 1, "{:?}", spool_files(&dir));
        assert!(guest.append("guest two").expect("append"));
        guest.publish().expect("publish");
        assert_eq!(owner.adopt().expect("adopt"), 1);
        assert_eq!(
            read_all(&mut owner, 1 << 16),
            (vec!["guest one".into(), "guest two".into()], 0)
        );
        assert!(spool_files(&dir).is_empty(), "{:?}", spool_files(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_guest_that_dies_while_the_owner_runs_is_taken_over_without_a_restart() {
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-spool-{}", uuid::Uuid::now_v7()));
        let mut owner = Spool::open(dir.clone(), 1 << 20).expect("owner");
        assert!(owner.append("owner one").expect("append"));
        // A command killed before it published: its file is unlocked. Another died while it
        // was still making its file, and a third after publishing but before removing it.
        std::fs::write(dir.join("guest-77-a.part"), b"killed one\nkilled two\n").expect("part");
        std::fs::write(dir.join("guest-78-b.making"), b"").expect("making");
        std::fs::write(dir.join("seg-000000000100.log"), b"published\n").expect("segment");
        std::fs::hard_link(
            dir.join("seg-000000000100.log"),
            dir.join("guest-79-c.part"),
        )
        .expect("link");
        assert_eq!(
            owner.adopt().expect("adopt"),
            2,
            "the killed command's and the published one"
        );
        assert_eq!(
            read_all(&mut owner, 1 << 16),
            (
                vec![
                    "owner one".into(),
                    "published".into(),
                    "killed one".into(),
                    "killed two".into()
                ],
                0
            ),
            "every line once"
        );
        assert!(spool_files(&dir).is_empty(), "{:?}", spool_files(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_line_no_udp_datagram_holds_is_dropped_counted_and_reported_and_the_rest_sent() {
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-udp-{}", uuid::Uuid::now_v7()));
        let receiver = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("udp://{}", receiver.local_addr().expect("addr"));
        let sink = test_sink(&url, &dir);
        let before = AuditEvent::auth_ok("api", "before");
        let after = AuditEvent::auth_ok("api", "after");
        sink.record(&sink.formatter().format(&before));
        sink.record(&"x".repeat(MAX_DATAGRAM + 1));
        sink.record(&sink.formatter().format(&after));
        assert!(sink.flush().await, "nothing left in the spool");
        let stats = sink.stats();
        assert_eq!(
            (stats.sent, stats.dropped, stats.spooled),
            (3, 1, 0),
            "{stats:?}"
        );
        let mut datagrams = Vec::new();
        let mut buf = vec![0u8; 1 << 17];
        while datagrams.len() < 3 {
            let n = tokio::time::timeout(Duration::from_secs(5), receiver.recv(&mut buf))
                .await
                .expect("a datagram in time")
                .expect("recv");
            datagrams.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert!(
            datagrams[0].contains(&before.id.to_string()),
            "{}",
            datagrams[0]
        );
        assert!(
            datagrams[1].contains(&after.id.to_string()),
            "{}",
            datagrams[1]
        );
        assert!(datagrams[2].contains("AUDIT_DROPPED"), "{}", datagrams[2]);
        assert!(datagrams[2].contains("count=1"), "{}", datagrams[2]);
        sink.shutdown(Instant::now() + Duration::from_secs(2)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn spool_keeps_order_respects_its_bound_and_removes_sent_segments() {
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-spool-{}", uuid::Uuid::now_v7()));
        let mut spool = Spool::open(dir.clone(), 8192).expect("open");
        assert!(spool.is_empty());
        let mut accepted = 0;
        for i in 0..1000 {
            if spool
                .append(&format!("line {i:04} {}", "x".repeat(90)))
                .expect("append")
            {
                accepted += 1;
            }
        }
        // 100 bytes per line, 8192 bytes: 81 lines fit.
        assert_eq!(accepted, 81);
        assert!(spool.segments.len() > 1, "more than one segment");
        // Reopening finds the same lines (a spool survives a restart).
        drop(spool);
        let mut spool = Spool::open(dir.clone(), 8192).expect("reopen");
        let mut seen = Vec::new();
        loop {
            let (lines, bytes, _) = spool.peek(1000).expect("peek");
            if lines.is_empty() {
                assert_eq!(bytes, 0, "nothing left to read");
                break;
            }
            assert_eq!(
                bytes,
                lines.text_bytes + lines.len() as u64,
                "a newline per line"
            );
            let line = lines.iter().next().expect("a line").to_owned();
            spool.consume(line.len() as u64 + 1).expect("consume");
            seen.push(line);
        }
        assert_eq!(seen.len(), 81);
        for (i, line) in seen.iter().enumerate() {
            assert!(line.starts_with(&format!("line {i:04} ")), "{line}");
        }
        assert!(spool.is_empty());
        assert_eq!(segment_files(&dir), 0, "sent segments are removed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
