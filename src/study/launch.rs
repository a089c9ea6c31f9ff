//! Workers started by a cluster's scheduler: the `sbatch` job-array script that runs `regstudy
//! study work` once per array task. The scheduler starts and restarts processes; the store
//! alone decides who trains what, so a task that dies, is preempted or reaches its time limit
//! loses nothing: its trial is taken over by another worker.

use super::layout::Workers;
use super::name::StudyName;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What every worker of a launch runs with: `regstudy study work`'s options.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerSettings {
    /// Trials trained at once by one worker process, or `auto`: each process times the
    /// divisions of its threads on its own node (`study work --workers auto`).
    pub workers: Workers,
    /// Threads of one worker process in all (0: one per core the task has).
    pub threads: usize,
    /// Seconds without a heartbeat after which a trial is taken over.
    pub stale_after: u64,
    /// Claims of one trial after which it is marked failed.
    pub max_attempts: u32,
    /// The data sets' folder, which every node must see at this path.
    pub data_dir: Option<PathBuf>,
    /// The run folders' folder, on storage every node sees at this path.
    pub runs_dir: Option<PathBuf>,
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
        if let Some(dir) = &w.runs_dir {
            args.push(format!("--runs-dir {}", quote(&dir.display().to_string())));
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
        if self.worker.workers == Workers::Count(0) {
            return refuse("task-workers", "expected at least 1 or `auto`".into());
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
            ("runs-dir", self.worker.runs_dir.as_deref()),
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
                workers: Workers::Count(1),
                threads: 0,
                stale_after: 120,
                max_attempts: 3,
                data_dir: Some(PathBuf::from("/data/it's here")),
                runs_dir: Some(PathBuf::from("/scratch/runs")),
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
--stale-after 120 --max-attempts 3 --data-dir '/data/it'\\''s here' --runs-dir '/scratch/runs'
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
    fn each_task_can_measure_its_own_division_of_threads() {
        let mut auto = job();
        auto.worker.workers = Workers::Auto;
        let script = auto.script().unwrap();
        assert!(script.contains(" --workers auto --threads 4 "), "{script}");
        let mut none = job();
        none.worker.workers = Workers::Count(0);
        assert_eq!(none.script().unwrap_err().option, "task-workers");
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

/// A Kubernetes Indexed Job of workers for one study: `completions` pods, each running
/// `regstudy study work NAME` until no trial is left, the store's URL taken from a secret.
#[derive(Clone, Debug, PartialEq)]
pub struct KubernetesJob {
    pub study: StudyName,
    /// The container image, with `regstudy` on its `PATH`.
    pub image: String,
    /// Pods in all (`completions`).
    pub workers: usize,
    /// Pods at once [default: `workers`].
    pub parallelism: Option<usize>,
    /// The secret whose key `url` holds the store's URL.
    pub store_secret: String,
    /// CPU of each pod, requested and limited (`2`, `500m`).
    pub cpu: String,
    /// Memory of each pod, requested and limited (`4Gi`).
    pub memory: String,
    /// Failed pods of one index before the index is given up (`backoffLimitPerIndex`).
    pub retries_per_index: u32,
    pub worker: WorkerSettings,
}

/// The Kubernetes versions whose schemas the manifest is checked against in CI: the oldest
/// with `backoffLimitPerIndex` on by default, and a recent one.
pub const KUBERNETES_VERSIONS: [&str; 2] = ["1.29.0", "1.33.0"];

impl KubernetesJob {
    /// The Job's name: `regstudy-` and the study's name made a DNS label (lowercase letters,
    /// digits and `-`, at most 63 characters).
    pub fn name(&self) -> String {
        let mut label: String = self
            .study
            .as_str()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        label.truncate(63 - "regstudy-".len());
        format!("regstudy-{}", label.trim_end_matches('-'))
    }

    /// The manifest, for `kubectl apply -f -`.
    pub fn manifest(&self) -> Result<serde_json::Value, LaunchError> {
        self.check()?;
        let name = self.name();
        let labels = serde_json::json!({
            "app.kubernetes.io/name": "regstudy",
            "app.kubernetes.io/instance": name,
        });
        let resources = serde_json::json!({ "cpu": self.cpu, "memory": self.memory });
        Ok(serde_json::json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": { "name": name, "labels": labels },
            "spec": {
                "completionMode": "Indexed",
                "completions": self.workers,
                "parallelism": self.parallelism.unwrap_or(self.workers),
                "backoffLimitPerIndex": self.retries_per_index,
                // A pod evicted, preempted or drained is not a worker's failure: it does not
                // count against the index's retries, and its trial is taken over.
                "podFailurePolicy": {
                    "rules": [{
                        "action": "Ignore",
                        "onPodConditions": [{ "type": "DisruptionTarget", "status": "True" }]
                    }]
                },
                "template": {
                    "metadata": { "labels": labels },
                    "spec": {
                        "restartPolicy": "Never",
                        "terminationGracePeriodSeconds": TERM_BEFORE_LIMIT_S,
                        "containers": [{
                            "name": "worker",
                            "image": self.image,
                            "command": ["regstudy"],
                            "args": self.args(),
                            "env": [{
                                "name": "REGSTUDY_STORE",
                                "valueFrom": {
                                    "secretKeyRef": { "name": self.store_secret, "key": "url" }
                                }
                            }],
                            "resources": { "requests": resources, "limits": resources }
                        }]
                    }
                }
            }
        }))
    }

    /// `study work NAME ...` for the container.
    fn args(&self) -> Vec<String> {
        let w = &self.worker;
        let mut args: Vec<String> = ["study", "work", self.study.as_str(), "--quiet"]
            .map(String::from)
            .into();
        let threads = if w.threads == 0 {
            // Whole cores of the CPU limit, at least one.
            self.cpu
                .parse::<f64>()
                .map_or(1, |c| (c.floor() as usize).max(1))
        } else {
            w.threads
        };
        for (option, value) in [
            ("--workers", w.workers.to_string()),
            ("--threads", threads.to_string()),
            ("--stale-after", w.stale_after.to_string()),
            ("--max-attempts", w.max_attempts.to_string()),
        ] {
            args.extend([option.to_string(), value]);
        }
        for (option, dir) in [("--data-dir", &w.data_dir), ("--runs-dir", &w.runs_dir)] {
            if let Some(dir) = dir {
                args.extend([option.to_string(), dir.display().to_string()]);
            }
        }
        args
    }

    fn check(&self) -> Result<(), LaunchError> {
        let refuse = |option, problem: String| Err(LaunchError { option, problem });
        if self.workers == 0 {
            return refuse("workers", "expected at least one worker".into());
        }
        match self.parallelism {
            Some(0) => return refuse("parallelism", "expected at least 1".into()),
            Some(k) if k > self.workers => {
                return refuse(
                    "parallelism",
                    format!("{k} pods at once is more than the {} workers", self.workers),
                )
            }
            _ => {}
        }
        if self.image.is_empty() || self.image.contains(char::is_whitespace) {
            return refuse("image", format!("`{}` is not an image name", self.image));
        }
        if !is_dns_subdomain(&self.store_secret) {
            return refuse(
                "store-secret",
                format!(
                    "`{}` is not a secret's name (lowercase letters, digits, `-` and `.`)",
                    self.store_secret
                ),
            );
        }
        for (option, value) in [("cpu", &self.cpu), ("memory", &self.memory)] {
            if !is_quantity(value) {
                return refuse(
                    option,
                    format!("`{value}` is not a Kubernetes quantity (e.g. `2`, `500m`, `4Gi`)"),
                );
            }
        }
        if self.worker.workers == Workers::Count(0) {
            return refuse("task-workers", "expected at least 1 or `auto`".into());
        }
        Ok(())
    }
}

/// A name Kubernetes takes for a secret: lowercase letters, digits, `-` and `.`, starting and
/// ending with a letter or digit, at most 253 characters.
fn is_dns_subdomain(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    name.len() <= 253
        && edge(name.chars().next())
        && edge(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// A Kubernetes quantity: a decimal number with an optional suffix (`m`, `k`, `M`, `G`, `Ki`,
/// `Mi`, `Gi`, `Ti`...).
fn is_quantity(text: &str) -> bool {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &text[digits.len()..];
    let suffixes = [
        "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    !digits.is_empty()
        && digits.parse::<f64>().is_ok_and(|v| v > 0.0)
        && !digits.starts_with(['+', '-'])
        && suffixes.contains(&suffix)
}

/// `value` as YAML: block mappings and sequences; a string plain where YAML reads it back as
/// that string, else as JSON writes it (every JSON scalar is a YAML flow scalar), so that the
/// text reads back as `value` exactly.
pub fn to_yaml(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_yaml(value, 0, &mut out);
    out
}

/// A scalar as YAML: plain for a word that YAML cannot take for a number, a boolean or null,
/// or for syntax; otherwise JSON.
fn yaml_scalar(value: &serde_json::Value) -> String {
    let serde_json::Value::String(text) = value else {
        return value.to_string();
    };
    let reserved = [
        "true", "false", "yes", "no", "on", "off", "null", "y", "n", "~",
    ];
    let plain = text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        && !reserved.contains(&text.to_ascii_lowercase().as_str());
    if plain {
        text.clone()
    } else {
        value.to_string()
    }
}

fn write_yaml(value: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value;
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let key = yaml_scalar(&Value::String(key.clone()));
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        let _ = writeln!(out, "{pad}{key}:");
                        write_yaml(v, indent + 2, out);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        let _ = writeln!(out, "{pad}{key}:");
                        write_yaml(v, indent, out);
                    }
                    scalar => {
                        let _ = writeln!(out, "{pad}{key}: {}", yaml_scalar(scalar));
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                let mut inner = String::new();
                match item {
                    Value::Object(_) | Value::Array(_) => write_yaml(item, indent + 2, &mut inner),
                    scalar => {
                        inner = format!("{}{}\n", " ".repeat(indent + 2), yaml_scalar(scalar))
                    }
                }
                // The first line of the item follows the dash.
                let _ = write!(out, "{pad}- {}", &inner[indent + 2..]);
            }
        }
        scalar => {
            let _ = writeln!(out, "{pad}{}", yaml_scalar(scalar));
        }
    }
}

#[cfg(test)]
mod kubernetes_tests {
    use super::*;

    fn job() -> KubernetesJob {
        KubernetesJob {
            study: StudyName::new("Deepa_2025").unwrap(),
            image: "registry.example.org/regstudy:0.1".into(),
            workers: 16,
            parallelism: Some(8),
            store_secret: "regstudy-store".into(),
            cpu: "4".into(),
            memory: "8Gi".into(),
            retries_per_index: 3,
            worker: WorkerSettings {
                workers: Workers::Count(1),
                threads: 0,
                stale_after: 120,
                max_attempts: 5,
                data_dir: Some(PathBuf::from("/data")),
                runs_dir: None,
            },
        }
    }

    #[test]
    fn the_manifest_is_an_indexed_job_whose_pods_work_on_the_study() {
        let m = job().manifest().unwrap();
        assert_eq!(m["metadata"]["name"], "regstudy-deepa-2025");
        let spec = &m["spec"];
        assert_eq!(spec["completionMode"], "Indexed");
        assert_eq!(
            (spec["completions"].as_u64(), spec["parallelism"].as_u64()),
            (Some(16), Some(8))
        );
        assert_eq!(spec["backoffLimitPerIndex"], 3);
        assert_eq!(spec["podFailurePolicy"]["rules"][0]["action"], "Ignore");
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        let container = &pod["containers"][0];
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "study",
                "work",
                "Deepa_2025",
                "--quiet",
                "--workers",
                "1",
                "--threads",
                "4",
                "--stale-after",
                "120",
                "--max-attempts",
                "5",
                "--data-dir",
                "/data"
            ]
        );
        let store = &container["env"][0];
        assert_eq!(store["name"], "REGSTUDY_STORE");
        assert_eq!(store["valueFrom"]["secretKeyRef"]["name"], "regstudy-store");
        assert_eq!(container["resources"]["limits"]["memory"], "8Gi");
    }

    #[test]
    fn each_pod_can_measure_its_own_division_of_threads() {
        let mut auto = job();
        auto.worker.workers = Workers::Auto;
        let m = auto.manifest().unwrap();
        let args = &m["spec"]["template"]["spec"]["containers"][0]["args"];
        assert_eq!(args[4], "--workers");
        assert_eq!(args[5], "auto");
    }

    #[test]
    fn the_rules_schemas_cannot_check_are_checked_here() {
        let mut more = job();
        more.parallelism = Some(17);
        assert_eq!(more.manifest().unwrap_err().option, "parallelism");
        let mut secret = job();
        secret.store_secret = "Store_Secret".into();
        assert_eq!(secret.manifest().unwrap_err().option, "store-secret");
        let mut cpu = job();
        cpu.cpu = "two".into();
        assert_eq!(cpu.manifest().unwrap_err().option, "cpu");
        let mut memory = job();
        memory.memory = "4GB".into();
        assert_eq!(memory.manifest().unwrap_err().option, "memory");
        let mut none = job();
        none.workers = 0;
        assert_eq!(none.manifest().unwrap_err().option, "workers");
        let mut default = job();
        default.parallelism = None;
        assert_eq!(default.manifest().unwrap()["spec"]["parallelism"], 16);
    }

    #[test]
    fn the_yaml_is_block_style_with_json_scalars() {
        let value = serde_json::json!({
            "a": 1,
            "b": { "c": "x y", "d": [1, { "e": true, "f": [] }] },
            "g": [],
            "h": ["4", "true", "batch/v1", "8Gi", "app.kubernetes.io/name"]
        });
        let expected = "a: 1
b:
  c: \"x y\"
  d:
  - 1
  - e: true
    f: []
g: []
h:
- \"4\"
- \"true\"
- batch/v1
- \"8Gi\"
- app.kubernetes.io/name
";
        assert_eq!(to_yaml(&value), expected);
    }
}
