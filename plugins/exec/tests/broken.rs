//! A plugin that dies or hangs is an error that names it, never a hang of podctl's side.

use std::path::Path;
use std::time::{Duration, Instant};

use podctl_plugin::{Client, ClientError, Member};

fn member(dir: &Path) -> Member {
    Member {
        name: "sleeper".into(),
        program: "/bin/sleep".into(),
        args: vec!["600".into()],
        log_path: dir.join("sleeper.log").to_string_lossy().into_owned(),
        ..Member::default()
    }
}

async fn launched(dir: &Path) -> Client {
    std::fs::create_dir_all(dir).unwrap();
    let plugin = Client::launch(
        Path::new(env!("CARGO_BIN_EXE_podctl-runtime-exec")),
        &dir.join("plugin.sock"),
    )
    .await
    .unwrap();
    plugin.start(member(dir)).await.unwrap();
    plugin
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on the plugin process this test started.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
}

fn all_threads_stopped(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().all(|task| {
        let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap_or_default();
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('T'))
    })
}

#[tokio::test]
async fn a_plugin_that_exits_mid_run_is_reported_gone() {
    let dir = std::env::temp_dir().join(format!("podctl-plugin-exits-{}", std::process::id()));
    let plugin = launched(&dir).await;
    signal(plugin.pid().unwrap(), libc::SIGKILL);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let error = plugin.status("sleeper").await.unwrap_err();
    assert!(matches!(error, ClientError::Exited { .. }), "{error:?}");
    assert!(error.to_string().contains("plugin exec is gone"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_plugin_that_never_answers_times_out() {
    let dir = std::env::temp_dir().join(format!("podctl-plugin-hangs-{}", std::process::id()));
    let plugin = launched(&dir).await;
    let pid = plugin.pid().unwrap();
    signal(pid, libc::SIGSTOP);
    // The stop reaches every thread of the plugin shortly after kill(2) returns.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !all_threads_stopped(pid) {
        assert!(Instant::now() < deadline, "the plugin did not stop");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let asked = Instant::now();
    let error = plugin.status("sleeper").await.unwrap_err();
    assert!(asked.elapsed() < Duration::from_secs(8), "{:?}", asked.elapsed());
    assert!(error.to_string().contains("did not answer Status within 5s"), "{error}");
    signal(pid, libc::SIGCONT);
    plugin.kill("sleeper").await.unwrap();
    plugin.shutdown(Duration::from_secs(3)).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet).
fn ended(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.trim_start().chars().next());
    matches!(state, None | Some('Z' | 'X'))
}

/// Processes whose command line contains `marker` (the test's own members).
fn processes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(marker))
        })
        .filter(|&pid| !ended(pid))
        .collect()
}

#[tokio::test]
async fn a_killed_plugin_takes_its_members_with_it() {
    let dir = std::env::temp_dir().join(format!("podctl-plugin-killed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plugin = Client::launch(
        Path::new(env!("CARGO_BIN_EXE_podctl-runtime-exec")),
        &dir.join("plugin.sock"),
    )
    .await
    .unwrap();
    // Started one after another, so that they are forked from whichever threads serve the calls;
    // a marker in their arguments finds them wherever they were reparented.
    let marker = format!("{}", 600_000 + std::process::id() % 100_000);
    let mut pids = Vec::new();
    for i in 0..4 {
        let started = plugin
            .start(Member {
                name: format!("sleeper-{i}"),
                args: vec![marker.clone()],
                ..member(&dir)
            })
            .await
            .unwrap();
        pids.push(started.pid);
    }
    assert_eq!(processes_with(&marker).len(), 4, "{pids:?}");
    signal(plugin.pid().unwrap(), libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pids.iter().all(|&pid| ended(pid)) {
        assert!(
            Instant::now() < deadline,
            "members outlived their plugin: {:?}",
            processes_with(&marker)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(processes_with(&marker), Vec::<u32>::new());
    drop(plugin);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn sigterm_ends_the_plugin_promptly_with_a_wait_in_flight() {
    let dir = std::env::temp_dir().join(format!("podctl-plugin-sigterm-{}", std::process::id()));
    let mut took = Vec::new();
    for _ in 0..5 {
        let plugin = launched(&dir).await;
        let pid = plugin.pid().unwrap();
        let member = plugin.start(member(&dir)).await.unwrap_err();
        assert!(member.to_string().contains("exists already"), "{member}");
        let waiting = plugin.wait("sleeper", Duration::from_secs(30));
        let terminate = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            signal(pid, libc::SIGTERM);
            let asked = Instant::now();
            while !ended(pid) && asked.elapsed() < Duration::from_secs(30) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            asked.elapsed()
        };
        let (answer, elapsed) = tokio::join!(waiting, terminate);
        let error = answer.unwrap_err();
        assert!(
            matches!(error, ClientError::Exited { .. } | ClientError::ShuttingDown { .. }),
            "{error:?}"
        );
        took.push(elapsed);
        plugin.shutdown(Duration::from_secs(1)).await;
    }
    took.sort();
    eprintln!(
        "SIGTERM to exit with a Wait in flight: median {:?}, all {took:?}",
        took[2]
    );
    assert!(took[4] < Duration::from_secs(2), "{took:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
