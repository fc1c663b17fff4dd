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
