//! Who holds a trial, and when a holder counts as gone so that its trial is claimed again.
//!
//! The rule is kept apart from any store: a store reads the holder of each running trial
//! (its host, process id, worker name and last heartbeat) and asks [`Holder::is_gone`].

use std::path::Path;
use std::time::Duration;

/// Who holds a trial: a name unique among the live workers (host, process and thread) and,
/// where the worker is a process on this host, its process id, so that a trial held by a
/// process that no longer exists is reclaimed at once rather than after the heartbeat
/// timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worker {
    pub name: String,
    pub host: String,
    pub pid: u32,
}

impl Worker {
    /// A worker of this process; `index` tells apart the workers of one process. The name
    /// is `host:pid:start:index`, where `start` (the process's start time in nanoseconds)
    /// tells apart two processes that got the same pid, such as a container restarted under
    /// the same host name.
    pub fn of_this_process(index: usize) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "localhost".into());
        let pid = std::process::id();
        Worker {
            name: format!("{}:{index}", process_name(&host, pid)),
            host,
            pid,
        }
    }

    /// The name of the worker's process: its name without the worker index.
    pub fn process(&self) -> &str {
        self.name
            .rsplit_once(':')
            .map_or(&self.name, |(process, _)| process)
    }
}

/// `host:pid:start` of this process, the same for every call.
fn process_name(host: &str, pid: u32) -> String {
    static START: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let start = START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    });
    format!("{host}:{pid}:{start}")
}

/// The worker recorded as holding a running trial, as a store keeps it. Every part may be
/// missing in a row written by hand or by an older schema; a missing part never makes a
/// holder look alive.
#[derive(Clone, Debug, PartialEq)]
pub struct Holder {
    pub host: Option<String>,
    pub pid: Option<u32>,
    /// Unix seconds of the last heartbeat.
    pub heartbeat: Option<f64>,
    /// The holder's [`Worker::name`].
    pub worker: Option<String>,
}

impl Holder {
    /// Whether the holder is gone, as seen by `claimant` at `now` (Unix seconds): its
    /// heartbeat is `stale_after` old or older (`now - heartbeat >= stale_after`), or it was a
    /// process on the claimant's host that no longer exists. A holder of the claimant's own
    /// process is alive by definition, and only the heartbeat can condemn it; a holder with
    /// the claimant's pid but another process name was an earlier process that had the same
    /// pid (a restarted container), and is gone.
    pub fn is_gone(&self, claimant: &Worker, stale_after: Duration, now: f64) -> bool {
        self.is_gone_given(claimant, stale_after, now, process_exists)
    }

    /// Whether the holder was a process on the claimant's host that no longer exists (or an
    /// earlier process with the claimant's pid): the part of [`Holder::is_gone`] that a store
    /// whose heartbeats follow the database server's clock cannot ask the database.
    pub fn process_is_gone_here(&self, claimant: &Worker) -> bool {
        self.process_is_gone(claimant, process_exists)
    }

    /// [`Holder::is_gone`], with `exists` telling whether a process id is alive on this host.
    fn is_gone_given(
        &self,
        claimant: &Worker,
        stale_after: Duration,
        now: f64,
        exists: impl Fn(u32) -> bool,
    ) -> bool {
        let stale = self
            .heartbeat
            .is_none_or(|beat| now - beat >= stale_after.as_secs_f64());
        stale || self.process_is_gone(claimant, exists)
    }

    fn process_is_gone(&self, claimant: &Worker, exists: impl Fn(u32) -> bool) -> bool {
        match (&self.host, self.pid) {
            (Some(host), Some(pid)) if *host == claimant.host && pid != claimant.pid => {
                pid != 0 && !exists(pid)
            }
            (Some(host), Some(pid)) if *host == claimant.host && pid == claimant.pid => {
                let mine = format!("{}:", claimant.process());
                self.worker
                    .as_deref()
                    .is_some_and(|w| !w.starts_with(&mine))
            }
            _ => false,
        }
    }
}

/// Whether process `pid` exists on this host. Without `/proc` (not Linux) it cannot be told,
/// and the answer is yes: the heartbeat alone then decides.
fn process_exists(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(60);
    const NOW: f64 = 1_000_000.0;

    fn claimant() -> Worker {
        Worker {
            name: "box:100:7:0".into(),
            host: "box".into(),
            pid: 100,
        }
    }

    /// A holder on host `host`, process `pid` (named `process`), that beat at `heartbeat`.
    fn holder(host: &str, pid: u32, process: &str, heartbeat: Option<f64>) -> Holder {
        Holder {
            host: Some(host.into()),
            pid: Some(pid),
            heartbeat,
            worker: Some(format!("{process}:1")),
        }
    }

    fn alive(_: u32) -> bool {
        true
    }

    fn dead(_: u32) -> bool {
        false
    }

    #[test]
    fn a_heartbeat_as_old_as_the_timeout_is_stale_and_a_younger_one_is_not() {
        let old = holder("other", 5, "other:5:1", Some(NOW - 60.0));
        assert!(old.is_gone_given(&claimant(), TIMEOUT, NOW, alive));
        let young = holder("other", 5, "other:5:1", Some(NOW - 59.5));
        assert!(!young.is_gone_given(&claimant(), TIMEOUT, NOW, alive));
    }

    #[test]
    fn a_holder_that_never_beat_is_gone() {
        let never = holder("other", 5, "other:5:1", None);
        assert!(never.is_gone_given(&claimant(), TIMEOUT, NOW, alive));
    }

    #[test]
    fn a_holder_on_another_host_is_judged_by_its_heartbeat_alone() {
        let remote = holder("other", 5, "other:5:1", Some(NOW - 1.0));
        assert!(!remote.is_gone_given(&claimant(), TIMEOUT, NOW, dead));
    }

    #[test]
    fn a_holder_whose_process_is_gone_from_this_host_is_gone_at_once() {
        let local = holder("box", 5, "box:5:1", Some(NOW - 1.0));
        assert!(local.is_gone_given(&claimant(), TIMEOUT, NOW, dead));
        assert!(!local.is_gone_given(&claimant(), TIMEOUT, NOW, alive));
    }

    #[test]
    fn a_holder_without_a_process_id_is_judged_by_its_heartbeat_alone() {
        let unknown = holder("box", 0, "box:0:1", Some(NOW - 1.0));
        assert!(!unknown.is_gone_given(&claimant(), TIMEOUT, NOW, dead));
        let no_pid = Holder {
            pid: None,
            ..holder("box", 5, "box:5:1", Some(NOW - 1.0))
        };
        assert!(!no_pid.is_gone_given(&claimant(), TIMEOUT, NOW, dead));
    }

    #[test]
    fn a_holder_of_the_claimants_own_process_lives_until_its_heartbeat_stops() {
        let sibling = holder("box", 100, "box:100:7", Some(NOW - 1.0));
        assert!(!sibling.is_gone_given(&claimant(), TIMEOUT, NOW, dead));
        let silent = holder("box", 100, "box:100:7", Some(NOW - 61.0));
        assert!(silent.is_gone_given(&claimant(), TIMEOUT, NOW, alive));
    }

    #[test]
    fn an_earlier_process_that_had_the_claimants_pid_is_gone() {
        let earlier = holder("box", 100, "box:100:3", Some(NOW - 1.0));
        assert!(earlier.is_gone_given(&claimant(), TIMEOUT, NOW, alive));
        let unnamed = Holder {
            worker: None,
            ..earlier
        };
        assert!(!unnamed.is_gone_given(&claimant(), TIMEOUT, NOW, alive));
    }

    #[test]
    fn this_process_exists_on_this_host() {
        assert!(process_exists(std::process::id()));
    }

    #[test]
    fn a_worker_names_its_process_without_its_index() {
        let worker = Worker::of_this_process(3);
        assert!(worker.name.ends_with(":3"), "{}", worker.name);
        assert_eq!(format!("{}:3", worker.process()), worker.name);
        assert_eq!(
            Worker::of_this_process(4).process(),
            worker.process(),
            "workers of one process share its name"
        );
    }
}
