//! Host facts the sandbox needs: which directories to hide, and why the
//! kernel may refuse user namespaces.

use std::ffi::CStr;
use std::path::{Path, PathBuf};

/// Home directories hidden inside the sandbox: `/home`, `/root`, `$HOME` and
/// the current user's passwd home (canonical, deduplicated, never `/`).
pub(crate) fn hidden_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/home"), PathBuf::from("/root")];
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home));
    }
    if let Some(home) = passwd_home() {
        dirs.push(home);
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        if !dir.is_absolute() {
            continue;
        }
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        if dir == Path::new("/") || out.contains(&dir) {
            continue;
        }
        out.push(dir);
    }
    out
}

fn passwd_home() -> Option<PathBuf> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: getpwuid_r writes into `pwd` and `buf`, both valid for the call.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::getuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
            return None;
        }
        let dir = CStr::from_ptr(pwd.pw_dir).to_string_lossy().into_owned();
        Some(PathBuf::from(dir))
    }
}

fn read_sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Settings that commonly explain a refused `unshare(CLONE_NEWUSER)`,
/// formatted as `"; a = b; c = d"` (empty when none is readable).
pub(crate) fn userns_hints() -> String {
    let mut hints = Vec::new();
    if let Some(v) = read_sysctl("/proc/sys/user/max_user_namespaces") {
        let note = if v == "0" {
            " (user namespaces are disabled)"
        } else {
            ""
        };
        hints.push(format!("/proc/sys/user/max_user_namespaces = {v}{note}"));
    }
    if let Some(v) = read_sysctl("/proc/sys/kernel/unprivileged_userns_clone") {
        let note = if v == "0" {
            " (unprivileged user namespaces are disabled)"
        } else {
            ""
        };
        hints.push(format!("kernel.unprivileged_userns_clone = {v}{note}"));
    }
    if let Some(v) = read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
        let note = if v == "1" {
            " (AppArmor restricts unprivileged user namespaces)"
        } else {
            ""
        };
        hints.push(format!(
            "kernel.apparmor_restrict_unprivileged_userns = {v}{note}"
        ));
    }
    if let Some(status) = read_sysctl("/proc/self/status") {
        if let Some(line) = status.lines().find(|l| l.starts_with("Seccomp:")) {
            let v = line.trim_start_matches("Seccomp:").trim();
            if v != "0" {
                hints.push(format!(
                    "a seccomp filter is active (Seccomp: {v}; containers often block unshare)"
                ));
            }
        }
    }
    if hints.is_empty() {
        String::new()
    } else {
        format!("; {}", hints.join("; "))
    }
}

/// `EPERM (Operation not permitted)`-style description of an errno value.
pub(crate) fn errno_text(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ENOSYS => "ENOSYS",
        libc::EUSERS => "EUSERS",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EBUSY => "EBUSY",
        libc::ENOTDIR => "ENOTDIR",
        libc::EROFS => "EROFS",
        _ => "",
    };
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    let text = text
        .split(" (os error")
        .next()
        .unwrap_or(text.as_str())
        .to_string();
    if name.is_empty() {
        format!("errno {errno} ({text})")
    } else {
        format!("{name} ({text})")
    }
}

/// Name of a signal, for messages.
pub(crate) fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGTERM => "SIGTERM",
        libc::SIGBUS => "SIGBUS",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}
