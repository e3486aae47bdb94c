//! The seccomp filter every sandboxed program runs under, compiled with the
//! `seccompiler` crate. It refuses (with `EPERM`) the system calls that an
//! untrusted Python program never needs and that widen what it can reach;
//! everything else is allowed, so honest programs behave as they do outside.
//!
//! | refused | why |
//! |---|---|
//! | `ptrace`, `process_vm_readv`, `process_vm_writev`, `kcmp`, `pidfd_getfd` | reading or steering another process of the run (the harness that holds the verdict) |
//! | `mount`, `umount2`, `pivot_root`, `chroot`, `move_mount`, `open_tree`, `fsopen`, `fsconfig`, `fsmount`, `fspick`, `mount_setattr` | changing the file system view the sandbox built |
//! | `unshare`, `setns`, `clone` with any `CLONE_NEW*` flag | new namespaces: a new user namespace gives back capabilities inside it |
//! | `clone3` (answered `ENOSYS`, so the C library falls back to `clone`) | its flags sit in memory a filter cannot inspect |
//! | `bpf`, `perf_event_open`, `userfaultfd`, `io_uring_setup`, `io_uring_enter`, `io_uring_register` | large kernel attack surface; `io_uring` also performs operations no filter sees |
//! | `keyctl`, `add_key`, `request_key` | the kernel keyring is not namespaced |
//! | `init_module`, `finit_module`, `delete_module`, `kexec_load`, `kexec_file_load`, `reboot` | kernel modules and reboots |
//! | `swapon`, `swapoff`, `acct`, `quotactl`, `syslog`, `vhangup`, `settimeofday`, `clock_settime`, `clock_adjtime`, `adjtimex`, `sethostname`, `setdomainname`, `iopl`, `ioperm`, `personality` | host administration; `personality` can turn off address-space randomisation |
//! | `open_by_handle_at`, `name_to_handle_at`, `lookup_dcookie`, `fanotify_init` | reaching files by handle, past the mount view |
//! | `socket` for every family but `AF_UNIX`, `AF_INET`, `AF_INET6` | netlink, packet and other raw families; the network namespace is empty anyway |

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// The refused calls and their numbers on this architecture (`iopl` and
/// `ioperm` exist on x86 only).
pub const REFUSED: &[(&str, libc::c_long)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("kcmp", libc::SYS_kcmp),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("quotactl", libc::SYS_quotactl),
    ("syslog", libc::SYS_syslog),
    ("vhangup", libc::SYS_vhangup),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("sethostname", libc::SYS_sethostname),
    ("setdomainname", libc::SYS_setdomainname),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm),
    ("personality", libc::SYS_personality),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("fanotify_init", libc::SYS_fanotify_init),
];

const CLONE_NEW_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// The two compiled filters: the refusals (`EPERM`), and `clone3` answered
/// with `ENOSYS`. Installed in that order right before `exec`.
pub(crate) fn compile() -> Result<[BpfProgram; 2], String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp filter for {}: {e}", std::env::consts::ARCH))?;
    let err = |e: seccompiler::BackendError| format!("compiling the seccomp filter: {e}");
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in REFUSED {
        rules.insert(*nr, Vec::new());
    }
    // socket(family, ...): refused unless the family is UNIX, INET or INET6.
    let family =
        |v: i32| SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, v as u64);
    rules.insert(
        libc::SYS_socket,
        vec![SeccompRule::new(vec![
            family(libc::AF_UNIX).map_err(err)?,
            family(libc::AF_INET).map_err(err)?,
            family(libc::AF_INET6).map_err(err)?,
        ])
        .map_err(err)?],
    );
    // clone(flags, ...) with any namespace flag.
    let mut clone_rules = Vec::new();
    for flag in CLONE_NEW_FLAGS {
        clone_rules.push(
            SeccompRule::new(vec![SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )
            .map_err(err)?])
            .map_err(err)?,
        );
    }
    rules.insert(libc::SYS_clone, clone_rules);
    let refusals = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(err)?;
    let mut clone3 = BTreeMap::new();
    clone3.insert(libc::SYS_clone3, Vec::new());
    let clone3 = SeccompFilter::new(
        clone3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(err)?;
    Ok([
        BpfProgram::try_from(refusals).map_err(err)?,
        BpfProgram::try_from(clone3).map_err(err)?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refused_call_is_in_the_compiled_filter_once() {
        let mut numbers: Vec<_> = REFUSED.iter().map(|(_, nr)| *nr).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), REFUSED.len(), "two names share a number");
        let [a, b] = compile().unwrap();
        assert!(a.len() > REFUSED.len() && !b.is_empty());
    }

    #[test]
    fn the_module_documentation_lists_every_refused_call() {
        let doc = include_str!("filter.rs");
        let table: String = doc
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        for (name, _) in REFUSED {
            assert!(
                table.contains(&format!("`{name}`")),
                "{name} is not documented"
            );
        }
    }
}
