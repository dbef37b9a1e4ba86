//! The one tokio runtime of the process, and the wait that releases the GIL and honours Ctrl-C.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use pinpipe::sink::StopSignal;
use pyo3::prelude::*;
use tokio::runtime::Runtime;

use crate::errors::{to_py, PinpipeError};

/// The runtime and the process that built it.
///
/// A child process after `fork` has the parent's memory but none of its threads. If the parent
/// never ran a job (Airflow's and Celery's worker parents do not: importing `pinpipe` or a DAG
/// file does not start anything), the child builds the runtime on its first call like any
/// process. If the parent had started it, locks held by the parent's worker threads at the fork
/// and the libraries' caches of the parent's runtime (delta-rs keeps handles to it) would hang
/// the child, so the child gets a clear error instead, at once.
static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

pub fn runtime() -> PyResult<&'static Runtime> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((owner, rt)) = *slot {
        if owner == pid {
            return Ok(rt);
        }
        return Err(PinpipeError::new_err(format!(
            "this process (pid {pid}) was forked from process {owner} after pinpipe had started running there; \
             its worker threads do not exist here and its libraries' state cannot be trusted: call pinpipe \
             from a process started fresh (multiprocessing's 'spawn' or 'forkserver'), or fork before the \
             parent's first pinpipe job"
        )));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pinpipe-worker")
        .build()
        .map_err(|e| PinpipeError::new_err(format!("cannot start the async runtime: {e}")))?;
    let rt: &'static Runtime = Box::leak(Box::new(rt));
    *slot = Some((pid, rt));
    Ok(rt)
}

/// How a job stops when the caller is interrupted.
pub enum Stop {
    /// The job has a stop path (the sink, the emulator): signal it and let it finish its work in
    /// hand, as the CLI does on Ctrl-C.
    Graceful(StopSignal),
    /// The job is safe to drop at any await point (its commits are atomic): drop it.
    Abort,
}

/// Bumped by [`stop_running`]: every job running when it changes stops.
static STOP_EPOCH: AtomicU64 = AtomicU64::new(0);

/// Stops every job running in this process, from any thread (Airflow's `on_kill`): the sink and
/// the emulator finish the work in hand and return their summary, other jobs stop at once and
/// raise `PinpipeError`.
pub fn stop_running() {
    STOP_EPOCH.fetch_add(1, Ordering::SeqCst);
}

/// How often the waiting thread looks for a pending signal.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Runs `job` on the runtime with the GIL released. A Ctrl-C (or any signal handler that raises)
/// stops the job as `stop` says, waits for it to wind down, and raises the handler's exception
/// (`KeyboardInterrupt`). A second interrupt while winding down drops the job at once.
pub fn wait<T, F>(py: Python<'_>, job: F, stop: Stop) -> PyResult<T>
where
    T: Send + 'static,
    F: Future<Output = pinpipe::Result<T>> + Send + 'static,
{
    let rt = runtime()?;
    let epoch = STOP_EPOCH.load(Ordering::SeqCst);
    let mut handle = rt.spawn(job);
    loop {
        let polled = py.detach(|| rt.block_on(async { tokio::time::timeout(SIGNAL_POLL, &mut handle).await }));
        match polled {
            Ok(joined) => return finish(joined),
            Err(_) if STOP_EPOCH.load(Ordering::SeqCst) != epoch => {
                tracing::info!("stop requested: stopping the running job");
                match &stop {
                    Stop::Graceful(signal) => signal.stop(),
                    Stop::Abort => handle.abort(),
                }
                let joined = py.detach(|| rt.block_on(&mut handle));
                return finish(joined);
            }
            Err(_) => {
                if let Err(interrupt) = py.check_signals() {
                    match &stop {
                        Stop::Graceful(signal) => signal.stop(),
                        Stop::Abort => handle.abort(),
                    }
                    loop {
                        let polled =
                            py.detach(|| rt.block_on(async { tokio::time::timeout(SIGNAL_POLL, &mut handle).await }));
                        if polled.is_ok() {
                            break;
                        }
                        if py.check_signals().is_err() {
                            handle.abort();
                        }
                    }
                    return Err(interrupt);
                }
            }
        }
    }
}

/// [`wait`] for a job that takes a stop future (the sink, the emulator): interrupting it signals the
/// stop and lets it finish the work in hand.
pub fn wait_stoppable<T, F>(py: Python<'_>, job: impl FnOnce(StopSignal) -> F) -> PyResult<T>
where
    T: Send + 'static,
    F: Future<Output = pinpipe::Result<T>> + Send + 'static,
{
    let stop = StopSignal::default();
    let running = job(stop.clone());
    wait(py, running, Stop::Graceful(stop))
}

fn finish<T>(joined: Result<pinpipe::Result<T>, tokio::task::JoinError>) -> PyResult<T> {
    match joined {
        Ok(result) => result.map_err(to_py),
        Err(e) if e.is_panic() => Err(PinpipeError::new_err(format!("internal error: the job panicked: {e}"))),
        Err(e) => Err(PinpipeError::new_err(format!("the job was cancelled: {e}"))),
    }
}
