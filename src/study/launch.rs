//! Workers started by a cluster's scheduler: the `sbatch` job-array script that runs `regstudy
//! study work` once per array task. The scheduler starts and restarts processes; the store
//! alone decides who trains what, so a task that dies, is preempted or reaches its time limit
//! loses nothing: its trial is taken over by another worker.

use super::name::StudyName;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What every worker of a launch runs with: `regstudy study work`'s options.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerSettings {
    /// Trials trained at once by one worker process.
    pub workers: usize,
    /// Threads of one worker process in all (0: one per core the task has).
    pub threads: usize,
    /// Seconds without a heartbeat after which a trial is taken over.
    pub stale_after: u64,
    /// Claims of one trial after which it is marked failed.
    pub max_attempts: u32,
    /// The data sets' folder, which every node must see at this path.
    pub data_dir: Option<PathBuf>,
}

/// An `sbatch` job array of workers for one study. Built unchecked, then
/// [`SlurmJob::script`] checks every value that goes into the script.
#[derive(Clone, Debug, PartialEq)]
pub struct SlurmJob {
    pub study: StudyName,
    /// Array tasks, each one worker process.
    pub tasks: usize,
    /// At most this many tasks at once (`--array=0-N%K`); all when `None`.
    pub max_running: Option<usize>,
    pub partition: Option<String>,
    /// The time limit, in a form Slurm takes (`MM`, `HH:MM:SS`, `D-HH`...).
    pub time: Option<String>,
    pub cpus_per_task: usize,
    /// Memory per task, in a form Slurm takes (`4G`, `4000M`).
    pub mem: Option<String>,
    /// Where each task's output goes (`%x-%A_%a.out` in it).
    pub log_dir: PathBuf,
    /// The `regstudy` binary the tasks run (every node must see it at this path).
    pub binary: PathBuf,
    pub worker: WorkerSettings,
}

/// A launch setting that cannot go into a script.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--{option}: {problem}")]
pub struct LaunchError {
    pub option: &'static str,
    pub problem: String,
}

/// How long before its time limit Slurm sends a task SIGTERM (`--signal=B:TERM@120`), so that
/// its worker stops at a known point rather than being killed.
pub const TERM_BEFORE_LIMIT_S: u32 = 120;

impl SlurmJob {
    /// The job script. The store's URL is not in it: the tasks read `REGSTUDY_STORE` (and
    /// `PGPASSWORD`) from the environment `sbatch` passes on, so the script can be kept and
    /// shown without the password.
    pub fn script(&self) -> Result<String, LaunchError> {
        self.check()?;
        let mut s = String::from("#!/bin/bash\n");
        let mut directive = |line: String| writeln!(s, "#SBATCH {line}").expect("to a String");
        directive(format!("--job-name=regstudy-{}", self.study.as_str()));
        let limit = self.max_running.map_or(String::new(), |k| format!("%{k}"));
        directive(format!("--array=0-{}{limit}", self.tasks - 1));
        directive("--ntasks=1".into());
        directive(format!("--cpus-per-task={}", self.cpus_per_task));
        if let Some(mem) = &self.mem {
            directive(format!("--mem={mem}"));
        }
        if let Some(time) = &self.time {
            directive(format!("--time={time}"));
        }
        if let Some(partition) = &self.partition {
            directive(format!("--partition={partition}"));
        }
        directive(format!("--signal=B:TERM@{TERM_BEFORE_LIMIT_S}"));
        directive("--export=ALL".into());
        directive(format!(
            "--output={}",
            self.log_dir.join("%x-%A_%a.out").display()
        ));
        s.push_str(
            "\n# One worker per array task. The store comes from REGSTUDY_STORE in the \
             environment,\n# never from this file. `exec` makes the worker the task's process, \
             so Slurm's signals reach it.\nset -euo pipefail\n",
        );
        s.push_str(&self.command());
        s.push('\n');
        Ok(s)
    }

    /// `exec regstudy study work NAME ...`, each argument quoted for the shell.
    fn command(&self) -> String {
        let w = &self.worker;
        let threads = if w.threads == 0 {
            self.cpus_per_task
        } else {
            w.threads
        };
        let mut args = vec![
            quote(&self.binary.display().to_string()),
            "study".into(),
            "work".into(),
            self.study.as_str().into(),
            "--quiet".into(),
            format!("--workers {}", w.workers),
            format!("--threads {threads}"),
            format!("--stale-after {}", w.stale_after),
            format!("--max-attempts {}", w.max_attempts),
        ];
        if let Some(dir) = &w.data_dir {
            args.push(format!("--data-dir {}", quote(&dir.display().to_string())));
        }
        format!("exec {}", args.join(" "))
    }

    fn check(&self) -> Result<(), LaunchError> {
        let refuse = |option, problem: String| Err(LaunchError { option, problem });
        if self.tasks == 0 {
            return refuse("workers", "expected at least one worker".into());
        }
        if self.max_running == Some(0) {
            return refuse("max-running", "expected at least 1".into());
        }
        if self.cpus_per_task == 0 {
            return refuse("cpus-per-task", "expected at least 1".into());
        }
        if self.worker.workers == 0 {
            return refuse("task-workers", "expected at least 1".into());
        }
        for (option, value) in [
            ("partition", &self.partition),
            ("time", &self.time),
            ("mem", &self.mem),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !is_plain(v)) {
                return refuse(
                    option,
                    format!(
                        "`{}` is not a Slurm value (expected letters, digits and `-_.:,`)",
                        v.escape_debug()
                    ),
                );
            }
        }
        for (option, path) in [
            ("log-dir", Some(self.log_dir.as_path())),
            ("data-dir", self.worker.data_dir.as_deref()),
            ("binary", Some(self.binary.as_path())),
        ] {
            if let Some(path) = path.filter(|p| !p.is_absolute() || has_newline(p)) {
                return refuse(
                    option,
                    format!(
                        "{} must be an absolute path without line breaks: every node reads it",
                        path.display()
                    ),
                );
            }
        }
        Ok(())
    }
}

/// Letters, digits and `-_.:,`: what partitions, time limits and memory sizes are made of,
/// and nothing a shell or `#SBATCH` line would read otherwise.
fn is_plain(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:,".contains(c))
}

fn has_newline(path: &Path) -> bool {
    path.to_string_lossy().contains(['\n', '\r'])
}

/// `text` in single quotes for a POSIX shell (a `'` inside becomes `'\''`).
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> SlurmJob {
        SlurmJob {
            study: StudyName::new("deepa2025").unwrap(),
            tasks: 8,
            max_running: Some(4),
            partition: Some("gpu-short".into()),
            time: Some("02:00:00".into()),
            cpus_per_task: 4,
            mem: Some("8G".into()),
            log_dir: PathBuf::from("/scratch/logs"),
            binary: PathBuf::from("/opt/regstudy/bin/regstudy"),
            worker: WorkerSettings {
                workers: 1,
                threads: 0,
                stale_after: 120,
                max_attempts: 3,
                data_dir: Some(PathBuf::from("/data/it's here")),
            },
        }
    }

    #[test]
    fn the_script_is_a_job_array_that_execs_one_worker_per_task() {
        let script = job().script().unwrap();
        let expected = "#!/bin/bash
#SBATCH --job-name=regstudy-deepa2025
#SBATCH --array=0-7%4
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=02:00:00
#SBATCH --partition=gpu-short
#SBATCH --signal=B:TERM@120
#SBATCH --export=ALL
#SBATCH --output=/scratch/logs/%x-%A_%a.out

# One worker per array task. The store comes from REGSTUDY_STORE in the environment,
# never from this file. `exec` makes the worker the task's process, so Slurm's signals reach it.
set -euo pipefail
exec '/opt/regstudy/bin/regstudy' study work deepa2025 --quiet --workers 1 --threads 4 \
--stale-after 120 --max-attempts 3 --data-dir '/data/it'\\''s here'
";
        assert_eq!(script, expected.replace("\\\n", ""));
    }

    #[test]
    fn values_a_shell_would_read_are_refused_by_option() {
        let mut bad = job();
        bad.partition = Some("main; rm -rf ~".into());
        let e = bad.script().unwrap_err();
        assert_eq!(e.option, "partition");
        let mut relative = job();
        relative.log_dir = PathBuf::from("logs");
        assert_eq!(relative.script().unwrap_err().option, "log-dir");
        let mut none = job();
        none.tasks = 0;
        assert_eq!(none.script().unwrap_err().option, "workers");
    }

    #[test]
    fn without_optional_settings_the_script_leaves_them_to_the_cluster() {
        let mut plain = job();
        (plain.partition, plain.time, plain.mem, plain.max_running) = (None, None, None, None);
        let script = plain.script().unwrap();
        assert!(script.contains("#SBATCH --array=0-7\n"), "{script}");
        for absent in ["--partition", "--time", "--mem"] {
            assert!(!script.contains(absent), "{script}");
        }
    }
}
