//! SIGTERM and SIGINT for the commands that run study workers: the first asks the workers to
//! stop after the epoch they are training and hand their trials back to the store (a Slurm
//! task near its time limit, a preempted pod, Ctrl-C); a second one ends the process at once.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);

const NOTICE: &[u8] =
    b"\nregstudy: stopping after the running epoch, handing the trial back (signal again to quit now)\n";

/// Runs in the signal's context: only atomics, `write(2)` and `_exit(2)`, which are
/// async-signal-safe.
extern "C" fn on_signal(signal: libc::c_int) {
    if STOP.swap(true, Ordering::SeqCst) {
        // SAFETY: `_exit` is async-signal-safe and never returns.
        unsafe { libc::_exit(128 + signal) }
    }
    SIGNAL.store(signal, Ordering::SeqCst);
    // SAFETY: `write` is async-signal-safe; NOTICE is a valid buffer of its length. A failed
    // write (no stderr) changes nothing.
    unsafe {
        libc::write(2, NOTICE.as_ptr().cast(), NOTICE.len());
    }
}

/// Installs the handlers; the flag they set, for [`regstudy::study::runner::StudyRunOptions`].
pub fn stop_on_signals() -> &'static AtomicBool {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: `on_signal` has the signature a handler needs and does only
        // async-signal-safe work.
        unsafe {
            libc::signal(signal, on_signal as *const () as libc::sighandler_t);
        }
    }
    &STOP
}

/// The signal that stopped the workers, if one did.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// Restores the default action of SIGPIPE, which Rust programs ignore: output piped into a
/// reader that stops early (`regstudy study status | head -3`) then ends the process
/// quietly, as it ends any Unix tool, instead of in a panic on the failed write. Sockets are
/// not affected: the standard library writes to them with `MSG_NOSIGNAL`.
pub fn end_quietly_on_closed_pipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL installs no handler; called before
    // any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
