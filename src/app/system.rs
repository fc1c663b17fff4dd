//! `podctl system restore` and `podctl system install` (the systemd unit that restores at boot);
//! `system install-node` is `node.rs`'s.

use std::path::Path;

use anyhow::{Context, Result};

use super::{connect, existing, settings};
use crate::cli::{GlobalArgs, SystemCommand};

const UNIT: &str = "podctl-restore.service";

pub async fn system(global: &GlobalArgs, command: SystemCommand) -> Result<()> {
    match command {
        SystemCommand::Restore { all_namespaces } => restore(global, all_namespaces).await,
        SystemCommand::Install { root } => install(global, &root),
        SystemCommand::InstallNode {
            root,
            containerd_config,
            shim,
        } => super::node::install_node(&root, containerd_config.as_deref(), shim.as_deref()),
    }
}

async fn restore(global: &GlobalArgs, all_namespaces: bool) -> Result<()> {
    let client = connect(global).await?;
    let settings = settings(global);
    let registry = existing(&settings);
    let namespaces = match all_namespaces {
        true => client.list_namespaces().await?,
        false => vec![client.namespace().to_string()],
    };
    let began = std::time::Instant::now();
    let mut count = 0;
    for namespace in namespaces {
        let client = client.in_namespace(&namespace);
        for restored in crate::pod::restore(&client, &settings, &registry).await? {
            count += 1;
            println!("pod/{} ({namespace}): {}", restored.pod, restored.outcome);
        }
        count += restore_workloads(global, &client, &settings).await?;
    }
    if count == 0 {
        println!("no pod lost its sandbox to a host restart");
    } else {
        eprintln!("restored {count} pod(s) in {:.2}s", began.elapsed().as_secs_f64());
    }
    Ok(())
}

/// After the pods: each workload's missing or broken pods made again, and an interrupted rollout
/// finished. Returns how many workloads changed.
async fn restore_workloads(
    global: &GlobalArgs,
    client: &crate::containerd::Client,
    settings: &crate::pod::Settings,
) -> Result<usize> {
    use crate::manifest::workload::WorkloadKind;
    let mut workloads = Vec::new();
    for kind in WorkloadKind::ALL {
        workloads.extend(crate::pod::workload_store::list_workloads(client, kind).await?);
    }
    if workloads.is_empty() {
        return Ok(0);
    }
    // New pods need the runtime config and plugins, as `create` does.
    let registry = super::registry(global)?;
    let ctl = super::workload::Controller {
        client,
        settings,
        registry: &registry,
    };
    let mut changed = 0;
    for workload in &workloads {
        let label = super::workload::label(workload);
        match ctl.reconcile(workload).await {
            Ok(changes) if changes.made + changes.removed > 0 => {
                changed += 1;
                println!(
                    "{label} ({}): {} pod(s) made, {} removed",
                    client.namespace(),
                    changes.made,
                    changes.removed
                );
            }
            Ok(_) => {}
            Err(e) => eprintln!("warning: {label}: {e}"),
        }
    }
    Ok(changed)
}

/// The unit runs this podctl with the flags that locate its containerd and files.
fn unit(global: &GlobalArgs) -> Result<String> {
    let exe = crate::podctl_exe().context("finding the podctl binary")?;
    let mut command = vec![
        exe.display().to_string(),
        "--address".into(),
        global.address.display().to_string(),
        "--state-dir".into(),
        global.state_dir.display().to_string(),
        "--log-dir".into(),
        global.log_dir.display().to_string(),
    ];
    if let Some(dir) = &global.cni_conf_dir {
        command.extend(["--cni-conf-dir".into(), dir.display().to_string()]);
    }
    command.extend(["system".into(), "restore".into(), "--all-namespaces".into()]);
    Ok(format!(
        "[Unit]\nDescription=Restore podctl pods after a host restart\nDocumentation=podctl system restore --help\n\
         After=containerd.service network-online.target\nWants=network-online.target\nRequires=containerd.service\n\n\
         [Service]\nType=oneshot\nExecStart={}\nRemainAfterExit=yes\n\n[Install]\nWantedBy=multi-user.target\n",
        command.join(" ")
    ))
}

fn install(global: &GlobalArgs, root: &Path) -> Result<()> {
    let dir = root.join("etc/systemd/system");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(UNIT);
    std::fs::write(&path, unit(global)?).with_context(|| format!("writing {}", path.display()))?;
    println!("installed {}", path.display());
    let systemd = root == Path::new("/") && Path::new("/run/systemd/system").is_dir();
    if !systemd {
        println!(
            "not enabled: this system does not run systemd (enable it with `systemctl enable {UNIT}` where it does)"
        );
        return Ok(());
    }
    for args in [vec!["daemon-reload"], vec!["enable", UNIT]] {
        let status = std::process::Command::new("systemctl")
            .args(&args)
            .status()
            .context("running systemctl")?;
        anyhow::ensure!(status.success(), "systemctl {} failed", args.join(" "));
    }
    println!("enabled {UNIT}: pods are restored at boot, after containerd");
    Ok(())
}
