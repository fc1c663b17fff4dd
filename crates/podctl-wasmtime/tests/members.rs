//! Member behaviour with WAT guests (WASI preview1 core modules): exit codes, stdio to the log,
//! args/env, preopens, memory limits, fairness between members, stop/kill, the AOT cache and the
//! loader's errors. Component paths (commands, HTTP proxies) are exercised with the Rust examples
//! in `wasm-examples/` (see the ignored test at the end).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use podctl_wasmtime::{
    is_wasm, ExitReason, HostConfig, MemberSpec, MemberStatus, Output, Preopen, ProgramKind, WasmError, WasmHost,
};

const WASI: &str = "wasi_snapshot_preview1";

fn host() -> WasmHost {
    WasmHost::new(HostConfig::default()).expect("wasm host")
}

fn spec(name: &str, dir: &Path) -> MemberSpec {
    MemberSpec {
        name: name.into(),
        args: vec![name.into()],
        output: Output::File(dir.join(format!("{name}.log"))),
        ..MemberSpec::default()
    }
}

fn log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

/// Prints "hello\n" and then exits with `exit` (`None`: `_start` returns).
fn hello_wat(exit: Option<i32>) -> String {
    let exit = exit
        .map(|c| format!("(call $proc_exit (i32.const {c}))"))
        .unwrap_or_default();
    format!(
        r#"(module
  (import "{WASI}" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "{WASI}" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    {exit}))"#
    )
}

/// Writes its whole environment block to stderr and exits with argc.
fn env_wat() -> String {
    format!(
        r#"(module
  (import "{WASI}" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  (import "{WASI}" "environ_get" (func $env_get (param i32 i32) (result i32)))
  (import "{WASI}" "args_sizes_get" (func $args_sizes (param i32 i32) (result i32)))
  (import "{WASI}" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "{WASI}" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $env_sizes (i32.const 0) (i32.const 4)))
    (drop (call $env_get (i32.const 1024) (i32.const 4096)))
    (i32.store (i32.const 8) (i32.const 4096))
    (i32.store (i32.const 12) (i32.load (i32.const 4)))
    (drop (call $fd_write (i32.const 2) (i32.const 8) (i32.const 1) (i32.const 16)))
    (drop (call $args_sizes (i32.const 20) (i32.const 24)))
    (call $proc_exit (i32.load (i32.const 20)))))"#
    )
}

/// `path_open(fd, path, oflags, rights)` and exits with the errno (0: opened).
fn open_wat(fd: u32, path: &str, oflags: u32, rights: u64) -> String {
    let len = path.len();
    format!(
        r#"(module
  (import "{WASI}" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "{WASI}" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{path}")
  (func (export "_start")
    (call $proc_exit
      (call $path_open (i32.const {fd}) (i32.const 0) (i32.const 64) (i32.const {len})
        (i32.const {oflags}) (i64.const {rights}) (i64.const 0) (i32.const 0) (i32.const 32)))))"#
    )
}

const SPINNER: &str = r#"(module (func (export "_start") (loop (br 0))))"#;

const MEMORY_BOMB: &str = r#"(module
  (memory 1)
  (func (export "_start") (loop (drop (memory.grow (i32.const 1))) (br 0))))"#;

/// Sleeps for an hour in poll_oneoff (blocked in a WASI call, not spinning).
fn sleeper_wat() -> String {
    format!(
        r#"(module
  (import "{WASI}" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 3600000000000))
    (drop (call $poll (i32.const 0) (i32.const 128) (i32.const 1) (i32.const 256)))))"#
    )
}

async fn run(host: &WasmHost, wat: &str, spec: MemberSpec) -> podctl_wasmtime::ExitInfo {
    let program = host.load(wat.as_bytes()).expect("load");
    let member = host.start(&program, spec).expect("start");
    tokio::time::timeout(Duration::from_secs(20), member.wait())
        .await
        .expect("member ends")
}

#[tokio::test]
async fn exit_code_and_stdout_go_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();

    let info = run(&host, &hello_wat(Some(3)), spec("three", dir.path())).await;
    assert_eq!((info.code, info.reason.clone()), (3, ExitReason::Error), "{info:?}");
    assert_eq!(log(dir.path(), "three"), "hello\n");

    let info = run(&host, &hello_wat(Some(0)), spec("zero", dir.path())).await;
    assert_eq!((info.code, info.reason.clone()), (0, ExitReason::Completed), "{info:?}");

    let info = run(&host, &hello_wat(None), spec("returns", dir.path())).await;
    assert_eq!((info.code, info.reason.clone()), (0, ExitReason::Completed), "{info:?}");

    // The log is appended to, never truncated.
    run(&host, &hello_wat(None), spec("returns", dir.path())).await;
    assert_eq!(log(dir.path(), "returns"), "hello\nhello\n");
}

#[tokio::test]
async fn status_reports_running_then_exited() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    let program = host.load(SPINNER.as_bytes()).unwrap();
    let member = host.start(&program, spec("spin", dir.path())).unwrap();
    assert!(
        matches!(member.status(), MemberStatus::Running { ready: true, .. }),
        "{:?}",
        member.status()
    );
    member.kill();
    let info = tokio::time::timeout(Duration::from_secs(2), member.wait())
        .await
        .unwrap();
    assert_eq!(member.status(), MemberStatus::Exited(info));
}

#[tokio::test]
async fn args_and_env_are_exactly_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    let mut s = spec("env", dir.path());
    s.args = vec!["env".into(), "a".into(), "b".into()];
    s.env = vec![("GREETING".into(), "hi".into()), ("POD".into(), "echo".into())];
    let info = run(&host, &env_wat(), s).await;
    assert_eq!(info.code, 3, "argc is the exit code: {info:?}");
    let out = log(dir.path(), "env");
    assert!(out.contains("GREETING=hi\0") && out.contains("POD=echo\0"), "{out:?}");
    assert!(!out.contains("PATH="), "the agent's environment leaked: {out:?}");
}

#[tokio::test]
async fn only_preopened_directories_are_reachable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("hello.txt"), "hi").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
    let host = host();
    const FD_READ: u64 = 1 << 1;
    const FD_WRITE: u64 = 1 << 6;
    const O_CREAT: u32 = 1;
    // WASI errnos that mean "not allowed": EACCES, EBADF (no such preopen), EPERM, ENOTCAPABLE.
    let denied = [2, 8, 63, 76];

    let with_preopen = |name: &str, read_only: bool| {
        let mut s = spec(name, dir.path());
        s.preopens = vec![Preopen {
            host: data.clone(),
            guest: "/data".into(),
            read_only,
        }];
        s
    };

    let ok = run(
        &host,
        &open_wat(3, "hello.txt", 0, FD_READ),
        with_preopen("inside", false),
    )
    .await;
    assert_eq!(ok.code, 0, "opening a file under the preopen works: {ok:?}");

    let escape = run(
        &host,
        &open_wat(3, "../secret.txt", 0, FD_READ),
        with_preopen("escape", false),
    )
    .await;
    println!("escape via ..: errno {}", escape.code);
    assert!(
        denied.contains(&escape.code),
        "escaping the preopen must be denied: {escape:?}"
    );

    let absolute = run(
        &host,
        &open_wat(3, "/etc/passwd", 0, FD_READ),
        with_preopen("absolute", false),
    )
    .await;
    println!("absolute path: errno {}", absolute.code);
    assert!(
        denied.contains(&absolute.code),
        "absolute paths must be denied: {absolute:?}"
    );

    let no_dir = run(&host, &open_wat(3, "secret.txt", 0, FD_READ), spec("nodir", dir.path())).await;
    assert_eq!(
        no_dir.code, 8,
        "without preopens there is no directory fd (EBADF): {no_dir:?}"
    );

    let ro = run(
        &host,
        &open_wat(3, "new.txt", O_CREAT, FD_WRITE),
        with_preopen("readonly", true),
    )
    .await;
    println!("create in read-only preopen: errno {}", ro.code);
    assert!(
        denied.contains(&ro.code),
        "creating under a read-only preopen must be denied: {ro:?}"
    );
    assert!(!data.join("new.txt").exists());

    let rw = run(
        &host,
        &open_wat(3, "new.txt", O_CREAT, FD_WRITE),
        with_preopen("readwrite", false),
    )
    .await;
    assert_eq!(rw.code, 0, "{rw:?}");
    assert!(data.join("new.txt").exists());
}

#[tokio::test]
async fn memory_limit_is_reported_as_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    let mut s = spec("bomb", dir.path());
    s.memory_limit = Some(1 << 20);
    let info = run(&host, MEMORY_BOMB, s).await;
    assert_eq!(info.reason, ExitReason::MemoryLimitExceeded, "{info:?}");
    assert_eq!(info.code, 137);
    assert!(
        log(dir.path(), "bomb").contains("memory limit"),
        "{}",
        log(dir.path(), "bomb")
    );

    // A module whose *initial* memory is over the limit fails at instantiation, same reason.
    let mut s = spec("big", dir.path());
    s.memory_limit = Some(1 << 20);
    let info = run(&host, r#"(module (memory 32) (func (export "_start")))"#, s).await;
    assert_eq!(info.reason, ExitReason::MemoryLimitExceeded, "{info:?}");
}

#[tokio::test]
async fn trap_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let info = run(
        &host(),
        r#"(module (func (export "_start") unreachable))"#,
        spec("trap", dir.path()),
    )
    .await;
    assert_eq!((info.code, info.reason.clone()), (134, ExitReason::Trap), "{info:?}");
    assert!(info.message.contains("unreachable"), "{info:?}");
}

/// Runs on tokio's default current-thread runtime: only epoch yields let the others run at all.
#[tokio::test]
async fn a_spinning_member_does_not_stall_siblings_and_kill_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    let spinner = host
        .start(&host.load(SPINNER.as_bytes()).unwrap(), spec("spinner", dir.path()))
        .unwrap();

    let mut s = spec("bomb", dir.path());
    s.memory_limit = Some(1 << 20);
    let bomb = host.start(&host.load(MEMORY_BOMB.as_bytes()).unwrap(), s).unwrap();

    let hello = host.load(hello_wat(Some(0)).as_bytes()).unwrap();
    let started = Instant::now();
    let third = host.start(&hello, spec("third", dir.path())).unwrap();
    let info = tokio::time::timeout(Duration::from_secs(2), third.wait())
        .await
        .expect("the third member completes within 2 s while the spinner runs");
    println!("third member completed in {:?} beside a spinner", started.elapsed());
    assert_eq!(info.reason, ExitReason::Completed);
    let info = tokio::time::timeout(Duration::from_secs(2), bomb.wait()).await.unwrap();
    assert_eq!(info.reason, ExitReason::MemoryLimitExceeded);
    assert!(matches!(spinner.status(), MemberStatus::Running { .. }));

    let killed = Instant::now();
    spinner.kill();
    let info = tokio::time::timeout(Duration::from_secs(1), spinner.wait())
        .await
        .expect("kill ends it within 1 s");
    println!("spinner ended {:?} after kill: {info:?}", killed.elapsed());
    assert_eq!(info.reason, ExitReason::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_interrupts_spinning_and_blocked_members() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    let spinner = host
        .start(&host.load(SPINNER.as_bytes()).unwrap(), spec("spin", dir.path()))
        .unwrap();
    let sleeper = host
        .start(&host.load(sleeper_wat().as_bytes()).unwrap(), spec("sleep", dir.path()))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(sleeper.status(), MemberStatus::Running { .. }));

    let t = Instant::now();
    spinner.stop(Duration::from_secs(30));
    sleeper.stop(Duration::from_secs(30));
    let a = tokio::time::timeout(Duration::from_secs(1), spinner.wait())
        .await
        .expect("spinner stops");
    let b = tokio::time::timeout(Duration::from_secs(1), sleeper.wait())
        .await
        .expect("sleeper stops");
    println!("both stopped in {:?}", t.elapsed());
    assert_eq!((a.reason, b.reason), (ExitReason::Stopped, ExitReason::Stopped));
}

#[tokio::test]
async fn cpu_limit_throttles_but_kill_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    let mut s = spec("slow", dir.path());
    s.cpu_limit_millis = Some(100);
    let spinner = host.start(&host.load(SPINNER.as_bytes()).unwrap(), s).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    spinner.kill();
    let info = tokio::time::timeout(Duration::from_secs(1), spinner.wait())
        .await
        .expect("kill");
    assert_eq!(info.reason, ExitReason::Stopped);
}

/// A module with many functions, so that compiling it takes measurable time.
fn big_wat(functions: usize) -> String {
    let mut s = String::from("(module\n");
    for i in 0..functions {
        s.push_str(&format!(
            "  (func $f{i} (param i32) (result i32) (local i32) \
             (local.set 1 (i32.mul (local.get 0) (i32.const {i}))) \
             (if (result i32) (i32.gt_u (local.get 1) (i32.const 1000)) \
               (then (i32.add (local.get 1) (i32.rotl (local.get 0) (i32.const 3)))) \
               (else (i32.xor (local.get 1) (i32.const {i})))))\n"
        ));
    }
    s.push_str("  (func (export \"_start\"))\n)\n");
    s
}

#[tokio::test]
async fn aot_cache_makes_the_second_load_fast() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache/wasm");
    let wat = big_wat(1000);

    let first = WasmHost::new(HostConfig {
        cache_dir: Some(cache.clone()),
    })
    .unwrap();
    let a = first.load(wat.as_bytes()).unwrap();
    drop(first);
    let second = WasmHost::new(HostConfig {
        cache_dir: Some(cache.clone()),
    })
    .unwrap();
    let b = second.load(wat.as_bytes()).unwrap();
    println!("AOT cache: miss {:?}, hit {:?}", a.load_time, b.load_time);
    assert!(!a.cache_hit && b.cache_hit, "{a:?} {b:?}");
    assert_eq!(a.digest, b.digest);
    assert!(a.digest.starts_with("sha256:") && a.digest.len() == 7 + 64);
    assert!(
        b.load_time * 2 < a.load_time,
        "a cache hit must be much faster: {a:?} {b:?}"
    );
    assert!(a.cache_warning.is_none() && b.cache_warning.is_none());

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);

    // The cached program runs.
    let info = tokio::time::timeout(
        Duration::from_secs(5),
        second.start(&b, spec("cached", dir.path())).unwrap().wait(),
    )
    .await
    .unwrap();
    assert_eq!(info.reason, ExitReason::Completed);

    // A corrupt cache file is replaced, with a warning, not an error. (Replaced by rename, as
    // the cache itself does: the old file is still mapped by `b`, truncating it would SIGBUS.)
    let files: Vec<PathBuf> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::write(dir.path().join("garbage"), b"garbage").unwrap();
    std::fs::rename(dir.path().join("garbage"), &files[0]).unwrap();
    let c = second.load(wat.as_bytes()).unwrap();
    assert!(!c.cache_hit && c.cache_warning.is_some(), "{c:?}");
    assert!(second.load(wat.as_bytes()).unwrap().cache_hit);
}

#[test]
fn recognises_wasm_and_refuses_the_rest() {
    assert!(is_wasm(b"\0asm\x01\0\0\0"));
    assert!(is_wasm(b"(module)"));
    assert!(is_wasm(b";; greeter\n(component)"));
    assert!(!is_wasm(b"FROM debian\n"));

    let host = host();
    let err = host.load_named("greeter", b"#!/bin/sh\necho hi\n").unwrap_err();
    assert!(matches!(err, WasmError::NotWasm { .. }));
    assert_eq!(
        err.to_string(),
        "greeter: file is not WebAssembly (no \\0asm header, not WAT); give a .wasm module/component or a .wat file"
    );

    let err = host.load_named("bad", b"(module (func (i32.bogus)))").unwrap_err();
    assert!(matches!(err, WasmError::InvalidWat { .. }), "{err}");

    let err = host.load_named("lib", b"(module (func (export \"add\")))").unwrap_err();
    assert!(matches!(err, WasmError::NoStart { .. }), "{err}");
    assert!(err.to_string().contains("add"), "{err}");

    let err = host
        .load_named(
            "imports",
            b"(module (import \"env\" \"f\" (func)) (func (export \"_start\")))",
        )
        .unwrap_err();
    assert!(matches!(err, WasmError::Link { .. }), "{err}");
    println!("{err}");

    let err = host.load_named("empty-component", b"(component)").unwrap_err();
    assert!(matches!(err, WasmError::UnsupportedComponent { .. }), "{err}");

    let program = host.load(b"(module (func (export \"_start\")))").unwrap();
    assert_eq!(program.kind, ProgramKind::CoreModule);
    assert!(!program.cache_hit);
}

#[test]
fn start_needs_a_runtime_and_a_writable_log() {
    let host = host();
    let program = host.load(b"(module (func (export \"_start\")))").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = host.start(&program, spec("x", dir.path())).unwrap_err();
    assert!(matches!(err, WasmError::NoRuntime { .. }), "{err}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut s = spec("x", dir.path());
    s.output = Output::File(dir.path().join("missing/dir/x.log"));
    let err = host.start(&program, s).unwrap_err();
    assert!(matches!(err, WasmError::LogFile { .. }), "{err}");

    let mut s = spec("x", dir.path());
    s.preopens = vec![Preopen {
        host: dir.path().join("nope"),
        guest: "/nope".into(),
        read_only: true,
    }];
    let err = host.start(&program, s).unwrap_err();
    assert!(matches!(err, WasmError::Preopen { .. }), "{err}");
}

/// The Rust examples (built by `wasm-examples/build.sh`, which scripts/test.sh runs first) load
/// as the kinds they are built as. Skipped, saying so, only outside CI when they are not built.
#[tokio::test]
async fn rust_examples_load_and_classify() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wasm-examples");
    let expected = [
        ("hello", ProgramKind::CoreModule),
        ("misbehave", ProgramKind::CoreModule),
        ("greeter", ProgramKind::HttpProxy),
        ("tcp-echo", ProgramKind::Command),
        ("prober", ProgramKind::Command),
    ];
    if !examples.join("hello.wasm").exists() && std::env::var_os("CI").is_none() {
        println!("skipped: wasm-examples/*.wasm are not built (run wasm-examples/build.sh)");
        return;
    }
    let host = host();
    for (name, kind) in expected {
        let path = examples.join(format!("{name}.wasm"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let program = host.load_named(name, &bytes).unwrap();
        assert_eq!(program.kind, kind, "{name}");
    }
}
