//! Process plumbing: fork a helper, build the namespaces, exec Python,
//! supervise with a wall clock, capture output.
//!
//! Process tree of a namespaced run:
//!
//! ```text
//! caller (any thread)
//!   └─ A  helper in the host PID namespace: [root: clear groups],
//!        │ unshare(user, mount, pid, net, ipc, uts); the caller writes its
//!        │ uid/gid maps from outside; A then setresuid/setresgid to 65534
//!        └─ B  PID 1 of the new PID namespace: mounts, rlimits, reaps zombies
//!             └─ C  execs python -I -B /tmp/main.py
//! ```
//!
//! The maps are written by the caller, from the parent user namespace: as
//! real root it maps inside 65534 to host 65534, so the run's processes are
//! the host's nobody (and the namespace was created by a privileged process,
//! which AppArmor's `restrict_unprivileged_userns` allows); an ordinary user
//! can only map its own uid, so inside 65534 is that user on the host.
//! Inside, uid 0 is unmapped: the program is never namespace root.
//!
//! When B exits (after C exits, or when the caller SIGKILLs it on timeout)
//! the kernel kills every process left in the PID namespace and waits for
//! them before B is reported dead; A waits for B, so once A has exited nothing
//! of the run is left. A and B die with their parent (`PR_SET_PDEATHSIG`).
//!
//! Between `fork` and `exec` the children only make raw system calls on data
//! prepared before the fork (no allocation, no locks): the caller may be
//! multi-threaded. Children report failures and pids to the caller through a
//! pipe of fixed 12-byte records.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use seccompiler::BpfProgram;

use crate::capture::{last_line, CappedBuffer};
use crate::diagnose::{errno_text, signal_name};
use crate::root::{RootOp, RootPlan, STAGING};
use crate::{Outcome, SandboxConfig, Status};

pub(crate) struct Request<'a> {
    pub(crate) cfg: &'a SandboxConfig,
    pub(crate) python: &'a Path,
    pub(crate) namespaces: bool,
    /// The minimal root (namespaced runs).
    pub(crate) root: Option<&'a RootPlan>,
    /// The seccomp filters, installed right before `exec`.
    pub(crate) filters: Option<&'a [BpfProgram; 2]>,
    /// A per-run secret the program reads from stdin; stdout lines that start
    /// with it are verdict lines (see [`crate::Outcome::verdicts`]).
    pub(crate) secret: Option<&'a str>,
    pub(crate) program: &'a str,
    pub(crate) timeout: Duration,
}

/// Setup steps, reported (with errno) when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Step {
    Fds = 1,
    Setgroups,
    WaitForMaps,
    Setresgid,
    Setresuid,
    Prctl,
    Unshare,
    WriteSetgroups,
    WriteUidMap,
    WriteGidMap,
    ForkInit,
    MountPrivate,
    MountStaging,
    BuildRoot,
    PivotRoot,
    RemountRootReadonly,
    MountProc,
    MountTmp,
    WriteProgram,
    Chdir,
    Rlimit,
    ForkProgram,
    NoNewPrivs,
    Seccomp,
    Exec,
}

impl Step {
    const ALL: [Step; 25] = [
        Step::Fds,
        Step::Setgroups,
        Step::WaitForMaps,
        Step::Setresgid,
        Step::Setresuid,
        Step::Prctl,
        Step::Unshare,
        Step::WriteSetgroups,
        Step::WriteUidMap,
        Step::WriteGidMap,
        Step::ForkInit,
        Step::MountPrivate,
        Step::MountStaging,
        Step::BuildRoot,
        Step::PivotRoot,
        Step::RemountRootReadonly,
        Step::MountProc,
        Step::MountTmp,
        Step::WriteProgram,
        Step::Chdir,
        Step::Rlimit,
        Step::ForkProgram,
        Step::NoNewPrivs,
        Step::Seccomp,
        Step::Exec,
    ];

    fn from_u32(v: u32) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| *s as u32 == v)
    }

    fn describe(self) -> &'static str {
        match self {
            Step::Fds => "setting up file descriptors",
            Step::Setgroups => "setgroups([]) while dropping root",
            Step::WaitForMaps => "waiting for the uid/gid maps",
            Step::Setresgid => "setresgid to the sandbox gid",
            Step::Setresuid => "setresuid to the sandbox uid",
            Step::Prctl => "prctl(PR_SET_PDEATHSIG / PR_SET_DUMPABLE)",
            Step::Unshare => {
                "unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWUTS)"
            }
            Step::WriteSetgroups => "writing the helper's /proc/PID/setgroups",
            Step::WriteUidMap => "writing the helper's /proc/PID/uid_map",
            Step::WriteGidMap => "writing the helper's /proc/PID/gid_map",
            Step::ForkInit => "fork of the PID-namespace init",
            Step::MountPrivate => "making mounts private (mount / MS_REC|MS_PRIVATE)",
            Step::MountStaging => "mounting the tmpfs the minimal root is built in",
            Step::BuildRoot => {
                "building the minimal root (bind-mounting the interpreter, its libraries and /dev nodes read-only)"
            }
            Step::PivotRoot => "pivot_root into the minimal root",
            Step::RemountRootReadonly => "making the minimal root read-only",
            Step::MountProc => "mounting a fresh /proc",
            Step::MountTmp => "mounting the tmpfs working directory",
            Step::WriteProgram => "writing the program file",
            Step::Chdir => "chdir to the working directory",
            Step::Rlimit => "setrlimit",
            Step::ForkProgram => "fork of the program process",
            Step::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)",
            Step::Seccomp => "installing the seccomp filter (seccomp(SECCOMP_SET_MODE_FILTER))",
            Step::Exec => "execve of the python interpreter",
        }
    }
}

const TAG_PID: u32 = 1;
const TAG_ERROR: u32 = 2;
const TAG_STATUS: u32 = 3;
/// A has unshared and waits for its maps.
const TAG_UNSHARED: u32 = 4;
const RECORD: usize = 12;
/// Where children keep the report pipe's write end.
const REPORT_FD: RawFd = 3;
/// Where A keeps the read end of the pipe on which the caller says "maps written".
const GO_FD: RawFd = 4;

/// Everything the children need, prepared before `fork`.
struct Plan {
    python: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    program: Vec<u8>,
    script: CString,
    workdir: CString,
    /// Unsandboxed mode as root: (uid, gid) to drop to.
    drop_to: Option<(u32, u32)>,
    /// Started as root: clear supplementary groups before unsharing.
    clear_groups: bool,
    /// uid and gid inside the user namespace.
    inner_ids: (u32, u32),
    root_ops: Vec<RootOp>,
    staging: CString,
    proc_target: CString,
    staging_opts: CString,
    tmp_opts: CString,
    mask_opts: CString,
    filters: Option<[BpfProgram; 2]>,
    cpu_seconds: u64,
    memory_bytes: u64,
    max_file_bytes: u64,
    max_open_files: u64,
    max_processes: u64,
    /// stdin, stdout, stderr, report, go: moved to fds 0..=4 in the child.
    fds: [RawFd; 5],
}

fn cstring(bytes: &[u8]) -> Result<CString, String> {
    CString::new(bytes.to_vec()).map_err(|_| format!("path contains a NUL byte: {bytes:?}"))
}

fn cpath(path: &Path) -> Result<CString, String> {
    cstring(path.as_os_str().as_bytes())
}

impl Plan {
    fn new(
        req: &Request,
        script: &Path,
        workdir: &Path,
        home: &Path,
        fds: [RawFd; 5],
    ) -> Result<Plan, String> {
        let cfg = req.cfg;
        // The canonical interpreter (what the minimal root binds); argv[0]
        // keeps the name the caller gave.
        let exec_path = match req.root {
            Some(root) => root.python.as_path(),
            None => req.python,
        };
        let python = cpath(exec_path)?;
        let argv = vec![
            cpath(req.python)?,
            cstring(b"-I")?,
            cstring(b"-B")?,
            cpath(script)?,
        ];
        let mut home_var = b"HOME=".to_vec();
        home_var.extend_from_slice(home.as_os_str().as_bytes());
        let mut tmpdir_var = b"TMPDIR=".to_vec();
        tmpdir_var.extend_from_slice(workdir.as_os_str().as_bytes());
        let envp = vec![
            cstring(b"PATH=/usr/local/bin:/usr/bin:/bin")?,
            cstring(&home_var)?,
            cstring(&tmpdir_var)?,
            cstring(b"LANG=C.UTF-8")?,
        ];
        let mut argv_ptrs: Vec<_> = argv.iter().map(|s| s.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp_ptrs: Vec<_> = envp.iter().map(|s| s.as_ptr()).collect();
        envp_ptrs.push(std::ptr::null());
        // SAFETY: plain getters.
        let euid = unsafe { libc::geteuid() };
        let drop_to = (euid == 0).then_some((cfg.sandbox_uid, cfg.sandbox_gid));
        Ok(Plan {
            python,
            _argv: argv,
            argv_ptrs,
            _envp: envp,
            envp_ptrs,
            program: req.program.as_bytes().to_vec(),
            script: cpath(script)?,
            workdir: cpath(workdir)?,
            drop_to,
            clear_groups: euid == 0,
            inner_ids: (cfg.sandbox_uid, cfg.sandbox_gid),
            root_ops: req.root.map(|r| r.ops.clone()).unwrap_or_default(),
            staging: cstring(STAGING.as_bytes())?,
            proc_target: cstring(format!("{STAGING}/proc").as_bytes())?,
            staging_opts: cstring(b"size=1m,nr_inodes=4096,mode=0755")?,
            filters: req.filters.cloned(),
            tmp_opts: cstring(
                format!(
                    "size={},nr_inodes=4096,mode=0700",
                    cfg.workdir_bytes.max(1 << 20)
                )
                .as_bytes(),
            )?,
            mask_opts: cstring(b"size=16k,nr_inodes=16,mode=0555")?,
            cpu_seconds: cfg.cpu_seconds.max(1),
            memory_bytes: cfg.memory_bytes,
            max_file_bytes: cfg.max_file_bytes,
            max_open_files: cfg.max_open_files,
            max_processes: cfg.max_processes,
            fds,
        })
    }
}

// ---------------------------------------------------------------------------
// Child side: raw system calls only.

fn errno() -> i32 {
    // SAFETY: errno location is thread-local and always valid.
    unsafe { *libc::__errno_location() }
}

unsafe fn report_to(fd: RawFd, tag: u32, a: i32, b: i32) {
    let rec: [u32; 3] = [tag, a as u32, b as u32];
    libc::write(fd, rec.as_ptr().cast(), RECORD);
}

unsafe fn fail(step: Step) -> ! {
    let e = errno();
    report_to(REPORT_FD, TAG_ERROR, step as i32, e);
    libc::_exit(127)
}

/// Moves the plan's fds to 0..=4 (3 and 4 close-on-exec) and closes all others.
unsafe fn setup_fds(plan: &Plan) {
    let mut tmp = [0 as RawFd; 5];
    for (i, fd) in plan.fds.iter().enumerate() {
        tmp[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10);
        if tmp[i] < 0 {
            let e = errno();
            report_to(plan.fds[3], TAG_ERROR, Step::Fds as i32, e);
            libc::_exit(127);
        }
    }
    for (i, fd) in tmp.iter().enumerate() {
        if libc::dup2(*fd, i as RawFd) < 0 {
            let e = errno();
            report_to(plan.fds[3], TAG_ERROR, Step::Fds as i32, e);
            libc::_exit(127);
        }
    }
    libc::fcntl(REPORT_FD, libc::F_SETFD, libc::FD_CLOEXEC);
    libc::fcntl(GO_FD, libc::F_SETFD, libc::FD_CLOEXEC);
    if libc::syscall(libc::SYS_close_range, 5u32, u32::MAX, 0u32) != 0 {
        for fd in 5..65536 {
            libc::close(fd);
        }
    }
}

/// Unsandboxed mode as root: clear groups, setresgid, setresuid to the
/// sandbox ids. Returns whether the ids changed (false when they are not
/// mapped, e.g. root of a user namespace that maps only uid 0).
unsafe fn drop_privileges(plan: &Plan) -> bool {
    let Some((uid, gid)) = plan.drop_to else {
        return false;
    };
    if libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) != 0
        && errno() != libc::EPERM
    {
        fail(Step::Setgroups);
    }
    if libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0 {
        if errno() == libc::EINVAL {
            return false;
        }
        fail(Step::Setresgid);
    }
    if libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0 {
        fail(Step::Setresuid);
    }
    true
}

#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

unsafe fn set_limit(resource: Resource, soft: u64, hard: u64) {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard.max(soft),
    };
    if libc::setrlimit(resource, &lim) != 0 {
        fail(Step::Rlimit);
    }
}

unsafe fn apply_rlimits(plan: &Plan) {
    set_limit(libc::RLIMIT_CPU, plan.cpu_seconds, plan.cpu_seconds + 1);
    set_limit(libc::RLIMIT_AS, plan.memory_bytes, plan.memory_bytes);
    set_limit(libc::RLIMIT_FSIZE, plan.max_file_bytes, plan.max_file_bytes);
    set_limit(
        libc::RLIMIT_NOFILE,
        plan.max_open_files,
        plan.max_open_files,
    );
    set_limit(libc::RLIMIT_NPROC, plan.max_processes, plan.max_processes);
    set_limit(libc::RLIMIT_CORE, 0, 0);
}

/// Default signal handling and an empty mask (the caller may ignore SIGPIPE
/// or block signals; both survive exec), no new privileges, exec.
unsafe fn exec_python(plan: &Plan) -> ! {
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
        fail(Step::NoNewPrivs);
    }
    if let Some(filters) = &plan.filters {
        for filter in filters {
            if seccompiler::apply_filter(filter).is_err() {
                fail(Step::Seccomp);
            }
        }
    }
    libc::execve(
        plan.python.as_ptr(),
        plan.argv_ptrs.as_ptr(),
        plan.envp_ptrs.as_ptr(),
    );
    fail(Step::Exec)
}

/// Helper A of a namespaced run.
unsafe fn child_namespaced(plan: &Plan) -> ! {
    setup_fds(plan);
    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
        fail(Step::Prctl);
    }
    // Root's supplementary groups (gid 0) must not follow the program.
    if plan.clear_groups
        && libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) != 0
        && errno() != libc::EPERM
    {
        fail(Step::Setgroups);
    }
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    if libc::unshare(flags) != 0 {
        fail(Step::Unshare);
    }
    // The caller writes our maps from the parent namespace, then sends a
    // byte; EOF means it gave up (and reported why).
    report_to(REPORT_FD, TAG_UNSHARED, 0, 0);
    let mut go = 0u8;
    loop {
        let n = libc::read(GO_FD, (&mut go as *mut u8).cast(), 1);
        if n == 1 {
            break;
        }
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        libc::_exit(127);
    }
    libc::close(GO_FD);
    let (uid, gid) = plan.inner_ids;
    if libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0 {
        fail(Step::Setresgid);
    }
    if libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0 {
        fail(Step::Setresuid);
    }
    // A credential change clears the parent-death signal.
    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
        fail(Step::Prctl);
    }
    let init = libc::fork();
    if init < 0 {
        fail(Step::ForkInit);
    }
    if init == 0 {
        namespace_init(plan);
    }
    report_to(REPORT_FD, TAG_PID, init, 0);
    libc::close(0);
    libc::close(1);
    libc::close(2);
    let mut status = 0;
    loop {
        let r = libc::waitpid(init, &mut status, 0);
        if r == init || (r < 0 && errno() != libc::EINTR) {
            break;
        }
    }
    libc::_exit(0)
}

unsafe fn mount_tmpfs(target: &CString, flags: libc::c_ulong, opts: &CString) -> libc::c_int {
    libc::mount(
        c"tmpfs".as_ptr(),
        target.as_ptr(),
        c"tmpfs".as_ptr(),
        flags,
        opts.as_ptr().cast(),
    )
}

/// Bind-mounts `src` at `dst` (an empty file is made first for a file
/// mount point), then remounts the bind with `flags`.
unsafe fn bind(src: &CString, dst: &CString, file: bool, flags: libc::c_ulong) -> bool {
    if file {
        let fd = libc::open(
            dst.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
            0o644,
        );
        if fd >= 0 {
            libc::close(fd);
        }
    }
    libc::mount(
        src.as_ptr(),
        dst.as_ptr(),
        std::ptr::null(),
        libc::MS_BIND,
        std::ptr::null(),
    ) == 0
        && libc::mount(
            std::ptr::null(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | flags,
            std::ptr::null(),
        ) == 0
}

/// Carries out the minimal root's plan inside the staging tmpfs.
unsafe fn build_root(plan: &Plan) {
    for op in &plan.root_ops {
        let ok = match op {
            RootOp::Dir(path) => libc::mkdir(path.as_ptr(), 0o755) == 0 || errno() == libc::EEXIST,
            RootOp::Symlink { target, path } => {
                libc::symlink(target.as_ptr(), path.as_ptr()) == 0 || errno() == libc::EEXIST
            }
            RootOp::BindRo {
                src,
                dst,
                file,
                locked,
            } => bind(
                src,
                dst,
                *file,
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | locked,
            ),
            RootOp::BindDev { src, dst, locked } => {
                bind(src, dst, true, libc::MS_NOSUID | libc::MS_NOEXEC | locked)
            }
            RootOp::Mask(path) => {
                mount_tmpfs(
                    path,
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    &plan.mask_opts,
                ) == 0
            }
        };
        if !ok {
            fail(Step::BuildRoot);
        }
    }
}

/// Process B: PID 1 of the new PID namespace.
unsafe fn namespace_init(plan: &Plan) -> ! {
    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
        fail(Step::Prctl);
    }
    if libc::mount(
        std::ptr::null(),
        c"/".as_ptr(),
        std::ptr::null(),
        libc::MS_REC | libc::MS_PRIVATE,
        std::ptr::null(),
    ) != 0
    {
        fail(Step::MountPrivate);
    }
    // The new root: a small tmpfs (over the host's /tmp, in this mount
    // namespace only), filled from the plan, then made the root.
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV;
    if mount_tmpfs(&plan.staging, nosuid, &plan.staging_opts) != 0 {
        fail(Step::MountStaging);
    }
    build_root(plan);
    // A fresh /proc of this PID namespace, mounted while the host's /proc is
    // still visible (the kernel refuses a new procfs in a user namespace
    // otherwise); where it is refused anyway (a masked /proc in a container)
    // the root has no /proc rather than the host's.
    if libc::mount(
        c"proc".as_ptr(),
        plan.proc_target.as_ptr(),
        c"proc".as_ptr(),
        nosuid | libc::MS_NOEXEC,
        std::ptr::null(),
    ) != 0
        && !matches!(errno(), libc::EPERM | libc::EACCES)
    {
        fail(Step::MountProc);
    }
    if libc::chdir(plan.staging.as_ptr()) != 0 {
        fail(Step::PivotRoot);
    }
    let dot = c".".as_ptr();
    if libc::syscall(libc::SYS_pivot_root, dot, dot) == 0 {
        // The old root now sits on top of the new one: detach it.
        if libc::umount2(dot, libc::MNT_DETACH) != 0 {
            fail(Step::PivotRoot);
        }
    } else {
        // pivot_root refuses some roots (an initramfs): move the new root
        // over / and chroot into it instead.
        if libc::mount(
            dot,
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_MOVE,
            std::ptr::null(),
        ) != 0
            || libc::chroot(dot) != 0
        {
            fail(Step::PivotRoot);
        }
    }
    if libc::chdir(c"/".as_ptr()) != 0 {
        fail(Step::PivotRoot);
    }
    if mount_tmpfs(&plan.workdir, nosuid, &plan.tmp_opts) != 0 {
        fail(Step::MountTmp);
    }
    if libc::mount(
        std::ptr::null(),
        c"/".as_ptr(),
        std::ptr::null(),
        libc::MS_REMOUNT | libc::MS_RDONLY | nosuid,
        std::ptr::null(),
    ) != 0
    {
        fail(Step::RemountRootReadonly);
    }
    let fd = libc::open(
        plan.script.as_ptr(),
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
        0o644,
    );
    if fd < 0 {
        fail(Step::WriteProgram);
    }
    let mut written = 0usize;
    while written < plan.program.len() {
        let n = libc::write(
            fd,
            plan.program[written..].as_ptr().cast(),
            plan.program.len() - written,
        );
        if n <= 0 {
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            fail(Step::WriteProgram);
        }
        written += n as usize;
    }
    libc::close(fd);
    if libc::chdir(plan.workdir.as_ptr()) != 0 {
        fail(Step::Chdir);
    }
    let hostname = b"sandbox";
    libc::sethostname(hostname.as_ptr().cast(), hostname.len());
    apply_rlimits(plan);
    let program = libc::fork();
    if program < 0 {
        fail(Step::ForkProgram);
    }
    if program == 0 {
        exec_python(plan);
    }
    libc::close(0);
    libc::close(1);
    libc::close(2);
    let mut status = 0;
    loop {
        let r = libc::waitpid(-1, &mut status, 0);
        if r == program {
            report_to(REPORT_FD, TAG_STATUS, status, 0);
            libc::_exit(0);
        }
        if r < 0 && errno() != libc::EINTR {
            libc::_exit(0);
        }
    }
}

/// The only process of an unsandboxed run: rlimits, uid drop, own process
/// group, exec.
unsafe fn child_unsandboxed(plan: &Plan) -> ! {
    setup_fds(plan);
    libc::setpgid(0, 0);
    drop_privileges(plan);
    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
        fail(Step::Prctl);
    }
    if libc::chdir(plan.workdir.as_ptr()) != 0 {
        fail(Step::Chdir);
    }
    apply_rlimits(plan);
    exec_python(plan)
}

// ---------------------------------------------------------------------------
// Caller side.

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe2: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both fds are fresh and owned by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

pub(crate) fn run(req: &Request) -> Outcome {
    let start = Instant::now();
    match run_inner(req, start) {
        Ok(outcome) => outcome,
        Err(message) => Outcome {
            status: Status::Error { message },
            stdout: String::new(),
            stderr: String::new(),
            stdout_total_bytes: 0,
            stderr_total_bytes: 0,
            exit_code: None,
            signal: None,
            duration: start.elapsed(),
            verdicts: Vec::new(),
        },
    }
}

fn run_inner(req: &Request, start: Instant) -> Result<Outcome, String> {
    let (stdout_r, stdout_w) = pipe()?;
    let (stderr_r, stderr_w) = pipe()?;
    let (report_r, report_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    // stdin: /dev/null, or a pipe that holds the run's secret and is closed.
    let stdin: OwnedFd = match req.secret {
        None => std::fs::File::open("/dev/null")
            .map_err(|e| format!("open /dev/null: {e}"))?
            .into(),
        Some(secret) => {
            let (r, w) = pipe()?;
            let line = format!("{secret}\n");
            // SAFETY: writing our own buffer to our own pipe; a fresh pipe
            // holds far more than one line.
            let n = unsafe { libc::write(w.as_raw_fd(), line.as_ptr().cast(), line.len()) };
            if n != line.len() as isize {
                return Err(format!(
                    "writing the run's secret: {}",
                    std::io::Error::last_os_error()
                ));
            }
            drop(w);
            r
        }
    };
    let fds = [
        stdin.as_raw_fd(),
        stdout_w.as_raw_fd(),
        stderr_w.as_raw_fd(),
        report_w.as_raw_fd(),
        go_r.as_raw_fd(),
    ];
    // The unsandboxed mode needs a host directory; the namespaced one mounts
    // a fresh tmpfs at /tmp inside the mount namespace instead.
    let host_dir = if req.namespaces {
        None
    } else {
        Some(unsandboxed_workdir(req)?)
    };
    let plan = match &host_dir {
        Some(dir) => Plan::new(
            req,
            &dir.path().join("main.py"),
            dir.path(),
            dir.path(),
            fds,
        )?,
        None => Plan::new(
            req,
            Path::new("/tmp/main.py"),
            Path::new("/tmp"),
            Path::new("/tmp"),
            fds,
        )?,
    };
    // SAFETY: the child runs only async-signal-safe system calls on `plan`
    // and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            if req.namespaces {
                child_namespaced(&plan)
            } else {
                child_unsandboxed(&plan)
            }
        }
    }
    drop(stdout_w);
    drop(stderr_w);
    drop(report_w);
    drop(go_r);
    drop(stdin);
    let outcome = supervise(req, start, pid, [stdout_r, stderr_r, report_r], go_w);
    drop(host_dir);
    Ok(outcome)
}

fn unsandboxed_workdir(req: &Request) -> Result<tempfile::TempDir, String> {
    let dir = tempfile::Builder::new()
        .prefix("codegen-sandbox-")
        .tempdir()
        .map_err(|e| format!("temporary directory: {e}"))?;
    let script = dir.path().join("main.py");
    std::fs::write(&script, req.program.as_bytes())
        .map_err(|e| format!("writing {}: {e}", script.display()))?;
    // SAFETY: plain getter.
    if unsafe { libc::geteuid() } == 0 {
        for path in [dir.path(), script.as_path()] {
            std::os::unix::fs::chown(path, Some(req.cfg.sandbox_uid), Some(req.cfg.sandbox_gid))
                .or_else(|e| {
                    // EINVAL: the sandbox uid is not mapped here (root of a user
                    // namespace); the uid drop fails the same way and the program
                    // runs as the current user, who owns the directory.
                    if e.raw_os_error() == Some(libc::EINVAL) {
                        Ok(())
                    } else {
                        Err(format!("chown {}: {e}", path.display()))
                    }
                })?;
        }
    }
    Ok(dir)
}

/// Has `pid` exited? Checks without reaping it.
fn exited_nowait(pid: libc::pid_t) -> bool {
    // SAFETY: waitid fills `info`.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        rc == 0 && info.si_pid() == pid
    }
}

fn reap(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid
            || (r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
        {
            return status;
        }
    }
}

struct Streams {
    fds: [OwnedFd; 3],
    open: [bool; 3],
    stdout: CappedBuffer,
    stderr: CappedBuffer,
    report: Vec<u8>,
    buf: Vec<u8>,
}

impl Streams {
    /// Waits up to `wait` for data and reads what is there.
    fn pump(&mut self, wait: Duration) {
        let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(3);
        let mut which = Vec::with_capacity(3);
        for (i, fd) in self.fds.iter().enumerate() {
            if self.open[i] {
                pfds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                which.push(i);
            }
        }
        if pfds.is_empty() {
            std::thread::sleep(wait);
            return;
        }
        let ms = wait.as_millis().min(1000) as libc::c_int;
        // SAFETY: pfds is a valid array of pollfd.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if n <= 0 {
            return;
        }
        for (pfd, &i) in pfds.iter().zip(&which) {
            if pfd.revents == 0 {
                continue;
            }
            // Read what is available now (bounded, so one busy stream cannot
            // starve the clock).
            for _ in 0..64 {
                // SAFETY: reading into our buffer.
                let r = unsafe {
                    libc::read(
                        self.fds[i].as_raw_fd(),
                        self.buf.as_mut_ptr().cast(),
                        self.buf.len(),
                    )
                };
                if r > 0 {
                    let data = &self.buf[..r as usize];
                    match i {
                        0 => self.stdout.push(data),
                        1 => self.stderr.push(data),
                        _ => self.report.extend_from_slice(data),
                    }
                    continue;
                }
                if r == 0 {
                    self.open[i] = false;
                } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    // EAGAIN: drained for now; other errors: give up on it.
                    if std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
                        self.open[i] = false;
                    }
                }
                break;
            }
        }
    }

    fn any_open(&self) -> bool {
        self.open.iter().any(|o| *o)
    }
}

#[derive(Default)]
struct Reports {
    unshared: bool,
    init_pid: Option<libc::pid_t>,
    setup_error: Option<(u32, i32)>,
    program_status: Option<i32>,
}

fn parse_reports(bytes: &[u8]) -> Reports {
    let mut out = Reports::default();
    for rec in bytes.chunks_exact(RECORD) {
        let word = |i: usize| {
            u32::from_ne_bytes([rec[4 * i], rec[4 * i + 1], rec[4 * i + 2], rec[4 * i + 3]])
        };
        let (tag, a, b) = (word(0), word(1) as i32, word(2) as i32);
        match tag {
            TAG_PID => out.init_pid = Some(a),
            TAG_UNSHARED => out.unshared = true,
            TAG_ERROR => {
                out.setup_error.get_or_insert((a as u32, b));
            }
            TAG_STATUS => out.program_status = Some(a),
            _ => {}
        }
    }
    out
}

fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fresh fd owned by us.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Writes helper `pid`'s setgroups, uid_map and gid_map from this (the
/// parent) user namespace: inside ids are the sandbox ids; outside, root maps
/// them to the same host ids and anyone else to their own ids.
fn write_maps(pid: libc::pid_t, cfg: &SandboxConfig) -> Result<(), (Step, i32)> {
    let write = |name: &str, data: &str| -> Result<(), i32> {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/{pid}/{name}"))
            .and_then(|mut f| f.write_all(data.as_bytes()))
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    };
    match write("setgroups", "deny") {
        Ok(()) | Err(libc::ENOENT) => {}
        Err(e) => return Err((Step::WriteSetgroups, e)),
    }
    // SAFETY: plain getters.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let (uid, gid) = (cfg.sandbox_uid, cfg.sandbox_gid);
    let mut uid_maps = vec![format!("{uid} {euid} 1\n")];
    let mut gid_maps = vec![format!("{gid} {egid} 1\n")];
    if euid == 0 {
        // Preferred: the host's nobody. Falls back to our own ids where the
        // sandbox ids are not mapped (root of a user namespace).
        uid_maps.insert(0, format!("{uid} {uid} 1\n"));
        gid_maps.insert(0, format!("{gid} {gid} 1\n"));
    }
    for (name, maps, step) in [
        ("uid_map", &uid_maps, Step::WriteUidMap),
        ("gid_map", &gid_maps, Step::WriteGidMap),
    ] {
        let mut last = 0;
        let ok = maps.iter().any(|m| match write(name, m) {
            Ok(()) => true,
            Err(e) => {
                last = e;
                false
            }
        });
        if !ok {
            return Err((step, last));
        }
    }
    Ok(())
}

fn supervise(
    req: &Request,
    start: Instant,
    pid: libc::pid_t,
    fds: [OwnedFd; 3],
    go: OwnedFd,
) -> Outcome {
    let mut go = Some(go);
    let mut map_error: Option<(Step, i32)> = None;
    for fd in &fds {
        set_nonblocking(fd);
    }
    let cap = req.cfg.max_output_bytes.max(64);
    let mut streams = Streams {
        fds,
        open: [true; 3],
        stdout: CappedBuffer::new(cap),
        stderr: CappedBuffer::new(cap),
        report: Vec::new(),
        buf: vec![0u8; 64 * 1024],
    };
    let deadline = start + req.timeout;
    let mut init_pidfd: Option<OwnedFd> = None;
    let mut init_pid: Option<libc::pid_t> = None;
    let mut timed_out = false;
    let mut killed_at: Option<Instant> = None;
    let kill_run = |init_pidfd: &Option<OwnedFd>, init_pid: Option<libc::pid_t>| {
        // SAFETY: signalling our own helper processes.
        unsafe {
            if !req.namespaces {
                libc::killpg(pid, libc::SIGKILL);
            } else if let Some(fd) = init_pidfd {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0u32,
                );
            } else if let Some(p) = init_pid {
                libc::kill(p, libc::SIGKILL);
            } else {
                // B dies with A (PR_SET_PDEATHSIG).
                libc::kill(pid, libc::SIGKILL);
            }
        }
    };
    loop {
        if go.is_some() && parse_reports(&streams.report).unshared {
            match write_maps(pid, req.cfg) {
                Ok(()) => {
                    if let Some(fd) = &go {
                        // SAFETY: writing one byte to our pipe.
                        unsafe { libc::write(fd.as_raw_fd(), b"g".as_ptr().cast(), 1) };
                    }
                }
                Err(e) => map_error = Some(e),
            }
            // Closing the pipe without a byte makes the helper give up.
            go = None;
        }
        if init_pid.is_none() {
            if let Some(p) = parse_reports(&streams.report).init_pid {
                init_pid = Some(p);
                init_pidfd = pidfd_open(p);
            }
        }
        if exited_nowait(pid) {
            break;
        }
        let now = Instant::now();
        if !timed_out && now >= deadline {
            timed_out = true;
            killed_at = Some(now);
            kill_run(&init_pidfd, init_pid);
        }
        if let Some(t) = killed_at {
            if now.duration_since(t) > Duration::from_secs(5) {
                // SAFETY: last resort on our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let wait = if timed_out {
            Duration::from_millis(10)
        } else {
            deadline
                .saturating_duration_since(now)
                .min(Duration::from_millis(20))
        };
        streams.pump(wait);
    }
    if !req.namespaces {
        // Whatever is left of the program's process group (a process that
        // called setsid escapes this; only the namespaced mode catches it).
        // SAFETY: the group id is our unreaped child's pid, so it is not reused.
        unsafe { libc::killpg(pid, libc::SIGKILL) };
    }
    let helper_status = reap(pid);
    // Namespaced: every process of the run is gone, so the pipes reach EOF.
    // Unsandboxed: an escaped process could hold them open; read briefly.
    let drain_for = if req.namespaces {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(200)
    };
    let drain_until = Instant::now() + drain_for;
    while streams.any_open() && Instant::now() < drain_until {
        streams.pump(Duration::from_millis(20));
    }
    let reports = parse_reports(&streams.report);
    let (stdout, verdicts) = split_verdicts(streams.stdout.render(), req.secret);
    let stderr = streams.stderr.render();
    let program_status = if req.namespaces {
        reports.program_status
    } else {
        Some(helper_status)
    };
    let mut exit_code = None;
    let mut signal = None;
    let setup_error = map_error
        .map(|(step, err)| (step as u32, err))
        .or(reports.setup_error);
    let status = if let Some((step, err)) = setup_error {
        let step = Step::from_u32(step)
            .map(Step::describe)
            .unwrap_or("unknown sandbox step");
        Status::Error {
            message: format!("{step} failed: {}", errno_text(err)),
        }
    } else if timed_out {
        Status::TimedOut
    } else {
        match program_status {
            None => Status::Error {
                message: "the sandbox's init process ended without reporting the program's status"
                    .into(),
            },
            Some(st) if libc::WIFEXITED(st) => {
                let code = libc::WEXITSTATUS(st);
                exit_code = Some(code);
                if code == 0 {
                    Status::Passed
                } else {
                    Status::Failed {
                        last_line: last_line(&stderr)
                            .unwrap_or_else(|| format!("exit status {code}")),
                    }
                }
            }
            Some(st) if libc::WIFSIGNALED(st) => {
                let sig = libc::WTERMSIG(st);
                signal = Some(sig);
                if sig == libc::SIGXCPU {
                    Status::TimedOut
                } else {
                    Status::Failed {
                        last_line: format!("killed by signal {sig} ({})", signal_name(sig)),
                    }
                }
            }
            Some(st) => Status::Error {
                message: format!("unexpected wait status {st:#x}"),
            },
        }
    };
    Outcome {
        status,
        stdout,
        stderr,
        stdout_total_bytes: streams.stdout.total(),
        stderr_total_bytes: streams.stderr.total(),
        exit_code,
        signal,
        duration: start.elapsed(),
        verdicts,
    }
}

/// Separates the lines that start with the run's secret (and a space) from
/// the rest of stdout.
fn split_verdicts(stdout: String, secret: Option<&str>) -> (String, Vec<String>) {
    let Some(secret) = secret else {
        return (stdout, Vec::new());
    };
    let prefix = format!("{secret} ");
    let mut rest = String::with_capacity(stdout.len());
    let mut verdicts = Vec::new();
    for line in stdout.split_inclusive('\n') {
        match line.strip_prefix(&prefix) {
            Some(v) => verdicts.push(v.trim_end_matches(['\n', '\r']).to_string()),
            None => rest.push_str(line),
        }
    }
    (rest, verdicts)
}
