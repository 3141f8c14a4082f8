//! The process-wide argon2 pool: every password hash and verification runs here.
//!
//! Each argon2id job needs its cost in memory (19 MiB at the default parameters). Run on the
//! blocking pool without a bound, a flood of failed logins (which needs no credential) made one
//! allocation per request, and glibc kept most of them: 120 concurrent logins took a process
//! from 137 MB to several GB. So:
//!
//! * at most `workers` jobs run at once, on dedicated threads (default: the number of cores;
//!   more would not finish sooner, only use more memory);
//! * each worker keeps one block buffer for its whole life and hashes into it
//!   ([`Argon2::hash_password_into_with_memory`]), so memory is `workers` × the cost, allocated
//!   once, whatever the load;
//! * at most `queue` jobs wait; one more is refused at once with [`SecurityError::Busy`]
//!   instead of waiting without bound (a client can try again; a flood gets nothing).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;

use crate::error::{SecurityError, SecurityResult};
use crate::settings::Argon2Settings;

/// Jobs allowed to wait for a worker in the process-wide pool.
pub const DEFAULT_QUEUE: usize = 8;

/// What a refused job's caller is told.
pub const BUSY_MESSAGE: &str = "too many logins in progress, try again";

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Counters of a pool, for health and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashPoolStats {
    pub workers: usize,
    pub queue: usize,
    /// Jobs running now.
    pub running: usize,
    /// The most jobs ever seen running at once.
    pub peak_running: usize,
    /// Jobs refused because the queue was full.
    pub refused: u64,
}

/// What the workers update and [`HashPool::stats`] reads.
#[derive(Debug, Default)]
struct Counters {
    running: AtomicUsize,
    peak: AtomicUsize,
    refused: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    /// `None` when no worker could be started. Dropping the last sender stops the workers.
    tx: Option<SyncSender<Job>>,
    workers: usize,
    queue: usize,
    counters: Arc<Counters>,
}

/// A bounded pool of argon2 workers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HashPool {
    inner: Arc<Inner>,
}

impl HashPool {
    /// The pool every engine in this process shares: one worker per core (at least one), and
    /// [`DEFAULT_QUEUE`] waiting jobs.
    pub fn global() -> Self {
        static POOL: OnceLock<HashPool> = OnceLock::new();
        POOL.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            HashPool::new(cores, DEFAULT_QUEUE)
        })
        .clone()
    }

    /// A pool of `workers` threads (at least one) with room for `queue` waiting jobs. Threads
    /// that cannot be started are logged; with none at all every job is refused.
    pub fn new(workers: usize, queue: usize) -> Self {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let counters = Arc::new(Counters::default());
        let mut started = 0;
        for i in 0..workers.max(1) {
            let (rx, counters) = (rx.clone(), counters.clone());
            match std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || work(&rx, &counters))
            {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(error = %e, "argon2 worker not started"),
            }
        }
        Self {
            inner: Arc::new(Inner {
                tx: (started > 0).then_some(tx),
                workers: started,
                queue,
                counters,
            }),
        }
    }

    /// The pool's counters now.
    pub fn stats(&self) -> HashPoolStats {
        let (i, c) = (&self.inner, &self.inner.counters);
        HashPoolStats {
            workers: i.workers,
            queue: i.queue,
            running: c.running.load(Ordering::Acquire),
            peak_running: c.peak.load(Ordering::Acquire),
            refused: c.refused.load(Ordering::Acquire),
        }
    }

    /// Run `f` with a worker's block buffer; refused at once when the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> SecurityResult<T> {
        let Some(tx) = &self.inner.tx else {
            return Err(SecurityError::Busy(BUSY_MESSAGE.into()));
        };
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |blocks| {
            // The caller may have gone away; the work is done either way.
            let _ = done.send(f(blocks));
        });
        match tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.inner.counters.refused.fetch_add(1, Ordering::AcqRel);
                return Err(SecurityError::Busy(BUSY_MESSAGE.into()));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(SecurityError::Crypto("argon2 workers are gone".into()));
            }
        }
        result
            .await
            .map_err(|_| SecurityError::Crypto("argon2 job failed".into()))
    }

    /// Hash `password` with `params` into a PHC string.
    pub async fn hash(&self, password: Vec<u8>, params: Argon2Settings) -> SecurityResult<String> {
        self.run(move |blocks| hash_into(blocks, &password, params))
            .await?
    }

    /// Verify `password` against a PHC string (its own parameters are used). Malformed hashes
    /// verify false.
    pub async fn verify(&self, password: Vec<u8>, phc: String) -> SecurityResult<bool> {
        self.run(move |blocks| verify_into(blocks, &password, &phc))
            .await
    }
}

/// A worker: take jobs until the pool is dropped, always hashing into the same buffer.
fn work(rx: &Mutex<Receiver<Job>>, counters: &Counters) {
    let mut blocks: Vec<Block> = Vec::new();
    loop {
        let job = {
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let now = counters.running.fetch_add(1, Ordering::AcqRel) + 1;
        counters.peak.fetch_max(now, Ordering::AcqRel);
        job(&mut blocks);
        counters.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `n` blocks of the worker's buffer, grown (never shrunk) to fit.
fn blocks_for(buf: &mut Vec<Block>, n: usize) -> &mut [Block] {
    if buf.len() < n {
        buf.resize(n, Block::default());
    }
    &mut buf[..n]
}

fn params_of(p: Argon2Settings) -> SecurityResult<Params> {
    Params::new(p.memory_kib, p.iterations, p.parallelism, None)
        .map_err(|e| SecurityError::Config(format!("argon2 parameters: {e}")))
}

/// argon2id of `password` with a fresh salt, as a PHC string.
pub fn hash_into(
    buf: &mut Vec<Block>,
    password: &[u8],
    params: Argon2Settings,
) -> SecurityResult<String> {
    let crypto = |e: &dyn std::fmt::Display| SecurityError::Crypto(e.to_string());
    let p = params_of(params)?;
    let algorithm = Algorithm::Argon2id;
    let argon = Argon2::new(algorithm, Version::V0x13, p.clone());
    let salt: [u8; 16] = rand::random();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon
        .hash_password_into_with_memory(password, &salt, &mut out, blocks_for(buf, p.block_count()))
        .map_err(|e| crypto(&e))?;
    let phc = PasswordHash {
        algorithm: algorithm.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&p).map_err(|e| crypto(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| crypto(&e))?),
        hash: Some(Output::new(&out).map_err(|e| crypto(&e))?),
    };
    Ok(phc.to_string())
}

/// Does `password` match the PHC string? Its algorithm, version and parameters are used.
pub fn verify_into(buf: &mut Vec<Block>, password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let Ok(version) = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    if argon
        .hash_password_into_with_memory(
            password,
            salt.as_ref(),
            &mut out,
            blocks_for(buf, params.block_count()),
        )
        .is_err()
    {
        return false;
    }
    // `Output` compares in constant time.
    Output::new(&out).is_ok_and(|computed| &computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password;

    const CHEAP: Argon2Settings = Argon2Settings {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn hashes_agree_with_the_argon2_crate_both_ways() {
        let mut buf = Vec::new();
        let ours = hash_into(&mut buf, b"a long passphrase", CHEAP).unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{ours}");
        assert!(password::verify_blocking(b"a long passphrase", &ours));
        let theirs = password::hash_blocking(b"a long passphrase", CHEAP).unwrap();
        assert!(verify_into(&mut buf, b"a long passphrase", &theirs));
        assert!(!verify_into(&mut buf, b"a long passphrasf", &theirs));
        assert!(!verify_into(&mut buf, b"x", "not a hash"));
        // A larger hash after a smaller one: the buffer grows and is reused.
        let big = Argon2Settings {
            memory_kib: 256,
            ..CHEAP
        };
        let h = hash_into(&mut buf, b"pw", big).unwrap();
        assert_eq!(buf.len(), 256);
        assert!(!verify_into(&mut buf, b"pw", &ours));
        assert!(verify_into(&mut buf, b"pw", &h));
        assert_eq!(buf.len(), 256, "never shrunk");
    }

    #[tokio::test]
    async fn at_most_workers_run_and_jobs_beyond_the_queue_are_refused_at_once() {
        let pool = HashPool::new(2, 3);
        // Every job waits for this gate, so nothing finishes while the flood arrives: a refusal
        // seen now was given without waiting for a worker.
        let (open, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let mut jobs = Vec::new();
        for _ in 0..20 {
            let (p, g) = (pool.clone(), gate.clone());
            jobs.push(tokio::spawn(async move {
                p.run(move |_| {
                    let _ = g.lock().map(|g| g.recv());
                })
                .await
            }));
            tokio::task::yield_now().await;
        }
        // Wait until the two workers hold a job each and the rest is refused or waiting (a job
        // sent before a worker was ready to take it fills the queue, so more may be refused).
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while pool.stats().running < 2 || pool.stats().refused < 15 {
            assert!(tokio::time::Instant::now() < deadline, "{:?}", pool.stats());
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let refused_now = pool.stats().refused;
        let mut refused = 0;
        for j in &mut jobs {
            if j.is_finished() {
                let r = j.await.unwrap();
                assert!(matches!(r, Err(SecurityError::Busy(ref m)) if m == BUSY_MESSAGE));
                refused += 1;
            }
        }
        assert_eq!(
            refused, refused_now,
            "every refusal came back while every worker was still busy"
        );
        for _ in 0..(20 - refused) {
            open.send(()).unwrap();
        }
        for j in jobs.into_iter().filter(|j| !j.is_finished()) {
            j.await.unwrap().unwrap();
        }
        // A worker counts itself idle just after handing its result over.
        while pool.stats().running > 0 {
            assert!(tokio::time::Instant::now() < deadline, "{:?}", pool.stats());
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let s = pool.stats();
        assert_eq!(s.peak_running, 2, "{s:?}");
        assert_eq!((s.running, s.refused), (0, refused_now));
    }

    #[tokio::test]
    async fn hashes_and_verifies_through_the_pool() {
        let pool = HashPool::new(1, 1);
        let h = pool.hash(b"secret words".to_vec(), CHEAP).await.unwrap();
        assert!(
            pool.verify(b"secret words".to_vec(), h.clone())
                .await
                .unwrap()
        );
        assert!(!pool.verify(b"other words".to_vec(), h).await.unwrap());
    }
}
