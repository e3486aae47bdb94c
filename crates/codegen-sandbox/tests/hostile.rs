//! Hostile programs: each must be contained and reported as failed or timed
//! out, with the host unaffected. These tests need a kernel that allows user
//! namespaces (they fail, rather than skip, where it does not).

#![cfg(target_os = "linux")]

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codegen_sandbox::{Isolation, Outcome, Sandbox, SandboxConfig, Status};

const TIMEOUT: Duration = Duration::from_secs(4);

fn sandbox() -> Sandbox {
    let cfg = SandboxConfig {
        timeout: TIMEOUT,
        cpu_seconds: 8,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(cfg).unwrap_or_else(|e| panic!("the sandbox must work here: {e}"));
    assert_eq!(sandbox.isolation(), &Isolation::Namespaces);
    sandbox
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("codegen-{tag}-{}-{nanos:x}", std::process::id())
}

fn failed_line(outcome: &Outcome) -> &str {
    match &outcome.status {
        Status::Failed { last_line } => last_line,
        other => panic!("expected Failed, got {other:?}\nstderr: {}", outcome.stderr),
    }
}

fn assert_failed_or_timed_out(outcome: &Outcome) {
    assert!(
        matches!(outcome.status, Status::Failed { .. } | Status::TimedOut),
        "expected failed or timed out, got {:?}\nstderr: {}",
        outcome.status,
        outcome.stderr
    );
}

fn assert_within_timeout(outcome: &Outcome) {
    assert!(
        outcome.duration < TIMEOUT + Duration::from_secs(3),
        "the run took {:?}",
        outcome.duration
    );
}

/// Host pids whose command line contains `marker`.
fn processes_with_marker(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(marker) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Directory that anyone may write to, so only the sandbox can stop a write.
fn world_writable_dir(base: &Path) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("codegen-hostile-")
        .tempdir_in(base)
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn host_can_spawn() -> bool {
    Command::new("true")
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn correct_program_passes() {
    let outcome = sandbox()
        .run_python("def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\nprint('ok')\n");
    assert_eq!(outcome.status, Status::Passed, "stderr: {}", outcome.stderr);
    assert_eq!(outcome.stdout, "ok\n");
    assert_eq!(outcome.exit_code, Some(0));
}

#[test]
fn fork_bomb_is_bounded_by_the_process_limit() {
    // Children sleep, so the count only grows; fork must fail at the limit.
    let program = r#"
import os, time
pids = []
try:
    while True:
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        pids.append(pid)
except OSError as e:
    print("forks", len(pids), e.errno, flush=True)
    raise
"#;
    let sb = sandbox();
    let outcome = sb.run_python(program);
    let line = failed_line(&outcome);
    assert!(line.contains("BlockingIOError"), "{line}");
    let forks: u64 = outcome
        .stdout
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("stdout: {}", outcome.stdout));
    assert!(forks < sb.config().max_processes, "forked {forks} times");
    // The sleeping children died with the namespace: the run did not wait 60 s.
    assert_within_timeout(&outcome);
    assert!(host_can_spawn());
}

#[test]
fn classic_fork_bomb_is_contained() {
    let program =
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";
    let outcome = sandbox().run_python(program);
    assert_failed_or_timed_out(&outcome);
    assert_within_timeout(&outcome);
    assert!(host_can_spawn());
}

#[test]
fn infinite_loop_times_out() {
    let outcome = sandbox().run_python("while True:\n    pass\n");
    assert_eq!(outcome.status, Status::TimedOut);
    assert!(outcome.duration >= TIMEOUT, "{:?}", outcome.duration);
    assert_within_timeout(&outcome);
}

#[test]
fn allocating_30_gib_raises_memory_error() {
    let outcome = sandbox().run_python("x = bytearray(30 * 1024**3)\nprint(len(x))\n");
    assert_eq!(failed_line(&outcome), "MemoryError");
    assert!(outcome.stdout.is_empty());
}

#[test]
fn tcp_listener_on_loopback_receives_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let program = format!(
        "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ns.sendall(b'leak')\n"
    );
    let outcome = sandbox().run_python(&program);
    let line = failed_line(&outcome);
    assert!(line.contains("Network is unreachable"), "{line}");
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("the listener received a connection from {peer}"),
        Err(e) => panic!("accept failed: {e}"),
    }
}

#[test]
fn writes_outside_the_workdir_do_not_reach_the_host() {
    let in_tmp = world_writable_dir(&std::env::temp_dir());
    let in_target = world_writable_dir(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let targets: Vec<PathBuf> = vec![
        in_tmp.path().join("escape.txt"),
        in_target.path().join("escape.txt"),
        PathBuf::from(format!("/{}.txt", unique("escape"))),
    ];
    let list = targets
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    let program = format!(
        "written = []\nfor p in [{list}, '../escape-rel.txt']:\n    try:\n        with open(p, 'w') as f:\n            f.write('escaped')\n        written.append(p)\n    except OSError as e:\n        print('blocked', p, e)\nassert not written, written\n"
    );
    let outcome = sandbox().run_python(&program);
    assert_eq!(
        outcome.status,
        Status::Passed,
        "every write must be refused inside the sandbox; stdout: {} stderr: {}",
        outcome.stdout,
        outcome.stderr
    );
    for target in &targets {
        assert!(!target.exists(), "{} was written", target.display());
    }
    assert!(!Path::new("/escape-rel.txt").exists());
    assert_eq!(
        outcome.stdout.matches("blocked").count(),
        4,
        "{}",
        outcome.stdout
    );
}

#[test]
fn home_directory_secret_is_unreadable() {
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME must be set"));
    let secret = unique("secret-value");
    let path = home.join(format!(".{}", unique("secret")));
    std::fs::write(&path, &secret).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let program = format!(
        "import os, sys\ntry:\n    print(os.listdir({home:?}))\nexcept FileNotFoundError:\n    print('missing')\ndata = open({path:?}).read()\nprint(data)\nprint(data, file=sys.stderr)\n",
        home = home.display().to_string(),
        path = path.display().to_string()
    );
    let outcome = sandbox().run_python(&program);
    std::fs::remove_file(&path).unwrap();
    let line = failed_line(&outcome);
    assert!(
        line.contains("FileNotFoundError") || line.contains("PermissionError"),
        "{line}"
    );
    assert!(!outcome.stdout.contains(&secret));
    assert!(!outcome.stderr.contains(&secret));
    // The home directory looks empty from inside (or is absent, when it
    // lies under /tmp, which the working directory's tmpfs covers); an
    // unreadable but visible home would have failed the listing instead.
    let listing = outcome.stdout.trim();
    assert!(listing == "[]" || listing == "missing", "{listing}");
}

#[test]
fn killing_the_parent_does_not_escape() {
    let program = r#"
import os, signal, time
print("ppid", os.getppid(), flush=True)
for target in (os.getppid(), 1, -1):
    try:
        os.kill(target, signal.SIGKILL)
    except OSError as e:
        print("kill", target, e, flush=True)
time.sleep(0.3)
assert False, "still here"
"#;
    let outcome = sandbox().run_python(program);
    // The program survived its own attack (init ignores it, and nothing
    // outside the namespace is visible), so it reached its assertion.
    assert_eq!(failed_line(&outcome), "AssertionError: still here");
    assert!(outcome.stdout.starts_with("ppid 1\n"), "{}", outcome.stdout);
    let ppid = std::os::unix::process::parent_id();
    assert!(
        Path::new(&format!("/proc/{ppid}")).exists(),
        "our parent died"
    );
    assert_eq!(std::os::unix::process::parent_id(), ppid);
}

fn setsid_program(marker: &str, then: &str) -> String {
    format!(
        r#"
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for fd in (0, 1, 2):
            os.close(fd)
        code = "import time\nopen('started', 'w').close()\nwhile True: time.sleep(1)"
        os.execv(sys.executable, [sys.executable, "-c", code, "{marker}"])
    os._exit(0)
# Wait until the detached child runs (it has exec'd, so the host sees the
# marker in its command line), then give the watcher time to see it.
for _ in range(500):
    if os.path.exists("started"):
        break
    time.sleep(0.01)
time.sleep(0.3)
{then}
"#
    )
}

/// Runs `program` while a thread watches the host's process table for
/// `marker`; returns the outcome and whether the marker was ever seen.
fn run_watching(program: &str, marker: &str) -> (Outcome, bool) {
    let sb = sandbox();
    let seen = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (seen, done, marker) = (seen.clone(), done.clone(), marker.to_string());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if !processes_with_marker(&marker).is_empty() {
                    seen.store(true, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let outcome = sb.run_python(program);
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    (outcome, seen.load(Ordering::Relaxed))
}

#[test]
fn detached_setsid_child_dies_at_the_timeout() {
    let marker = unique("setsid-timeout");
    let program = setsid_program(&marker, "while True:\n    time.sleep(1)");
    let (outcome, seen) = run_watching(&program, &marker);
    assert_eq!(
        outcome.status,
        Status::TimedOut,
        "stderr: {}",
        outcome.stderr
    );
    assert!(
        seen,
        "the detached child never started, so the test proves nothing"
    );
    assert_eq!(processes_with_marker(&marker), Vec::<u32>::new());
}

#[test]
fn detached_setsid_child_dies_when_the_program_exits() {
    let marker = unique("setsid-exit");
    let program = setsid_program(&marker, "raise SystemExit(3)");
    let started = Instant::now();
    let (outcome, seen) = run_watching(&program, &marker);
    assert_eq!(outcome.exit_code, Some(3));
    assert!(matches!(outcome.status, Status::Failed { .. }));
    assert!(
        seen,
        "the detached child never started, so the test proves nothing"
    );
    assert_eq!(processes_with_marker(&marker), Vec::<u32>::new());
    assert!(started.elapsed() < TIMEOUT, "waited for the detached child");
}

#[test]
fn one_gigabyte_of_stdout_is_capped() {
    let sb = sandbox().with_timeout(Duration::from_secs(30));
    let program = "import sys\nchunk = b'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.buffer.write(chunk)\nsys.stdout.flush()\nassert False, 'after output'\n";
    let outcome = sb.run_python(program);
    assert_eq!(failed_line(&outcome), "AssertionError: after output");
    assert_eq!(outcome.stdout_total_bytes, 1 << 30);
    assert!(
        outcome.stdout.len() <= sb.config().max_output_bytes + 100,
        "kept {} bytes",
        outcome.stdout.len()
    );
    assert!(outcome.stdout.contains("bytes omitted"));
}

#[test]
fn correct_sample_passes_beside_hostile_ones() {
    let correct = "def f(x):\n    return x * 2\n\nassert f(21) == 42\n".to_string();
    let programs = vec![
        correct.clone(),
        "while True:\n    pass\n".to_string(),
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
            .to_string(),
        "x = bytearray(30 * 1024**3)\n".to_string(),
        correct,
        "assert 1 + 1 == 3\n".to_string(),
    ];
    let outcomes = sandbox().run_many(programs, 3);
    assert_eq!(outcomes.len(), 6);
    assert_eq!(outcomes[0].status, Status::Passed, "{}", outcomes[0].stderr);
    assert_eq!(outcomes[1].status, Status::TimedOut);
    assert_failed_or_timed_out(&outcomes[2]);
    assert_eq!(failed_line(&outcomes[3]), "MemoryError");
    assert_eq!(outcomes[4].status, Status::Passed, "{}", outcomes[4].stderr);
    assert_eq!(failed_line(&outcomes[5]), "AssertionError");
}

// ---------------------------------------------------------------------------
// The same guarantees for an ordinary user, and the refusal without
// namespaces. Both re-run this test binary in another setting.

fn rerun_self(test: &str, configure: impl FnOnce(&mut Command)) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(&exe);
    cmd.args([
        "--ignored",
        "--exact",
        test,
        "--nocapture",
        "--test-threads=1",
    ]);
    configure(&mut cmd);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{test} failed:\n{text}");
    assert!(text.contains("1 passed"), "{test} did not run:\n{text}");
    text
}

#[test]
fn sandbox_works_for_an_unprivileged_user() {
    let shared = world_writable_dir(&std::env::temp_dir());
    let exe_copy = tempfile::tempdir().unwrap();
    // SAFETY: plain getter.
    let as_root = unsafe { libc::geteuid() } == 0;
    let bait = HostBait::new();
    let bait_env = bait.env();
    rerun_self("unprivileged_inner", |cmd| {
        cmd.env("CODEGEN_HOSTILE_SHARED_DIR", shared.path());
        cmd.envs(bait_env.iter().cloned());
        if as_root {
            // Run a copy of this binary as nobody (the target directory may
            // be out of nobody's reach): the non-root code path, where the
            // user can map only itself. Needs `setpriv` (util-linux).
            let exe = exe_copy.path().join("hostile-test");
            std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
            use std::os::unix::fs::PermissionsExt;
            for (path, mode) in [(exe_copy.path(), 0o755), (exe.as_path(), 0o755)] {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            let mut args: Vec<std::ffi::OsString> = vec![
                "--reuid=65534".into(),
                "--regid=65534".into(),
                "--clear-groups".into(),
                exe.into(),
            ];
            args.extend(cmd.get_args().map(|a| a.to_os_string()));
            let mut setpriv = Command::new("setpriv");
            setpriv
                .args(args)
                .current_dir("/")
                .env("HOME", "/nonexistent")
                .env("CODEGEN_HOSTILE_EXPECT_UID", "65534")
                .env("CODEGEN_HOSTILE_SHARED_DIR", shared.path())
                .envs(bait_env.iter().cloned());
            *cmd = setpriv;
        }
    });
    assert!(!shared.path().join("escape.txt").exists());
}

#[test]
#[ignore = "run by sandbox_works_for_an_unprivileged_user"]
fn unprivileged_inner() {
    let shared = PathBuf::from(
        std::env::var_os("CODEGEN_HOSTILE_SHARED_DIR").expect("run through the outer test"),
    );
    if let Ok(uid) = std::env::var("CODEGEN_HOSTILE_EXPECT_UID") {
        // SAFETY: plain getter.
        assert_eq!(unsafe { libc::geteuid() }.to_string(), uid);
    }
    let sb = sandbox();
    let correct = sb.run_python("print(sum(range(10)))\n");
    assert_eq!(correct.status, Status::Passed, "{}", correct.stderr);
    assert_eq!(correct.stdout, "45\n");
    let target = shared.join("escape.txt");
    let write = sb.run_python(&format!(
        "open({:?}, 'w').write('escaped')\n",
        target.display().to_string()
    ));
    assert!(matches!(write.status, Status::Failed { .. }), "{write:?}");
    assert!(!target.exists());
    let net =
        sb.run_python("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n");
    assert!(failed_line(&net).contains("Network is unreachable"));
    let marker = unique("setsid-unpriv");
    let (outcome, seen) = run_watching(&setsid_program(&marker, "raise SystemExit(1)"), &marker);
    assert!(
        matches!(outcome.status, Status::Failed { .. }),
        "{outcome:?}"
    );
    assert!(seen);
    assert!(processes_with_marker(&marker).is_empty());
    let bomb = sb.run_python(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    );
    assert_failed_or_timed_out(&bomb);
    assert_eq!(
        sb.run_python("while True:\n    pass\n").status,
        Status::TimedOut
    );
    let var = |name: &str| std::env::var(name).expect("run through the outer test");
    probe_minimal_root(
        &sb,
        &var("CODEGEN_BAIT_SECRET"),
        &var("CODEGEN_BAIT_SOCKET"),
        &var("CODEGEN_BAIT_ABSTRACT"),
    );
}

#[test]
fn refuses_to_run_without_namespaces_unless_allowed() {
    // Run the inner test in a user namespace whose limit on nested user
    // namespaces is 0: unshare(CLONE_NEWUSER) then fails with ENOSPC, as on a
    // host with user.max_user_namespaces = 0, without changing the host.
    // SAFETY: plain getters.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let uid_map = format!("0 {uid} 1\n");
    let gid_map = format!("0 {gid} 1\n");
    rerun_self("refuse_inner", move |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure makes raw system calls on data prepared
        // before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let write = |path: &[u8], data: &[u8]| -> std::io::Result<()> {
                    let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let n = libc::write(fd, data.as_ptr().cast(), data.len());
                    libc::close(fd);
                    if n != data.len() as isize {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                };
                if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                write(b"/proc/self/setgroups\0", b"deny")?;
                write(b"/proc/self/uid_map\0", uid_map.as_bytes())?;
                write(b"/proc/self/gid_map\0", gid_map.as_bytes())?;
                write(b"/proc/sys/user/max_user_namespaces\0", b"0")?;
                Ok(())
            });
        }
    });
}

#[test]
#[ignore = "run by refuses_to_run_without_namespaces_unless_allowed"]
fn refuse_inner() {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap();
    assert_eq!(max.trim(), "0", "run through the outer test");
    let err = Sandbox::new(SandboxConfig::default()).expect_err("must refuse without namespaces");
    let message = err.to_string();
    assert!(message.contains("ENOSPC"), "{message}");
    assert!(message.contains("max_user_namespaces = 0"), "{message}");
    assert!(message.contains("--unsafe-no-sandbox"), "{message}");

    let sb = Sandbox::new(SandboxConfig {
        allow_unsandboxed: true,
        timeout: Duration::from_secs(2),
        ..SandboxConfig::default()
    })
    .unwrap();
    match sb.isolation() {
        Isolation::Unsandboxed { reason } => assert!(reason.contains("ENOSPC"), "{reason}"),
        other => panic!("expected Unsandboxed, got {other:?}"),
    }
    let correct = sb.run_python("import os\nprint(os.getcwd() != '/')\n");
    assert_eq!(correct.status, Status::Passed, "{}", correct.stderr);
    assert_eq!(correct.stdout, "True\n");
    let looping = sb.run_python("while True:\n    pass\n");
    assert_eq!(looping.status, Status::TimedOut);
    let failing = sb.run_python("raise ValueError('nope')\n");
    assert_eq!(failed_line(&failing), "ValueError: nope");
}

#[test]
fn refuses_to_run_without_seccomp_unless_allowed() {
    // Run the inner test under a filter that answers seccomp() with ENOSYS,
    // as a kernel built without seccomp does.
    let mut rules = std::collections::BTreeMap::new();
    rules.insert(libc::SYS_seccomp, Vec::new());
    let filter = seccompiler::SeccompFilter::new(
        rules,
        seccompiler::SeccompAction::Allow,
        seccompiler::SeccompAction::Errno(libc::ENOSYS as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap();
    let program: seccompiler::BpfProgram = filter.try_into().unwrap();
    rerun_self("no_seccomp_inner", move |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: installing a prepared filter makes only system calls.
        unsafe {
            cmd.pre_exec(move || {
                seccompiler::apply_filter(&program)
                    .map_err(|e| std::io::Error::other(e.to_string()))
            });
        }
    });
}

#[test]
#[ignore = "run by refuses_to_run_without_seccomp_unless_allowed"]
fn no_seccomp_inner() {
    let err = Sandbox::new(SandboxConfig::default()).expect_err("must refuse without seccomp");
    let message = err.to_string();
    assert!(message.contains("seccomp"), "{message}");
    assert!(message.contains("--unsafe-no-sandbox"), "{message}");
    let sb = Sandbox::new(SandboxConfig {
        allow_unsandboxed: true,
        timeout: Duration::from_secs(2),
        ..SandboxConfig::default()
    })
    .unwrap();
    assert!(
        matches!(sb.isolation(), Isolation::Unsandboxed { reason } if reason.contains("seccomp"))
    );
    let correct = sb.run_python("print(6 * 7)\n");
    assert_eq!(
        (correct.status, correct.stdout.as_str()),
        (Status::Passed, "42\n")
    );
}

#[test]
fn program_runs_as_an_unprivileged_host_user_without_capabilities() {
    let marker = unique("identity");
    let program = format!(
        "import os, sys\nprint(os.getuid(), os.getgid(), os.getgroups(), flush=True)\nos.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(2)', '{marker}'])\n"
    );
    let sb = sandbox();
    let status_seen = Arc::new(std::sync::Mutex::new(None::<String>));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (status_seen, done, marker) = (status_seen.clone(), done.clone(), marker.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(pid) = processes_with_marker(&marker).first() {
                    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                        *status_seen.lock().unwrap() = Some(status);
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let outcome = sb.run_python(&program);
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert_eq!(outcome.status, Status::Passed, "{}", outcome.stderr);
    // Inside: uid/gid 65534, no supplementary groups.
    assert_eq!(outcome.stdout, "65534 65534 []\n");
    let status = status_seen
        .lock()
        .unwrap()
        .clone()
        .expect("the program's process was never seen");
    let field = |name: &str| -> String {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| {
                l[name.len()..]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    // SAFETY: plain getters.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let (host_uid, host_gid) = if euid == 0 {
        (65534, 65534)
    } else {
        (euid, egid)
    };
    assert_eq!(
        field("Uid:"),
        format!("{host_uid} {host_uid} {host_uid} {host_uid}")
    );
    assert_eq!(
        field("Gid:"),
        format!("{host_gid} {host_gid} {host_gid} {host_gid}")
    );
    if euid == 0 {
        assert_eq!(field("Groups:"), "", "root's groups leaked");
    }
    assert_eq!(field("CapEff:"), "0000000000000000");
    assert_eq!(field("CapPrm:"), "0000000000000000");
    assert_eq!(field("NoNewPrivs:"), "1");
}

#[test]
fn file_size_limit_stops_big_files() {
    let sb = sandbox();
    let program = "with open('big.bin', 'wb') as f:\n    f.write(b'x' * (32 << 20))\n";
    let outcome = sb.run_python(program);
    let line = failed_line(&outcome);
    assert!(line.contains("File too large"), "{line}");
    assert!(sb.config().max_file_bytes < 32 << 20);
}

// The minimal root and the system-call filter, read as an attacker would.
// One program probes everything and prints what it reached; each probe must
// come back refused. Run as root here and as an ordinary user by
// `unprivileged_inner`.

const PROBE_PROGRAM: &str = r#"
import ctypes, errno, json, os, socket, sys
HOST_SECRET, HOST_SOCKET, ABSTRACT = sys.argv_spec
out = {}
def attempt(name, fn):
    try:
        out[name] = "reached: %r" % (fn(),)
    except BaseException as e:
        out[name] = "refused: %s" % type(e).__name__
out["root"] = sorted(os.listdir("/"))
out["site"] = [p for p in sys.path if "packages" in p]
out["pids"] = sorted(int(x) for x in os.listdir("/proc") if x.isdigit())
for path in ["/home", "/root", "/opt", "/srv", "/run", "/var", "/sys", "/mnt", "/boot", "/media",
             "/work", "/etc/passwd", "/etc/shadow", "/usr/local", "/usr/lib/python3/dist-packages",
             "/usr/share", HOST_SECRET]:
    attempt("read " + path, lambda p=path: os.listdir(p) if os.path.isdir(p) else open(p, "rb").read(64))
attempt("read /proc/1/environ", lambda: open("/proc/1/environ", "rb").read(64))
attempt("read /proc/1/mem", lambda: open("/proc/1/mem", "rb").read(1))
def connect_unix(addr):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    s.connect(addr)
    return "connected"
attempt("unix socket " + HOST_SOCKET, lambda: connect_unix(HOST_SOCKET))
attempt("abstract socket", lambda: connect_unix("\0" + ABSTRACT))
for d in ["/dev/shm", "/var/tmp", "/", "/usr", "/etc"]:
    attempt("write " + d, lambda d=d: open(os.path.join(d, "codegen-probe"), "w").write("x"))
libc = ctypes.CDLL(None, use_errno=True)
def call(fn, *args):
    r = fn(*args)
    if r == -1:
        raise OSError(ctypes.get_errno(), errno.errorcode.get(ctypes.get_errno(), "?"))
    return r
PTRACE_ATTACH = 16
attempt("ptrace parent", lambda: call(libc.ptrace, PTRACE_ATTACH, os.getppid(), None, None))
attempt("ptrace init", lambda: call(libc.ptrace, PTRACE_ATTACH, 1, None, None))
attempt("unshare user", lambda: call(libc.unshare, 0x10000000))
attempt("mount tmpfs", lambda: call(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None))
attempt("netlink socket", lambda: socket.socket(16, socket.SOCK_RAW, 0))
attempt("packet socket", lambda: socket.socket(17, socket.SOCK_RAW, 0))
attempt("keyctl", lambda: call(libc.syscall, 250, 0, 0, 0, 0))
attempt("bpf", lambda: call(libc.syscall, 321, 0, 0, 0))
attempt("perf_event_open", lambda: call(libc.syscall, 298, 0, 0, -1, -1, 0))
attempt("io_uring_setup", lambda: call(libc.syscall, 425, 1, None))
out["errno unshare"] = ctypes.get_errno()
# Honest things still work: threads, a subprocess, a TCP socket object.
import threading
t = threading.Thread(target=lambda: None); t.start(); t.join()
out["thread"] = "ok"
pid = os.fork()
if pid == 0:
    os._exit(7)
out["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
print(json.dumps(out))
"#;

/// Host data a candidate must never reach, made by the (privileged) outer
/// test: a secret file and a listening UNIX socket under the checkout's
/// target directory, and an abstract socket in the host's network namespace.
struct HostBait {
    dir: tempfile::TempDir,
    _listener: std::os::unix::net::UnixListener,
    _abstract: std::os::unix::net::UnixListener,
    abstract_name: String,
}

impl HostBait {
    fn new() -> HostBait {
        use std::os::linux::net::SocketAddrExt;
        let dir = tempfile::Builder::new()
            .prefix("hostile-bait-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        std::fs::write(dir.path().join("secret.txt"), "host secret").unwrap();
        let listener = std::os::unix::net::UnixListener::bind(dir.path().join("sock")).unwrap();
        let abstract_name = unique("abstract");
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
        let abstract_listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
        use std::os::unix::fs::PermissionsExt;
        for p in [
            dir.path().to_path_buf(),
            dir.path().join("secret.txt"),
            dir.path().join("sock"),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        HostBait {
            dir,
            _listener: listener,
            _abstract: abstract_listener,
            abstract_name,
        }
    }

    fn env(&self) -> [(String, String); 3] {
        [
            (
                "CODEGEN_BAIT_SECRET".into(),
                self.dir.path().join("secret.txt").display().to_string(),
            ),
            (
                "CODEGEN_BAIT_SOCKET".into(),
                self.dir.path().join("sock").display().to_string(),
            ),
            ("CODEGEN_BAIT_ABSTRACT".into(), self.abstract_name.clone()),
        ]
    }
}

/// Runs the probe and checks that every probe was refused.
fn probe_minimal_root(sb: &Sandbox, secret: &str, socket: &str, abstract_name: &str) {
    // The host paths reach the program as data, never as access.
    let spec = format!("import sys\nsys.argv_spec = ({secret:?}, {socket:?}, {abstract_name:?})\n");
    let outcome = sb.run_python(&format!("{spec}{PROBE_PROGRAM}"));
    assert_eq!(outcome.status, Status::Passed, "{}", outcome.stderr);
    let line = outcome.stdout.lines().last().unwrap_or_default();
    let report: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {}", outcome.stdout));
    eprintln!(
        "probe report: {}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    let root: Vec<String> = report["root"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for entry in &root {
        assert!(
            [
                "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp",
                "usr"
            ]
            .contains(&entry.as_str()),
            "unexpected /{entry} in the minimal root: {root:?}"
        );
    }
    assert_eq!(
        report["site"],
        serde_json::json!([]),
        "site-packages on sys.path"
    );
    // A /proc of the run's own PID namespace: its init and the program.
    let pids = report["pids"].as_array().unwrap();
    assert!(
        pids.contains(&serde_json::json!(1)) && pids.len() <= 3,
        "{pids:?}"
    );
    let mut reached = Vec::new();
    for (name, value) in &report {
        let Some(text) = value.as_str() else { continue };
        let probe = name.starts_with("read ")
            || name.starts_with("write ")
            || name.contains("socket")
            || name.starts_with("ptrace")
            || name.starts_with("unshare")
            || name.starts_with("mount")
            || ["keyctl", "bpf", "perf_event_open", "io_uring_setup"].contains(&name.as_str());
        if probe && !text.starts_with("refused") {
            reached.push(format!("{name}: {text}"));
        }
    }
    assert!(
        reached.is_empty(),
        "the program reached:\n{}",
        reached.join("\n")
    );
    assert_eq!(report["thread"], "ok");
    assert_eq!(report["fork"], 7);
}

#[test]
fn minimal_root_and_filter_refuse_every_probe() {
    let bait = HostBait::new();
    let [(_, secret), (_, socket), (_, abstract_name)] = bait.env();
    // The bait is reachable from the host (so the probe is meaningful).
    assert!(std::fs::read_to_string(&secret).is_ok());
    assert!(std::os::unix::net::UnixStream::connect(&socket).is_ok());
    probe_minimal_root(&sandbox(), &secret, &socket, &abstract_name);
}
