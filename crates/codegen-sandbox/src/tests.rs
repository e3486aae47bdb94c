use super::*;
use crate::capture::{last_line, CappedBuffer};

#[test]
fn capped_buffer_keeps_everything_under_the_cap() {
    let mut buf = CappedBuffer::new(100);
    buf.push(b"hello ");
    buf.push(b"world\n");
    assert_eq!(buf.render(), "hello world\n");
    assert_eq!(buf.total(), 12);
}

#[test]
fn capped_buffer_keeps_head_and_tail() {
    let mut buf = CappedBuffer::new(100);
    for _ in 0..1000 {
        buf.push(b"0123456789");
    }
    buf.push(b"\nTraceback\nValueError: bad\n");
    let text = buf.render();
    assert_eq!(buf.total(), 10_000 + 27);
    assert!(text.starts_with("0123456789"), "{text}");
    assert!(text.contains("bytes omitted]"), "{text}");
    assert!(text.ends_with("ValueError: bad\n"), "{text}");
    assert!(text.len() < 100 + 60, "{}", text.len());
    assert_eq!(last_line(&text).as_deref(), Some("ValueError: bad"));
}

#[test]
fn last_line_skips_blank_lines() {
    assert_eq!(last_line("a\nb  \n\n  \n").as_deref(), Some("b"));
    assert_eq!(last_line("\n \n"), None);
}

#[test]
fn default_config_documents_limits() {
    let cfg = SandboxConfig::default();
    assert_eq!(cfg.timeout, Duration::from_secs(10));
    assert_eq!(cfg.sandbox_uid, 65534);
    assert!(!cfg.allow_unsandboxed);
}

#[test]
fn resolve_python_skips_hidden_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let hidden = vec![std::fs::canonicalize(dir.path()).unwrap()];
    let fake = dir.path().join("python-fake");
    std::fs::write(&fake, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    match resolve_python(&fake, &hidden) {
        Err(SandboxError::PythonHidden { .. }) => {}
        other => panic!("expected PythonHidden, got {other:?}"),
    }
    assert!(matches!(
        resolve_python(Path::new("/nonexistent/python3"), &hidden),
        Err(SandboxError::PythonNotFound { .. })
    ));
}

#[test]
fn invalid_config_is_rejected() {
    let cfg = SandboxConfig {
        timeout: Duration::ZERO,
        ..SandboxConfig::default()
    };
    assert!(matches!(
        Sandbox::new(cfg),
        Err(SandboxError::InvalidConfig(_))
    ));
}
