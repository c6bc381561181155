//! The group-commit writer: one thread owns the only write connection, drains pending write
//! requests into one transaction (a SAVEPOINT each, so one failing request does not undo the
//! others), commits once — one fsync for the whole group — and only then answers every request.
//! It must never answer a request before the transaction holding it is committed.
use std::panic::{catch_unwind, AssertUnwindSafe};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::contract::StoreError;

/// One write request as the writer thread sees it.
pub(crate) trait WriteOp: Send {
    /// Runs the request inside the open transaction; false if it failed (its savepoint is then
    /// rolled back).
    fn apply(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the group's fate is known (`Err` = the commit failed).
    fn finish(self: Box<Self>, commit: Result<(), String>);
}

struct Op<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> WriteOp for Op<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), String>) {
        let answer = match (self.result, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (Some(Ok(_)), Err(e)) | (None, Err(e)) => Err(StoreError::Unavailable(format!(
                "SQLite commit failed: {e}"
            ))),
            (None, Ok(())) => Err(StoreError::Other("the write request panicked".into())),
        };
        let _ = self.reply.send(answer);
    }
}

/// The sending side, held by the store.
#[derive(Clone)]
pub(crate) struct WriterHandle {
    tx: mpsc::Sender<Box<dyn WriteOp>>,
}

impl WriterHandle {
    /// Starts the writer thread on `conn`. With `wal_sync: Some(wal file)`, `conn` must run with
    /// `synchronous=NORMAL`: the writer commits without waiting for the disk and a second thread
    /// fsyncs the WAL file and only then answers the group's callers, so the next group is
    /// executed while the previous one is being made durable.
    pub(crate) fn spawn(
        conn: Connection,
        batch_max: usize,
        queue: usize,
        wal_sync: Option<std::fs::File>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let syncer = match wal_sync {
            None => None,
            Some(wal) => {
                let (to_sync, pending) = std::sync::mpsc::channel::<Vec<Box<dyn WriteOp>>>();
                std::thread::Builder::new()
                    .name("qaqpa-sqlite-wal-sync".into())
                    .spawn(move || run_syncer(wal, pending))?;
                Some(to_sync)
            }
        };
        std::thread::Builder::new()
            .name("qaqpa-sqlite-writer".into())
            .spawn(move || run(conn, rx, batch_max.max(1), syncer))?;
        Ok(Self { tx })
    }

    /// Runs `work` in the next group and returns its result once that group is durable.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op = Op {
            work: Some(work),
            result: None,
            reply,
        };
        self.tx
            .send(Box::new(op))
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }
}

fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<Box<dyn WriteOp>>,
    batch_max: usize,
    syncer: Option<std::sync::mpsc::Sender<Vec<Box<dyn WriteOp>>>>,
) {
    let mut group: Vec<Box<dyn WriteOp>> = Vec::with_capacity(batch_max);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < batch_max {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        let outcome = commit_group(&conn, &mut group);
        if outcome.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        match (&syncer, outcome) {
            (Some(syncer), Ok(())) => {
                // Committed but not yet on disk: the syncer answers once the WAL is fsync'd.
                if let Err(returned) = syncer.send(std::mem::take(&mut group)) {
                    for op in returned.0 {
                        op.finish(Err("the WAL sync thread has stopped".into()));
                    }
                }
            }
            (_, outcome) => {
                for op in group.drain(..) {
                    op.finish(outcome.clone());
                }
            }
        }
    }
}

/// fsyncs the WAL for every committed group waiting (one fsync covers all of them), then
/// answers their callers.
fn run_syncer(wal: std::fs::File, pending: std::sync::mpsc::Receiver<Vec<Box<dyn WriteOp>>>) {
    while let Ok(first) = pending.recv() {
        let mut groups = vec![first];
        while let Ok(more) = pending.try_recv() {
            groups.push(more);
        }
        let outcome = wal
            .sync_data()
            .map_err(|e| format!("fsync of the WAL failed: {e}"));
        for op in groups.into_iter().flatten() {
            op.finish(outcome.clone());
        }
    }
}

fn commit_group(conn: &Connection, group: &mut [Box<dyn WriteOp>]) -> Result<(), String> {
    let run = |sql: &str| -> Result<(), String> {
        conn.prepare_cached(sql)
            .and_then(|mut st| st.execute([]))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    run("BEGIN IMMEDIATE")?;
    for op in group.iter_mut() {
        run("SAVEPOINT op")?;
        let ok = catch_unwind(AssertUnwindSafe(|| op.apply(conn))).unwrap_or(false);
        if !ok {
            run("ROLLBACK TO op")?;
        }
        run("RELEASE op")?;
    }
    run("COMMIT")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op<F>(work: F) -> (Box<dyn WriteOp>, oneshot::Receiver<Result<(), StoreError>>)
    where
        F: FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        (
            Box::new(Op {
                work: Some(work),
                result: None,
                reply,
            }),
            answer,
        )
    }

    fn insert(v: i64) -> impl FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static {
        move |c: &Connection| {
            c.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
            Ok(())
        }
    }

    #[test]
    fn a_failing_request_is_undone_alone_and_its_group_still_commits() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)")
            .expect("schema");
        let (a, a_answer) = op(insert(1));
        // Writes a row, then fails: its row must be rolled back with it.
        let (b, b_answer) = op(|c: &Connection| {
            c.execute("INSERT INTO t (v) VALUES (2)", [])?;
            c.execute("INSERT INTO t (v) VALUES (1)", [])?; // duplicate of a's row
            Ok(())
        });
        let (p, p_answer) = op(|_: &Connection| panic!("a request that panics"));
        let (d, d_answer) = op(insert(3));
        let mut group = vec![a, b, p, d];
        let outcome = commit_group(&conn, &mut group);
        assert_eq!(outcome, Ok(()));
        for op in group {
            op.finish(outcome.clone());
        }
        let answer =
            |mut rx: oneshot::Receiver<Result<(), StoreError>>| rx.try_recv().expect("answered");
        assert!(answer(a_answer).is_ok());
        assert!(answer(b_answer).is_err());
        assert!(
            answer(p_answer).is_err(),
            "a panicking request gets an error, not silence"
        );
        assert!(answer(d_answer).is_ok());
        let mut st = conn.prepare("SELECT v FROM t ORDER BY v").expect("prepare");
        let rows: Vec<i64> = st
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(rows, vec![1, 3]);
    }

    #[test]
    fn a_failed_commit_fails_every_request_of_the_group() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL)")
            .expect("schema");
        let (a, a_answer) = op(insert(1));
        // A request that breaks the group's transaction (here: ends it early) makes the group
        // fail: nobody in it is told "stored", even those whose rows may have landed.
        let (b, b_answer) = op(|c: &Connection| {
            c.execute_batch("RELEASE op; COMMIT")?;
            Ok(())
        });
        let mut group = vec![a, b];
        let outcome = commit_group(&conn, &mut group);
        assert!(outcome.is_err(), "the group's commit cannot succeed");
        for op in group {
            op.finish(outcome.clone());
        }
        let answer =
            |mut rx: oneshot::Receiver<Result<(), StoreError>>| rx.try_recv().expect("answered");
        assert!(matches!(answer(a_answer), Err(StoreError::Unavailable(_))));
        assert!(answer(b_answer).is_err());
    }
}
