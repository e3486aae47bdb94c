//! A persistent thread pool for row-parallel kernels.
//!
//! Decode issues ~170 small matmuls per token, so per-call overhead matters
//! more than anything else here: workers spin briefly on a generation counter
//! after each job (catching the next matmul without a futex wake-up), then
//! park. The calling thread always takes part, so a pool of `n` threads has
//! `n - 1` workers. Tasks are claimed dynamically from an atomic counter, so a
//! core busy with something else does not stall the whole call.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::{JoinHandle, Thread};

/// How long an idle worker spins before parking (iterations of
/// `spin_loop`, roughly 10-40 ns each).
const SPIN_ITERS: usize = 1 << 14;

/// How long the caller spins for the last tasks before sleeping (~20-50 us).
const CALLER_SPIN_ITERS: usize = 1 << 11;

/// Tasks per round; `run` splits larger jobs into rounds.
const MAX_TASKS: usize = 0xFFFF;

type Job = dyn Fn(usize) + Sync;

/// The claim word: `generation << 32 | n_tasks << 16 | next_index`.
///
/// Workers claim a task with a compare-and-swap on the whole word, so a
/// worker that wakes up late (after its job ended) can never claim a task of
/// a newer job with stale data, and the caller only ever waits for tasks that
/// were actually claimed, never for a worker that is not running.
fn pack(generation: u64, n_tasks: usize, next: usize) -> u64 {
    (generation << 32) | ((n_tasks as u64) << 16) | next as u64
}
fn generation_of(word: u64) -> u64 {
    word >> 32
}

struct Shared {
    claim: AtomicU64,
    /// The current job: the address of a `&Job` on the caller's stack
    /// (lifetime erased, see `run`).
    job: AtomicUsize,
    /// Tasks of the current job that have finished.
    done: AtomicUsize,
    /// Set while the caller sleeps waiting for the last tasks (a worker was
    /// preempted mid-task: the caller's core going idle lets the OS move the
    /// worker there at once, instead of the caller spinning a time slice).
    caller_sleeping: AtomicBool,
    caller: Mutex<Option<Thread>>,
    panicked: AtomicBool,
    shutdown: AtomicBool,
    sleeping: Vec<AtomicBool>,
}

impl Shared {
    /// Claims the next task of job `generation`, if any is left.
    fn claim(&self, generation: u64) -> Option<usize> {
        let mut word = self.claim.load(Ordering::Acquire);
        loop {
            let n = ((word >> 16) & 0xFFFF) as usize;
            let next = (word & 0xFFFF) as usize;
            if generation_of(word) != generation || next >= n {
                return None;
            }
            match self.claim.compare_exchange_weak(
                word,
                word + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(next),
                Err(w) => word = w,
            }
        }
    }

    /// Runs tasks of job `generation` until none is left.
    fn work(&self, generation: u64) {
        while let Some(i) = self.claim(generation) {
            // SAFETY: a successful claim of task `i` of the current job means
            // the caller of `run` is still waiting for this task (it returns
            // only when `done` counts every task), so the `&Job` it published
            // in `job` before opening the job is alive and unchanged.
            let f: &Job = unsafe { *(self.job.load(Ordering::Acquire) as *const &Job) };
            if catch_unwind(AssertUnwindSafe(|| f(i))).is_err() {
                self.panicked.store(true, Ordering::Relaxed);
            }
            let n_done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
            if n_done == ((self.claim.load(Ordering::Relaxed) >> 16) & 0xFFFF) as usize
                && self.caller_sleeping.load(Ordering::SeqCst)
            {
                if let Some(t) = self
                    .caller
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                {
                    t.unpark();
                }
            }
        }
    }
}

/// A fixed set of worker threads that run `Fn(task_index)` jobs.
pub struct ThreadPool {
    shared: Arc<Shared>,
    threads: Vec<(JoinHandle<()>, Thread)>,
    /// Serializes callers (two sessions may call matmul concurrently); holds
    /// the generation counter.
    call_lock: Mutex<u64>,
}

impl ThreadPool {
    /// A pool running on `n_threads` threads in total (the caller plus
    /// `n_threads - 1` workers); `0` is treated as `1`.
    pub fn new(n_threads: usize) -> ThreadPool {
        let n_workers = n_threads.max(1) - 1;
        let shared = Arc::new(Shared {
            claim: AtomicU64::new(0),
            job: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            caller_sleeping: AtomicBool::new(false),
            caller: Mutex::new(None),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleeping: (0..n_workers).map(|_| AtomicBool::new(false)).collect(),
        });
        let threads = (0..n_workers)
            .filter_map(|i| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("codegen-kernels-{i}"))
                    .spawn(move || worker(s, i))
                    .ok()
                    .map(|h| {
                        let t = h.thread().clone();
                        (h, t)
                    })
            })
            .collect::<Vec<_>>();
        ThreadPool {
            shared,
            threads,
            call_lock: Mutex::new(0),
        }
    }

    /// Threads taking part in a job, the caller included.
    pub fn n_threads(&self) -> usize {
        self.threads.len() + 1
    }

    /// Runs `f(i)` for every `i in 0..n_tasks`, spread over the pool, and
    /// returns when all are done. A panic in `f` is re-raised here.
    ///
    /// A `run` nested inside a task (of any pool) runs serially on the
    /// calling thread instead of deadlocking.
    pub fn run(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if self.threads.is_empty() || n_tasks <= 1 || IN_TASK.with(|t| t.get()) {
            (0..n_tasks).for_each(f);
            return;
        }
        let mut start = 0;
        while start < n_tasks {
            let n = (n_tasks - start).min(MAX_TASKS);
            if start == 0 && n == n_tasks {
                self.run_round(n, f);
            } else {
                self.run_round(n, &|i| f(start + i));
            }
            start += n;
        }
    }

    fn run_round(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        let mut generation = self.call_lock.lock().unwrap_or_else(|e| e.into_inner());
        // Generation 0 is what idle workers start from; skip it on wrap-around.
        *generation = ((*generation + 1) & 0xFFFF_FFFF).max(1);
        let generation = *generation;
        let s = &*self.shared;
        // Publish the job: workers read `job` only after claiming a task,
        // i.e. after the Release store of `claim` below, and this function
        // does not return before every claimed task is done.
        let f_ref: &(dyn Fn(usize) + Sync) = f;
        s.job.store(
            &f_ref as *const &(dyn Fn(usize) + Sync) as *const () as usize,
            Ordering::Relaxed,
        );
        s.done.store(0, Ordering::Relaxed);
        s.claim
            .store(pack(generation, n_tasks, 0), Ordering::SeqCst);
        for (i, (_, t)) in self.threads.iter().enumerate() {
            if s.sleeping[i].load(Ordering::SeqCst) {
                t.unpark();
            }
        }
        // The caller works too.
        IN_TASK.with(|t| t.set(true));
        s.work(generation);
        IN_TASK.with(|t| t.set(false));
        let mut spins = 0usize;
        while s.done.load(Ordering::Acquire) < n_tasks {
            spins += 1;
            if spins < CALLER_SPIN_ITERS {
                std::hint::spin_loop();
                continue;
            }
            // Sleep until the worker finishing the last task wakes us.
            *s.caller.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::thread::current());
            s.caller_sleeping.store(true, Ordering::SeqCst);
            while s.done.load(Ordering::SeqCst) < n_tasks {
                std::thread::park_timeout(std::time::Duration::from_millis(1));
            }
            s.caller_sleeping.store(false, Ordering::SeqCst);
        }
        if s.panicked.swap(false, Ordering::Relaxed) {
            panic!("codegen-kernels: a kernel task panicked");
        }
    }
}

thread_local! {
    /// True on pool workers, and on a caller while it runs tasks.
    static IN_TASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn worker(s: Arc<Shared>, idx: usize) {
    IN_TASK.with(|t| t.set(true));
    let mut seen = 0u64;
    loop {
        // Wait for a new job: spin, then park.
        let mut spins = 0usize;
        let generation = loop {
            let g = generation_of(s.claim.load(Ordering::Acquire));
            if g != seen {
                break g;
            }
            if s.shutdown.load(Ordering::Relaxed) {
                return;
            }
            spins += 1;
            if spins < SPIN_ITERS {
                std::hint::spin_loop();
            } else {
                s.sleeping[idx].store(true, Ordering::SeqCst);
                if generation_of(s.claim.load(Ordering::SeqCst)) == seen
                    && !s.shutdown.load(Ordering::SeqCst)
                {
                    std::thread::park();
                }
                s.sleeping[idx].store(false, Ordering::SeqCst);
                spins = 0;
            }
        };
        seen = generation;
        s.work(generation);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for (h, t) in self.threads.drain(..) {
            t.unpark();
            let _ = h.join();
        }
    }
}

static GLOBAL: OnceLock<RwLock<Arc<ThreadPool>>> = OnceLock::new();

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn global() -> &'static RwLock<Arc<ThreadPool>> {
    GLOBAL.get_or_init(|| RwLock::new(Arc::new(ThreadPool::new(default_threads()))))
}

/// The pool matmuls run on.
pub(crate) fn global_pool() -> Arc<ThreadPool> {
    global().read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Runs `f(i)` for `i in 0..n_tasks` on the kernels' thread pool (the caller
/// takes part) and returns when all are done. For the model's other
/// row-parallel work (attention heads, norms over tokens), so everything
/// shares one set of threads.
pub fn parallel_for(n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
    global_pool().run(n_tasks, f);
}

/// Threads used by the kernels (default: all cores; [`set_num_threads`]
/// resizes, as the model crate's runtime configuration does).
pub fn num_threads() -> usize {
    global_pool().n_threads()
}

/// Resizes the kernels' thread pool (the caller counts as one thread).
pub fn set_num_threads(n_threads: usize) {
    let n = n_threads.max(1);
    let mut g = global().write().unwrap_or_else(|e| e.into_inner());
    if g.n_threads() != n {
        *g = Arc::new(ThreadPool::new(n));
    }
}
