//! The minimal root a sandboxed program sees, planned on the host before
//! any run: the interpreter, the directories of its own `sys.path` (the
//! standard library and its extension modules, never site-packages), the
//! shared libraries those files link against (found with `ldd`), a minimal
//! `/dev`, and mount points for a fresh `/proc` and the private `/tmp`.
//! Nothing else of the host exists inside: no `/home`, `/root`, `/opt`,
//! `/srv`, `/run`, `/var`, `/sys`, no project checkout, no model cache.
//!
//! The plan is a list of [`RootOp`]s with every path already turned into a
//! C string, so that the namespace's init process can carry it out with raw
//! system calls between `fork` and `exec`.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// Where the new root is assembled (a tmpfs mounted over the host's `/tmp`
/// inside the run's private mount namespace), before `pivot_root`.
pub(crate) const STAGING: &str = "/tmp";

/// One step of building the root; paths are absolute paths under [`STAGING`].
#[derive(Debug, Clone)]
pub(crate) enum RootOp {
    Dir(CString),
    Symlink {
        target: CString,
        path: CString,
    },
    /// A read-only, `nosuid`, `nodev` bind mount of a host file or directory;
    /// `locked` holds the source mount's flags that a user namespace may not
    /// clear on remount (`noexec`, the atime flags).
    BindRo {
        src: CString,
        dst: CString,
        file: bool,
        locked: libc::c_ulong,
    },
    /// A device node bound from the host (`nosuid`, writable: `/dev/null`).
    BindDev {
        src: CString,
        dst: CString,
        locked: libc::c_ulong,
    },
    /// An empty read-only tmpfs over a directory the plan must not show
    /// (site-packages inside a bound standard library).
    Mask(CString),
}

/// The planned root, and what it holds (for `codegen sandbox info` and tests).
#[derive(Debug, Clone)]
pub(crate) struct RootPlan {
    pub(crate) ops: Vec<RootOp>,
    /// Host paths bound read-only, in order.
    pub(crate) bound: Vec<PathBuf>,
    /// The interpreter's path as the program executes it (canonical).
    pub(crate) python: PathBuf,
}

/// What the interpreter reports about itself when run without `site`.
fn python_paths(python: &Path) -> Result<(PathBuf, Vec<PathBuf>), String> {
    const QUERY: &str = "import sys, json; print(json.dumps([sys.executable, sys.path]))";
    let out = Command::new(python)
        .args(["-I", "-S", "-c", QUERY])
        .env_clear()
        .output()
        .map_err(|e| {
            format!(
                "running {} to find its standard library: {e}",
                python.display()
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "{} -I -S failed: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (exe, path): (String, Vec<String>) = serde_json_lite(&text).ok_or_else(|| {
        format!(
            "unexpected answer from {} about its paths: {text:?}",
            python.display()
        )
    })?;
    let exe = if exe.is_empty() {
        python.to_path_buf()
    } else {
        PathBuf::from(exe)
    };
    Ok((exe, path.into_iter().map(PathBuf::from).collect()))
}

/// Parses `["exe", ["p1", "p2"]]` as printed by `json.dumps` (plain strings
/// only; the sandbox crate does not depend on a JSON library).
fn serde_json_lite(text: &str) -> Option<(String, Vec<String>)> {
    let mut strings = Vec::new();
    let mut chars = text.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'u' => {
                        let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                        s.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    other => s.push(other),
                },
                other => s.push(other),
            }
        }
        strings.push(s);
    }
    let mut it = strings.into_iter();
    let exe = it.next()?;
    Some((exe, it.collect()))
}

/// Absolute paths of the shared libraries `files` load, from `ldd`.
fn shared_libraries(files: &[PathBuf]) -> Result<BTreeSet<PathBuf>, String> {
    let mut libs = BTreeSet::new();
    for chunk in files.chunks(64) {
        let out = Command::new("ldd")
            .args(chunk)
            .env_clear()
            .output()
            .map_err(|e| {
                format!(
                    "running ldd (from libc-bin) to find the interpreter's shared libraries: {e}"
                )
            })?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let line = line.trim();
            // With several files ldd heads each list with "FILE:".
            if !line.contains("(0x") {
                continue;
            }
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => line,
            };
            let path = path.split(" (").next().unwrap_or("").trim();
            if path.starts_with('/') {
                libs.insert(PathBuf::from(path));
            }
        }
    }
    Ok(libs)
}

/// Shared objects under a directory (two levels deep).
fn shared_objects(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() && depth > 0 {
            shared_objects(&path, depth - 1, out);
        } else if meta.is_file() && path.to_string_lossy().ends_with(".so") {
            out.push(path);
        }
    }
}

fn cstr(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("path contains a NUL byte: {}", path.display()))
}

fn staged(path: &Path) -> PathBuf {
    let rel = path.strip_prefix("/").unwrap_or(path);
    Path::new(STAGING).join(rel)
}

/// Flags of the mount holding `path` that an unprivileged remount must keep.
fn locked_flags(path: &Path) -> libc::c_ulong {
    let Ok(c) = cstr(path) else {
        return 0;
    };
    // SAFETY: statvfs fills `st` for a valid C path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let f = st.f_flag;
    let mut flags = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
        (libc::ST_NODEV, libc::MS_NODEV),
    ] {
        if f & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    flags
}

struct Builder {
    ops: Vec<RootOp>,
    /// Paths (inside the root) already created.
    made: BTreeSet<PathBuf>,
    bound: Vec<PathBuf>,
}

impl Builder {
    /// Makes `path` (a host path) resolvable inside the root: directories
    /// on the way are created, symbolic links on the way are recreated and
    /// followed. Returns the canonical host path it leads to.
    fn ensure_parents(&mut self, path: &Path, hops: usize) -> Result<PathBuf, String> {
        if hops > 40 {
            return Err(format!(
                "too many symbolic links resolving {}",
                path.display()
            ));
        }
        let mut resolved = PathBuf::from("/");
        let components: Vec<Component> = path.components().collect();
        for (i, comp) in components.iter().enumerate() {
            let Component::Normal(name) = comp else {
                if let Component::ParentDir = comp {
                    resolved.pop();
                }
                continue;
            };
            let next = resolved.join(name);
            let last = i + 1 == components.len();
            let meta =
                std::fs::symlink_metadata(&next).map_err(|e| format!("{}: {e}", next.display()))?;
            if meta.file_type().is_symlink() {
                let target =
                    std::fs::read_link(&next).map_err(|e| format!("{}: {e}", next.display()))?;
                if self.made.insert(next.clone()) {
                    self.ops.push(RootOp::Symlink {
                        target: cstr(&target)?,
                        path: cstr(&staged(&next))?,
                    });
                }
                let target_abs = if target.is_absolute() {
                    target
                } else {
                    resolved.join(target)
                };
                let rest: PathBuf = components[i + 1..].iter().collect();
                let full = target_abs.join(rest);
                return self.ensure_parents(&normalize(&full), hops + 1);
            }
            if last {
                return Ok(next);
            }
            if self.made.insert(next.clone()) {
                self.ops.push(RootOp::Dir(cstr(&staged(&next))?));
            }
            resolved = next;
        }
        Ok(resolved)
    }

    /// Binds `path` read-only at the same place inside the root.
    fn bind(&mut self, path: &Path) -> Result<(), String> {
        let real = self.ensure_parents(path, 0)?;
        if self.made.contains(&real) {
            return Ok(());
        }
        let meta = std::fs::metadata(&real).map_err(|e| format!("{}: {e}", real.display()))?;
        self.made.insert(real.clone());
        let dst = staged(&real);
        if meta.is_dir() {
            self.ops.push(RootOp::Dir(cstr(&dst)?));
        }
        self.ops.push(RootOp::BindRo {
            src: cstr(&real)?,
            dst: cstr(&dst)?,
            file: !meta.is_dir(),
            locked: locked_flags(&real),
        });
        self.bound.push(real);
        Ok(())
    }

    fn dir(&mut self, inside: &str) -> Result<(), String> {
        let p = PathBuf::from(inside);
        if self.made.insert(p.clone()) {
            self.ops.push(RootOp::Dir(cstr(&staged(&p))?));
        }
        Ok(())
    }
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for comp in path.components() {
        match comp {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Plans the root for `python` plus the caller's `extra` read-only paths.
pub(crate) fn plan(python: &Path, extra: &[PathBuf]) -> Result<RootPlan, String> {
    let (exe, sys_path) = python_paths(python)?;
    let exe_real = std::fs::canonicalize(&exe).map_err(|e| format!("{}: {e}", exe.display()))?;
    let mut b = Builder {
        ops: Vec::new(),
        made: BTreeSet::new(),
        bound: Vec::new(),
    };
    b.made.insert(PathBuf::from("/"));
    // Mount points first: /proc, /tmp and /dev are filled by the init process.
    b.dir("/proc")?;
    b.dir("/tmp")?;
    b.dir("/dev")?;
    for node in ["null", "zero", "urandom"] {
        let host = Path::new("/dev").join(node);
        if host.exists() {
            let locked = locked_flags(Path::new("/dev")) & !libc::MS_NODEV;
            b.ops.push(RootOp::BindDev {
                src: cstr(&host)?,
                dst: cstr(&staged(&host))?,
                locked,
            });
        }
    }
    b.bind(python)?;
    b.bind(&exe_real)?;
    let mut objects = vec![exe_real.clone()];
    let mut stdlib_dirs = Vec::new();
    for entry in &sys_path {
        if !entry.is_absolute() || !entry.exists() {
            continue;
        }
        b.bind(entry)?;
        if entry.is_dir() {
            shared_objects(entry, 2, &mut objects);
            stdlib_dirs.push(entry.clone());
        }
    }
    let mut libs = shared_libraries(&objects)?;
    // glibc loads libgcc_s at run time (thread cancellation); bind it where
    // it sits beside libc.
    if let Some(libc_dir) = libs
        .iter()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libc.so"))
        })
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        let gcc = libc_dir.join("libgcc_s.so.1");
        if gcc.exists() {
            libs.insert(gcc);
        }
    }
    for lib in &libs {
        b.bind(lib)?;
    }
    if Path::new("/etc/ld.so.cache").exists() {
        b.bind(Path::new("/etc/ld.so.cache"))?;
    }
    for path in extra {
        if !path.is_absolute() {
            return Err(format!(
                "extra read-only path {} must be absolute",
                path.display()
            ));
        }
        b.bind(path)?;
    }
    // Site-packages never come with the standard library.
    for dir in &stdlib_dirs {
        for name in ["site-packages", "dist-packages"] {
            let sub = dir.join(name);
            if sub.is_dir() && !extra.iter().any(|e| e == &sub) {
                b.ops.push(RootOp::Mask(cstr(&staged(&sub))?));
            }
        }
    }
    for op in &b.ops {
        let dst = match op {
            RootOp::BindRo { src, .. } | RootOp::BindDev { src, .. } => src,
            _ => continue,
        };
        if Path::new(std::ffi::OsStr::from_bytes(dst.as_bytes())).starts_with(STAGING) {
            return Err(format!(
                "{} lies under {STAGING}, where the sandbox builds its root; install the interpreter elsewhere",
                String::from_utf8_lossy(dst.as_bytes())
            ));
        }
    }
    Ok(RootPlan {
        ops: b.ops,
        bound: b.bound,
        python: exe_real,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_interpreters_answer() {
        let (exe, path) = serde_json_lite(
            r#"["/usr/bin/python3.11", ["/usr/lib/python311.zip", "/a\"b", "/\u00e9"]]"#,
        )
        .unwrap();
        assert_eq!(exe, "/usr/bin/python3.11");
        assert_eq!(path, vec!["/usr/lib/python311.zip", "/a\"b", "/é"]);
    }

    #[test]
    fn plan_binds_the_interpreter_and_never_site_packages() {
        let python = Path::new("/usr/bin/python3");
        if !python.exists() {
            eprintln!("skipped: no /usr/bin/python3");
            return;
        }
        let plan = plan(python, &[]).unwrap();
        assert!(
            plan.bound.iter().any(|p| p == &plan.python),
            "{:?}",
            plan.bound
        );
        assert!(
            plan.bound
                .iter()
                .any(|p| p.to_string_lossy().contains("libc.so")),
            "{:?}",
            plan.bound
        );
        for p in &plan.bound {
            let s = p.to_string_lossy();
            assert!(
                !s.contains("site-packages") && !s.contains("dist-packages"),
                "{s}"
            );
            for hidden in [
                "/home", "/root", "/opt", "/srv", "/run", "/var", "/sys", "/work",
            ] {
                assert!(!p.starts_with(hidden), "{s}");
            }
        }
    }
}
