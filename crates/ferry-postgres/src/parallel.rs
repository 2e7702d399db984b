//! The load workers of a parallel import (`--jobs N`, N > 1).
//!
//! Each worker owns one connection and one transaction. The import hands it whole tables: it
//! empties the table's staging copy (TRUNCATE, so that COPY may write frozen rows), loads
//! every part of it and commits, into the staging schema only. Tables, not parts, are the
//! unit of work: COPY FREEZE needs the table truncated in the loading transaction, and on
//! the two-core machines we measure on, one frozen COPY per table beats two unfrozen ones
//! into the same table (`docs/benchmarks.md`).
//!
//! A table's indexes and keys are not built by the worker that loaded it but handed, once
//! its rows have committed, to a queue that every worker takes from whenever it has no
//! part to load and no load transaction open; each build runs in its own transaction. The
//! biggest table usually comes last, and building its indexes one after the other on one
//! connection left the other workers idle: from the queue, a PostgreSQL archive's builds
//! of one table run side by side (CREATE INDEX takes a SHARE lock, which does not conflict
//! with itself; a key, which takes an exclusive lock, waits its turn). Their names come
//! from the source's catalog, so no two can collide. A SQLite archive's keys may be
//! unnamed (the server picks the name, from what exists when it runs), so its builds of
//! one table run as one job, in post-data order, as a serial import runs them; only its
//! indexes whose names no key could take (`Build::apart`) leave that job, and they are
//! queued when it is done, to run side by side without waiting behind a key's lock. A worker
//! only takes a build between loads, but a build can hold up a load: the next table may be
//! handed to a worker that is building, and a late part's COPY waits for a build's lock on
//! its table.
//!
//! With `--jobs-per-table N` (N > 1) a table's parts are spread over up to N workers, which
//! all insert into the same committed staging copy. That rules out TRUNCATE and FREEZE (a
//! table can be truncated by one transaction only), and its builds wait until every worker
//! has committed: they then run as a second round, one table per job, still in staging.
//!
//! A worker commits each table it loads alone with the table's resume record
//! ([`crate::resume`]), so that an import killed part-way leaves every finished table
//! behind for `--resume`; each build adds itself to that record in the transaction that
//! builds it. A part that arrives after its table was committed (a tar written by parallel
//! exports interleaves tables) is appended in the next transaction, unfrozen, and the
//! record follows it.
//!
//! A worker that fails reports the error and stops; the import then abandons the others,
//! whose open transactions roll back when their connections close.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{
    Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError, channel, sync_channel,
};
use std::sync::{Arc, Mutex};
use std::thread::Scope;
use std::time::{Duration, Instant};

use ferry_archive::{DetachedPart, PartData, Progress, Table, TableReport};
use tokio_postgres::Client;

use crate::conn::ConnSpec;
use crate::error::{Ctx, PgError};
use crate::load::Copier;
use crate::resume::{DonePart, Record};

/// A table-local statement (index, key, check, default) to run on the staging copy.
#[derive(Debug, Clone)]
pub(crate) struct Build {
    /// Position of the statement in the import's post-data list.
    pub index: usize,
    pub what: String,
    pub sql: String,
    /// It may run beside the table's other builds (see the module's essay).
    pub apart: bool,
}

/// How a worker loads one table.
pub(crate) struct TableWork {
    /// Its quoted name in the staging schema.
    pub stage: String,
    pub copier: Copier,
    pub builds: Vec<Build>,
    pub checkpoint: Checkpoint,
}

/// Where a worker records what its table holds each time it commits it (see
/// [`crate::resume`]).
pub(crate) struct Checkpoint {
    /// The staging schema whose comment holds the record.
    pub schema: String,
    /// The import's owner record, which the comment starts with.
    pub owner: String,
    /// What the table holds: nothing yet, or what an interrupted import committed.
    pub record: Record,
    /// Taken over from an interrupted import: its rows are in already, so it is neither
    /// emptied nor frozen, and its builds are not queued: the ones its record does not list
    /// run after publishing, in the import transaction.
    pub adopted: bool,
}

pub(crate) enum Work {
    /// A table this worker now loads (alone, or `shared` with other workers).
    Table {
        table: Box<Table>,
        work: Box<TableWork>,
        shared: bool,
    },
    Part {
        table: String,
        part: Box<DetachedPart>,
    },
    /// The table's parts have all been handed over (as far as the import can tell): commit
    /// it and queue its builds.
    Build { table: String },
    /// No more parts: commit, and queue the builds of the tables it loaded alone.
    Finish,
    /// After every worker has committed: builds (a shared table's, or one foreign key),
    /// in a new transaction.
    BuildShared { builds: Vec<Build> },
}

pub(crate) enum Event {
    Loaded {
        table: String,
        rows: u64,
        elapsed: Duration,
    },
    /// The worker committed its loads and queued their builds.
    Finished,
    /// A worker is about to queue `n` jobs of builds; sent before they are queued, so that
    /// the pool never counts a job done before it counts it queued.
    Queued {
        n: usize,
    },
    /// A queued job is done, with the post-data positions of its builds that succeeded. A
    /// build the server refused on the staging copy is not among them: the import runs it
    /// again after publishing, where it fails or is reported exactly as in a serial import.
    Built {
        built: Vec<usize>,
    },
    /// A `BuildShared` job is done (committed), with the builds that succeeded, by the
    /// worker that is now free for the next one.
    BuiltShared {
        built: Vec<usize>,
        worker: usize,
    },
    Failed(PgError),
}

/// Builds of one table waiting for an idle worker, to run in order, with where the table's
/// record lives.
struct Queued {
    builds: Vec<Build>,
    /// Jobs to queue once these builds are done (counted queued already).
    then: Vec<Vec<Build>>,
    /// The staging schema whose record the build adds itself to.
    schema: String,
    /// The import's owner record, which the comment starts with.
    owner: String,
}

type BuildQueue = Arc<Mutex<VecDeque<Queued>>>;

/// Every worker transaction. Read committed whatever the role's or database's default: a
/// resume record is rewritten after it is read under a lock ([`crate::resume::lock`]), and
/// only a statement snapshot taken after the lock sees the other connections' entries.
const BEGIN: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// How long an idle worker waits for work before it looks at the build queue again.
const IDLE_POLL: Duration = Duration::from_millis(20);

/// The jobs of builds the pool has heard of: queued, done, and which builds succeeded.
#[derive(Default)]
struct Tally {
    queued: usize,
    done: usize,
    built: Vec<usize>,
}

pub(crate) struct Pool {
    senders: Vec<SyncSender<Work>>,
    events: Receiver<Event>,
    tally: Tally,
    /// The workers loading each table, by archive id.
    owner: HashMap<String, Vec<usize>>,
    /// Workers that may load one table (`--jobs-per-table`).
    per_table: usize,
    /// Rows handed to each worker so far, to give the next table to the least loaded.
    load: Vec<u64>,
    /// The last table a part was handed over for.
    current: Option<String>,
}

impl Pool {
    /// Starts `n` workers in `scope`. They connect when they get their first table.
    pub fn start<'scope, 'env>(
        scope: &'scope Scope<'scope, 'env>,
        n: usize,
        spec: &'env ConnSpec,
        batch_rows: usize,
        per_table: usize,
        progress: &'env dyn Progress,
    ) -> Pool {
        let (events_tx, events) = channel();
        let queue = BuildQueue::default();
        let mut senders = Vec::new();
        for index in 0..n {
            // Two parts in flight per worker: enough to keep it busy, and a bound on the
            // spooled files a tar stream holds on disk.
            let (tx, rx) = sync_channel(2);
            let events_tx = events_tx.clone();
            let queue = queue.clone();
            scope.spawn(move || {
                let report = events_tx.clone();
                let run = std::panic::AssertUnwindSafe(|| {
                    work(index, spec, rx, events_tx, queue, batch_rows, progress)
                });
                // A panic must still be reported, or the import would wait for this worker
                // forever (the others keep the event channel open).
                if std::panic::catch_unwind(run).is_err() {
                    let _ = report.send(Event::Failed(PgError::Check {
                        context: "parallel load".into(),
                        detail: "a load worker panicked; nothing was committed to the target"
                            .into(),
                    }));
                }
            });
            senders.push(tx);
        }
        Pool {
            senders,
            events,
            tally: Tally::default(),
            owner: HashMap::new(),
            per_table: per_table.clamp(1, n),
            load: vec![0; n],
            current: None,
        }
    }

    /// Hands over one part, to the least loaded worker that may take the table: its only
    /// worker, or (shared) any worker while fewer than `per_table` have it.
    pub fn part(
        &mut self,
        table: &Table,
        work: TableWork,
        part: DetachedPart,
        rows: u64,
        reports: &mut HashMap<String, TableReport>,
    ) -> Result<(), PgError> {
        self.poll(reports)?;
        let shared = self.per_table > 1;
        if let Some(prev) = self.current.take()
            && prev != table.id
            && !shared
        {
            let w = self.owner[&prev][0];
            self.send(w, Work::Build { table: prev }, reports)?;
        }
        self.current = Some(table.id.clone());
        let have = self.owner.get(&table.id).cloned().unwrap_or_default();
        let candidates: Vec<usize> = if have.len() < self.per_table {
            (0..self.load.len()).collect()
        } else {
            have.clone()
        };
        let w = *candidates
            .iter()
            .min_by_key(|w| (self.load[**w], !have.contains(*w)))
            .expect("a pool has workers");
        if !have.contains(&w) {
            self.owner.entry(table.id.clone()).or_default().push(w);
            self.send(
                w,
                Work::Table {
                    table: Box::new(table.clone()),
                    work: Box::new(work),
                    shared,
                },
                reports,
            )?;
        }
        self.load[w] += rows.max(1);
        self.send(
            w,
            Work::Part {
                table: table.id.clone(),
                part: Box::new(part),
            },
            reports,
        )
    }

    /// Tells every worker that has work to commit and queue its builds, and waits until all
    /// have and every queued build is done. Returns the post-data positions of the builds
    /// done on the staging copies, and how many workers had tables.
    /// `shared` holds the builds of each staging copy that several workers loaded, to run
    /// once every load has committed; `foreign_keys` the foreign keys between staging
    /// copies, added after that, each in its own transaction so that they validate in
    /// parallel. Each round hands its jobs out in the order given, the next one to whichever
    /// worker is free first: the import puts the largest tables' first.
    pub fn finish(
        mut self,
        shared: Vec<Vec<Build>>,
        foreign_keys: Vec<Build>,
        reports: &mut HashMap<String, TableReport>,
    ) -> Result<(Vec<usize>, usize), PgError> {
        let mut busy: Vec<usize> = self.owner.values().flatten().copied().collect();
        busy.sort_unstable();
        busy.dedup();
        for w in &busy {
            // A worker that cannot take it has stopped after reporting why; the loop
            // below receives that report.
            let _ = self.senders[*w].send(Work::Finish);
        }
        let mut ended = 0;
        let mut failure = None;
        while ended < busy.len() {
            match self.events.recv() {
                Ok(Event::Finished) => ended += 1,
                Ok(Event::Failed(e)) => {
                    failure.get_or_insert(e);
                    ended += 1;
                }
                Ok(e) => self.tally.record(e, reports)?,
                Err(_) => return Err(failure.unwrap_or_else(stopped)),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        // Every build was counted queued before its worker finished.
        while self.tally.done < self.tally.queued {
            match self.events.recv() {
                Ok(e) => self.tally.record(e, reports)?,
                Err(_) => return Err(stopped()),
            }
        }
        let mut built = std::mem::take(&mut self.tally.built);
        // Every load is committed, so any worker can build a shared table; then, with
        // every key in place, add the foreign keys.
        let fk_jobs = foreign_keys.into_iter().map(|b| vec![b]).collect();
        for round in [shared, fk_jobs] {
            built.append(&mut self.build_round(round, reports)?);
        }
        Ok((built, busy.len()))
    }

    /// Runs each job (a list of builds, in one transaction) on a worker, one job per worker
    /// at a time and the next to whichever finishes first, and waits for all of them.
    /// Dealt out in turn instead, the largest table's foreign key (the one validation
    /// that takes long) waited behind two small ones on one worker while the other sat
    /// idle, at the very end of the import (`docs/benchmarks.md`, eighth session).
    fn build_round(
        &mut self,
        jobs: Vec<Vec<Build>>,
        reports: &mut HashMap<String, TableReport>,
    ) -> Result<Vec<usize>, PgError> {
        let mut jobs: VecDeque<Vec<Build>> = jobs.into_iter().filter(|b| !b.is_empty()).collect();
        let mut built = Vec::new();
        let mut pending = 0;
        for w in 0..self.senders.len() {
            let Some(builds) = jobs.pop_front() else {
                break;
            };
            self.send(w, Work::BuildShared { builds }, reports)?;
            pending += 1;
        }
        while pending > 0 {
            match self.events.recv() {
                Ok(Event::BuiltShared {
                    built: mut b,
                    worker,
                }) => {
                    built.append(&mut b);
                    pending -= 1;
                    if let Some(builds) = jobs.pop_front() {
                        self.send(worker, Work::BuildShared { builds }, reports)?;
                        pending += 1;
                    }
                }
                Ok(e) => self.tally.record(e, reports)?,
                Err(_) => return Err(stopped()),
            }
        }
        Ok(built)
    }

    fn send(
        &mut self,
        w: usize,
        work: Work,
        reports: &mut HashMap<String, TableReport>,
    ) -> Result<(), PgError> {
        if self.senders[w].send(work).is_ok() {
            return Ok(());
        }
        // The worker has stopped, which it only does after reporting why. Another worker's
        // finished build round may come first: it is not the error, so it is passed over.
        loop {
            match self.events.recv() {
                Ok(Event::BuiltShared { .. }) => {}
                Ok(e) => self.tally.record(e, reports)?,
                Err(_) => return Err(stopped()),
            }
        }
    }

    /// Takes in what the workers have reported so far; fails on the first failure.
    fn poll(&mut self, reports: &mut HashMap<String, TableReport>) -> Result<(), PgError> {
        loop {
            match self.events.try_recv() {
                Ok(e) => self.tally.record(e, reports)?,
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(stopped()),
            }
        }
    }
}

impl Tally {
    fn record(
        &mut self,
        e: Event,
        reports: &mut HashMap<String, TableReport>,
    ) -> Result<(), PgError> {
        match e {
            Event::Loaded {
                table,
                rows,
                elapsed,
            } => {
                let r = reports.entry(table).or_default();
                r.rows += rows;
                r.elapsed += elapsed;
                Ok(())
            }
            Event::Queued { n } => {
                self.queued += n;
                Ok(())
            }
            Event::Built { mut built } => {
                self.done += 1;
                self.built.append(&mut built);
                Ok(())
            }
            Event::Failed(e) => Err(e),
            Event::Finished | Event::BuiltShared { .. } => Err(PgError::Check {
                context: "parallel load".into(),
                detail: "a worker committed before it was told to".into(),
            }),
        }
    }
}

fn stopped() -> PgError {
    PgError::Check {
        context: "parallel load".into(),
        detail: "a load worker stopped without saying why".into(),
    }
}

/// What a worker holds for one of its tables.
struct Owned {
    table: Box<Table>,
    work: TableWork,
    /// Loaded by several workers: no TRUNCATE or FREEZE, and built in a later round.
    shared: bool,
    /// Nothing left for this worker to queue (queued already, or a shared table's builds,
    /// which the pool runs after every worker has committed).
    queued: bool,
    /// COPY may freeze its rows: emptied in the open transaction, nothing committed since.
    freeze: bool,
    /// Rows loaded in the open transaction, not yet in its record.
    dirty: bool,
}

struct Worker<'a> {
    /// Its place in the pool, which names it in [`Event::BuiltShared`].
    index: usize,
    spec: &'a ConnSpec,
    client: Option<Client>,
    /// A transaction is open on `client`.
    open: bool,
    tables: Vec<Owned>,
    queue: BuildQueue,
    batch_rows: usize,
    progress: &'a dyn Progress,
    events: &'a Sender<Event>,
}

fn work(
    index: usize,
    spec: &ConnSpec,
    rx: Receiver<Work>,
    events: Sender<Event>,
    queue: BuildQueue,
    batch_rows: usize,
    progress: &dyn Progress,
) {
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = events.send(Event::Failed(e));
            return;
        }
    };
    let mut w = Worker {
        index,
        spec,
        client: None,
        open: false,
        tables: Vec::new(),
        queue,
        batch_rows,
        progress,
        events: &events,
    };
    // A closed channel without Finish means the import gave up: dropping the connection
    // rolls this worker's transaction back. Work from the pool comes first; a build from
    // the queue only when there is none and no load transaction is open, so that a build
    // never joins a load's transaction.
    loop {
        let job = match rx.try_recv() {
            Ok(job) => Some(job),
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => None,
        };
        let result = if let Some(job) = job {
            rt.block_on(w.handle(job))
        } else if let Some(q) = w.next_build() {
            rt.block_on(w.run_queued(q))
        } else {
            match rx.recv_timeout(IDLE_POLL) {
                Ok(job) => rt.block_on(w.handle(job)),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        if let Err(e) = result {
            let _ = events.send(Event::Failed(e));
            return;
        }
    }
}

impl Worker<'_> {
    /// The worker's connection; its load transaction starts with its first table.
    async fn client(&mut self) -> Result<&Client, PgError> {
        if self.client.is_none() {
            self.client = Some(self.spec.connect().await?);
        }
        Ok(self.client.as_ref().expect("connected above"))
    }

    async fn handle(&mut self, job: Work) -> Result<(), PgError> {
        match job {
            Work::Table {
                table,
                work,
                shared,
            } => {
                self.begin().await?;
                let adopted = work.checkpoint.adopted;
                if !shared && !adopted {
                    // Truncated in this transaction, the copy may be loaded frozen.
                    let client = self.client.as_ref().expect("begun above");
                    client
                        .batch_execute(&format!("TRUNCATE {}", work.stage))
                        .await
                        .ctx(|| {
                            format!("table {}: preparing its staging copy", table.display_name())
                        })?;
                }
                self.tables.push(Owned {
                    table,
                    work: *work,
                    shared,
                    queued: shared || adopted,
                    freeze: !shared && !adopted,
                    dirty: false,
                });
            }
            Work::Part { table, part } => {
                let started = Instant::now();
                let i = self.find(&table)?;
                self.begin().await?;
                let client = self.client.as_ref().expect("begun above");
                let t = &mut self.tables[i];
                let rows = t
                    .work
                    .copier
                    .copy(
                        client,
                        &t.table,
                        &t.work.stage,
                        &*part,
                        self.batch_rows,
                        t.freeze,
                    )
                    .await?;
                t.work.checkpoint.record.parts.push(DonePart {
                    path: part.path().to_owned(),
                    sha256: part.sha256().to_owned(),
                    rows,
                });
                t.dirty = true;
                self.progress.advance(&t.table.display_name(), rows, 0);
                let _ = self.events.send(Event::Loaded {
                    table,
                    rows,
                    elapsed: started.elapsed(),
                });
            }
            Work::Build { table } => {
                let i = self.find(&table)?;
                if !self.tables[i].shared {
                    self.commit().await?;
                    self.enqueue(i);
                }
            }
            Work::Finish => {
                self.commit().await?;
                for i in 0..self.tables.len() {
                    self.enqueue(i);
                }
                let _ = self.events.send(Event::Finished);
            }
            Work::BuildShared { builds } => {
                // The load transaction has committed (Finish): a new one for the builds.
                let target = self.spec.display();
                let client = self.client().await?;
                client
                    .batch_execute(BEGIN)
                    .await
                    .ctx(|| format!("{target}: starting builds"))?;
                let mut built = Vec::new();
                for b in &builds {
                    if run_build(client, b).await? {
                        built.push(b.index);
                    }
                }
                client
                    .batch_execute("COMMIT")
                    .await
                    .ctx(|| format!("{target}: committing builds"))?;
                let _ = self.events.send(Event::BuiltShared {
                    built,
                    worker: self.index,
                });
            }
        }
        Ok(())
    }

    async fn begin(&mut self) -> Result<(), PgError> {
        if self.open {
            return Ok(());
        }
        let target = self.spec.display();
        self.client()
            .await?
            .batch_execute(BEGIN)
            .await
            .ctx(|| format!("{target}: starting a load transaction"))?;
        self.open = true;
        Ok(())
    }

    /// Commits the open transaction, with the resume record of each table it loaded alone.
    async fn commit(&mut self) -> Result<(), PgError> {
        if !self.open {
            return Ok(());
        }
        let client = self.client.as_ref().expect("a transaction is open");
        for t in self.tables.iter_mut().filter(|t| t.dirty && !t.shared) {
            let sql: Vec<&str> = t.work.builds.iter().map(|b| b.sql.as_str()).collect();
            let c = &mut t.work.checkpoint;
            if !c.adopted {
                c.record.builds = crate::resume::digest(&sql);
            }
            // Builds that ran since the table's last commit (a late part) are in the
            // committed record, not in this one.
            if let Some(committed) = crate::resume::lock(client, &c.schema).await? {
                for b in committed.built {
                    if !c.record.built.contains(&b) {
                        c.record.built.push(b);
                    }
                }
            }
            crate::resume::write(client, &c.schema, &c.owner, &c.record).await?;
        }
        client
            .batch_execute("COMMIT")
            .await
            .ctx(|| format!("{}: committing a load transaction", self.spec.display()))?;
        self.open = false;
        for t in &mut self.tables {
            t.dirty = false;
            t.freeze = false;
        }
        ferry_archive::interrupt::pause_point("import:table-committed");
        Ok(())
    }

    fn find(&self, id: &str) -> Result<usize, PgError> {
        self.tables
            .iter()
            .position(|t| t.table.id == id)
            .ok_or_else(|| PgError::Check {
                context: format!("table {id}"),
                detail: "a part arrived for a table this worker does not load".into(),
            })
    }

    /// Queues the builds of a table whose rows have committed, for whichever worker is
    /// idle first (see the module's essay): the ones that keep their order as one job, and
    /// each `apart` build as a job of its own, queued only once that job is done (at the
    /// front, ahead of other tables' builds). Otherwise jobs leave the queue in post-data
    /// order.
    fn enqueue(&mut self, i: usize) {
        let t = &mut self.tables[i];
        if t.queued {
            return;
        }
        t.queued = true;
        if t.work.builds.is_empty() {
            return;
        }
        let (apart, ordered): (Vec<Build>, Vec<Build>) =
            t.work.builds.iter().cloned().partition(|b| b.apart);
        let apart: Vec<Vec<Build>> = apart.into_iter().map(|b| vec![b]).collect();
        let _ = self.events.send(Event::Queued {
            n: apart.len() + usize::from(!ordered.is_empty()),
        });
        let c = &t.work.checkpoint;
        let job = |builds, then| Queued {
            builds,
            then,
            schema: c.schema.clone(),
            owner: c.owner.clone(),
        };
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if ordered.is_empty() {
            queue.extend(apart.into_iter().map(|b| job(b, Vec::new())));
        } else {
            // The ordered builds first: they hold the keys, whose exclusive locks would
            // otherwise queue behind an index build and hold up the rest behind them.
            queue.push_back(job(ordered, apart));
        }
    }

    /// The next queued build, when this worker has no load transaction open.
    fn next_build(&self) -> Option<Queued> {
        if self.open {
            return None;
        }
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    /// Runs one queued job, each build in a transaction of its own that also adds it to
    /// its table's resume record, so that a resumed import neither loses nor repeats it.
    async fn run_queued(&mut self, q: Queued) -> Result<(), PgError> {
        let target = self.spec.display();
        let client = self.client().await?;
        let mut built = Vec::new();
        for b in &q.builds {
            client
                .batch_execute(BEGIN)
                .await
                .ctx(|| format!("{target}: starting a build"))?;
            if run_build(client, b).await? {
                // The owner committed the record with the rows, before queueing this.
                let mut record =
                    crate::resume::lock(client, &q.schema)
                        .await?
                        .ok_or_else(|| PgError::Check {
                            context: format!("staging schema {}", q.schema),
                            detail: format!("{}: its progress record is missing", b.what),
                        })?;
                record.built.push(b.index);
                crate::resume::write(client, &q.schema, &q.owner, &record).await?;
                built.push(b.index);
            }
            client
                .batch_execute("COMMIT")
                .await
                .ctx(|| format!("{target}: committing {}", b.what))?;
            ferry_archive::interrupt::pause_point("import:build-committed");
        }
        if !q.then.is_empty() {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            for builds in q.then.into_iter().rev() {
                queue.push_front(Queued {
                    builds,
                    then: Vec::new(),
                    schema: q.schema.clone(),
                    owner: q.owner.clone(),
                });
            }
        }
        let _ = self.events.send(Event::Built { built });
        Ok(())
    }
}

/// Runs one build behind a savepoint, so that a refusal (which the import repeats and
/// reports after publishing) leaves the transaction usable; true when it succeeded.
async fn run_build(client: &Client, b: &Build) -> Result<bool, PgError> {
    client
        .batch_execute("SAVEPOINT ferry_build")
        .await
        .ctx(|| "savepoint".into())?;
    let ok = crate::one_statement(client, &b.sql).await.is_ok();
    let end = if ok {
        "RELEASE SAVEPOINT ferry_build"
    } else {
        "ROLLBACK TO SAVEPOINT ferry_build; RELEASE SAVEPOINT ferry_build"
    };
    client
        .batch_execute(end)
        .await
        .ctx(|| format!("after {}", b.what))?;
    Ok(ok)
}
